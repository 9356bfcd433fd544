"""Paging parameters are bounded (``offset``, ``_offset``, ``continuation_token`` ≤ ``MAX_OFFSET``).

Found by the OpenAPI fuzz run (tests/e2e/test_openapi_fuzz.py, exploratory, 80 examples per
operation): ``GET .../fhir/views/practitioners?q=sequencer&offset=13431976298413688965462744891392``
was a 500 (the offset reached ``itertools.islice``, which takes at most ``sys.maxsize``); the
resource search's ``_offset`` the same. Every paging parameter the document declares is checked
here, so a route added later is too.
"""

from __future__ import annotations

import pytest

from fhir_platform.paging import MAX_OFFSET
from tests.integration.conftest import ADMIN_KEY, new_workspace
from tests.support.gateway import Gateway

PAGING = ("offset", "_offset", "continuation_token")
IDS = {"key_id": "key_0123456789abcdef", "resource_type": "Patient", "resource_id": "p-1", "patient_id": "p-1", "job_id": "job-1",
       "data_source_id": "00000000-0000-4000-8000-000000000000", "version_id": "1",
       "entity_id": "00000000-0000-4000-8000-000000000001"}


def _paged() -> list[tuple[str, str, str]]:
    from fhir_platform.api.openapi import document

    out = []
    for path, item in document()["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                if param["in"] == "query" and param["name"] in PAGING:
                    out.append((method.upper(), path, param["name"]))
    return sorted(out)


PAGED = _paged()


def test_paging_parameters_are_declared_with_their_bound() -> None:
    from fhir_platform.api.openapi import document

    assert len(PAGED) >= 14
    for method, path, name in PAGED:
        param = next(p for p in document()["paths"][path][method.lower()]["parameters"] if p["name"] == name)
        assert param["schema"].get("maximum") == MAX_OFFSET, (method, path, name)


@pytest.mark.parametrize(("method", "path", "name"), PAGED, ids=[f"{m} {p} {n}" for m, p, n in PAGED])
def test_a_page_past_the_bound_is_refused_naming_the_parameter(gateway: Gateway, method: str, path: str, name: str) -> None:
    ws = new_workspace(gateway)["id"]
    url = path.replace("{workspace_id}", ws)
    for key, value in IDS.items():
        url = url.replace("{" + key + "}", value)
    query = {"q": "sequencer"} if path.endswith(("/views/practitioners", "/views/locations", "/fhir/patients")) else {}
    for offset in (10**31, MAX_OFFSET + 1):
        reply = gateway.call(method, url, token=ADMIN_KEY, query={**query, name: str(offset)})
        assert reply.status == 422, (offset, reply.status, reply.body)
        assert [d["loc"] for d in reply.body["detail"]] == [["query", name]], reply.body
    deepest = gateway.call(method, url, token=ADMIN_KEY, query={**query, name: str(MAX_OFFSET)})
    assert deepest.status in (200, 404), (deepest.status, deepest.body)  # an empty page, or no such item
