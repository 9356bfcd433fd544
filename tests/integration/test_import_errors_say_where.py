"""Import refusals name what is wrong and where (``detail[].loc``), as every 4xx must.

Found by the OpenAPI fuzz run (tests/e2e/test_openapi_fuzz.py, positive examples answered 400 with
``"detail": []``): a bundle that is not an importable Bundle, and an empty ``source`` (which the
document allowed: the query parameter and the body field had a maximum length but no minimum, and
the import options refused it later, without saying where).
"""

from __future__ import annotations

from tests.integration.conftest import ADMIN_KEY, new_workspace
from tests.support.gateway import Gateway


def test_a_bundle_that_is_not_importable_is_refused_naming_the_field(gateway: Gateway) -> None:
    ws = new_workspace(gateway)["id"]
    cases = {
        "resourceType": {"resourceType": "Patient", "type": "batch"},
        "type": {"resourceType": "Bundle", "type": "document", "entry": []},
        "entry": {"resourceType": "Bundle", "type": "batch", "entry": {"not": "a list"}},
    }
    for field, bundle in cases.items():
        reply = gateway.call("POST", f"/v1/{ws}/fhir/import", token=ADMIN_KEY, body={"bundle": bundle})
        assert reply.status == 400, (field, reply.body)
        assert reply.body["message"].startswith("Invalid bundle format")
        assert [d["loc"] for d in reply.body["detail"]] == [["body", "bundle", field]], reply.body
        assert reply.body["detail"][0]["type"] == "value_error" and reply.body["detail"][0]["msg"]
    status = gateway.call("GET", f"/v1/{ws}/fhir/status", token=ADMIN_KEY)
    assert status.body["event_count"] == 0  # nothing written


def test_an_empty_source_is_refused_where_it_is(gateway: Gateway) -> None:
    ws = new_workspace(gateway)["id"]
    line = b'{"resourceType": "Patient", "id": "p-1"}\n'
    stream = gateway.call("POST", f"/v1/{ws}/fhir/import-stream", token=ADMIN_KEY, raw_body=line, query={"source": ""})
    assert stream.status == 422, stream.body
    assert [d["loc"] for d in stream.body["detail"]] == [["query", "source"]]
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": []}
    sync = gateway.call("POST", f"/v1/{ws}/fhir/import", token=ADMIN_KEY, body={"bundle": bundle, "source": ""})
    assert sync.status == 422, sync.body
    assert [d["loc"] for d in sync.body["detail"]] == [["body", "source"]]
    assert gateway.call("GET", f"/v1/{ws}/fhir/resources/Patient/p-1", token=ADMIN_KEY).status == 404
