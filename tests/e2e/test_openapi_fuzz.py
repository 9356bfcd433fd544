"""Property-based fuzzing of the served OpenAPI document against the local stack, over real HTTP.

The document is fetched from the stack (``GET /v1/openapi.json``, no key) and handed to
schemathesis, which generates requests for every operation — valid ones and, as often, ones that
break the document's own rules (wrong types, out-of-bound numbers, missing required fields) — and
sends them with a real workspace's admin key. Every response must:

- not be a server error (no 5xx);
- have a status the operation declares, with the declared content type, and a body that validates
  against the declared schema (``status_code_conformance``, ``content_type_conformance``,
  ``response_schema_conformance``);
- refuse what the document says is invalid (``negative_data_rejection``: a 4xx, never a 2xx).

Generated UUIDs for ``workspace_id`` are swapped for the real workspace (else nearly every request
would be a 403 for a workspace the key does not belong to), and a data source id for the real data
source half of the time (never on DELETE: it must stay for the other operations). Any ``connection_config`` sent to the data-source routes is replaced by
one pointing at a closed loopback port: a generated URL must never become a host the sync worker
dials. The FHIR facade (``/fhir/r4``) is fuzzed too, its bodies as the document describes them (any
object with a ``resourceType``: mostly refused as OperationOutcomes);
``tests/integration/test_bad_input.py`` spoils a valid resource field by field.

``FUZZ_EXAMPLES`` (default 12) bounds the examples per operation; ``FUZZ_REPORT`` names a file to
receive the per-operation counts (``bench/fuzz.py`` prints them). The examples are the same every
run (derandomized); ``FUZZ_EXPLORE=1`` draws new ones, for a longer exploratory run.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from typing import Any, Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks
from schemathesis.core.parameters import ParameterLocation

from tests.e2e.conftest import Client, make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]  # the e2e worker's one local stack

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
SAFE_CONNECTION = {"base_url": "http://127.0.0.1:9/fhir", "resource_types": ["Patient"]}  # port 9: nothing listens
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]
COUNTS: Counter[str] = Counter()
STATUSES: dict[str, Counter[str]] = {}  # per operation: "<mode> <status>" -> count


class Target:
    def __init__(self, base_url: str, workspace_id: str, key: str, data_source_id: str) -> None:
        self.base_url, self.workspace_id, self.key, self.data_source_id = base_url, workspace_id, key, data_source_id
        self.http = requests.Session()


@pytest.fixture(scope="session")
def fuzz_target(admin: Client) -> Iterator[Target]:
    ws, client = make_workspace(admin)
    source = client.post(f"/v1/{ws}/data-sources", json={"name": "fuzz", "source_type": "fhir_store", "connection_config": SAFE_CONNECTION})
    assert source.status_code == 201, source.text
    patient = client.put(f"/v1/{ws}/fhir/resources/Patient/fuzz-1", json={"data": {"resourceType": "Patient", "id": "fuzz-1", "name": [{"family": "Fuzz"}]}})
    assert patient.status_code in (200, 201), patient.text
    yield Target(admin.base_url, ws, client.key or "", source.json()["id"])
    report = os.environ.get("FUZZ_REPORT")
    if report:
        with open(report, "w", encoding="utf-8") as out:
            json.dump({"examples_per_operation": EXAMPLES, "operations": dict(COUNTS), "statuses": {k: dict(v) for k, v in STATUSES.items()}}, out, indent=1)


@pytest.fixture(scope="session")
def served_document(fuzz_target: Target) -> dict[str, Any]:
    reply = requests.get(fuzz_target.base_url + "/v1/openapi.json", timeout=30)  # public: no key
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/json"), reply.text[:200]
    return reply.json()


@pytest.fixture(scope="session")
def api_schema(served_document: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_dict(served_document)


def _operations() -> list[str]:
    """Every operation the document describes (built in-process here to name the tests; the run
    fuzzes the document the stack serves, and checks it is this one)."""
    from fhir_platform.api.openapi import document

    return [f"{method.upper()} {path}" for path, item in document()["paths"].items() for method in item]


OPERATIONS = _operations()


def _is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _aim(case: Any, target: Target) -> None:
    """Aim a generated case at the real workspace (see the module docstring)."""
    params = case.path_parameters or {}
    if _is_uuid(params.get("workspace_id")):
        params["workspace_id"] = target.workspace_id
    keep = case.method.upper() != "DELETE"  # the source stays for the other operations, whatever the order
    if keep and _is_uuid(params.get("data_source_id")) and int(params["data_source_id"][-1], 16) % 2 == 0:
        params["data_source_id"] = target.data_source_id
    if "/data-sources" in case.path and isinstance(case.body, dict) and isinstance(case.body.get("connection_config"), dict):
        case.body["connection_config"] = dict(SAFE_CONNECTION)


def test_the_stack_serves_the_document_built_from_the_routers(served_document: dict[str, Any]) -> None:
    from fhir_platform.api.openapi import document

    assert served_document == document()
    assert len(OPERATIONS) >= 40


def _credentials(case: Any, target: Target) -> dict[str, str]:
    """The workspace's key, unless the case is about its headers being wrong (a missing or spoilt
    ``Authorization`` must then reach the API as generated, and be refused)."""
    headers = case._meta.components.get(ParameterLocation.HEADER) if case._meta is not None else None
    if headers is not None and headers.mode is GenerationMode.NEGATIVE:
        return {}
    return {"Authorization": f"Bearer {target.key}"}


def test_swagger_ui_is_served_offline_with_the_document(fuzz_target: Target, served_document: dict[str, Any]) -> None:
    """``GET /v1/docs`` (no key): Swagger UI with its script, style sheet and the document inlined:
    nothing loaded from elsewhere (no CDN)."""
    import re

    page = requests.get(fuzz_target.base_url + "/v1/docs", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), page.status_code
    html = page.text
    assert "SwaggerUIBundle(swaggerUIOptions)" in html and "<style>" in html
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", html), "the page must load nothing from elsewhere"
    assert '"/v1/{workspace_id}/fhir/status"' in html and '"BearerAuth"' in html
    as_json = requests.get(fuzz_target.base_url + "/v1/docs", params={"format": "json"}, timeout=30)
    assert as_json.status_code == 200 and as_json.json() == served_document
    assert requests.get(fuzz_target.base_url + "/v1/docs", params={"format": "yaml"}, timeout=30).status_code == 422


@pytest.mark.parametrize("label", OPERATIONS)
def test_every_operation_survives_what_it_describes(label: str, api_schema: Any, fuzz_target: Target) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, label
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not os.environ.get("FUZZ_EXPLORE"),  # the same examples every run (FUZZ_EXPLORE=1: new ones)
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def fuzz(case: Any) -> None:
        _aim(case, fuzz_target)
        response = case.call_and_validate(
            base_url=fuzz_target.base_url,
            session=fuzz_target.http,
            headers=_credentials(case, fuzz_target),
            checks=CHECKS,
            timeout=30,
        )
        mode = case._meta.generation.mode.value if case._meta is not None else "explicit"
        COUNTS[label] += 1
        STATUSES.setdefault(label, Counter())[f"{mode} {response.status_code}"] += 1
        if os.environ.get("FUZZ_TRACE") and mode == "positive" and response.status_code in (400, 422):
            with open(os.environ["FUZZ_TRACE"], "a", encoding="utf-8") as trace:
                trace.write(f"{label} {response.status_code} {response.text[:300]}\n")

    fuzz()
