"""The foundation end to end: real HTTP to the local stack (gateway, authorizer, functions, moto)."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import Client, make_workspace
from tests.support.contract import assert_matches

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]
PATIENT = {"resourceType": "Patient", "name": [{"family": "Okafor", "given": ["Ngozi"]}], "birthDate": "1988-02-29"}


def test_health_needs_no_auth_and_the_demo_workspace_works(stack) -> None:
    assert requests.get(f"{stack.base_url}/health", timeout=10).json() == {"status": "ok"}
    demo = Client(stack.base_url, stack.api_key)
    created = demo.post(f"/v1/{stack.workspace_id}/fhir/resources/Patient", json={"data": PATIENT})
    assert created.status_code == 201, created.text


def test_authentication_failures(stack, admin: Client) -> None:
    ws_id, _ = make_workspace(admin)
    assert requests.get(f"{stack.base_url}/v1/{ws_id}/fhir/status", timeout=10).status_code == 401
    assert Client(stack.base_url, "fhp_not-a-key").get(f"/v1/{ws_id}/fhir/status").status_code == 403


def test_create_read_update_history(admin: Client) -> None:
    ws, c = make_workspace(admin)
    created = c.post(f"/v1/{ws}/fhir/resources/Patient", json={"data": PATIENT})
    assert created.status_code == 201 and created.headers["ETag"] == 'W/"1"'
    assert_matches("FhirResourceResponse", created.json())
    rid = created.json()["resource_id"]
    url = f"/v1/{ws}/fhir/resources/Patient/{rid}"
    read = c.get(url)
    assert read.status_code == 200 and read.json() == created.json()
    updated = c.put(url, json={"data": {**PATIENT, "name": [{"family": "Okafor", "given": ["Ngozi", "A."]}]}}, headers={"If-Match": 'W/"1"'})
    assert updated.status_code == 200 and updated.headers["ETag"] == 'W/"2"'
    stale = c.put(url, json={"data": {**PATIENT, "gender": "female"}}, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412
    history = c.get(f"{url}/history", params={"limit": 1})
    assert history.status_code == 200
    body = history.json()
    assert_matches("FhirResourceHistoryResponse", body)
    assert body["total"] == 2 and body["has_more"] is True and body["next_offset"] == 1
    assert body["entries"][0]["fields_affected"] == ["name.0.given"] and body["entries"][0]["is_current"] is True
    older = c.get(f"{url}/history", params={"limit": 1, "offset": 1}).json()
    assert older["entries"][0]["event_type"] == "created" and older["has_more"] is False
    status = c.get(f"/v1/{ws}/fhir/status").json()
    assert_matches("FhirStatusResponse", status)
    assert status["event_count"] == 2 and status["resource_type_counts"] == {"Patient": 1}


def test_put_with_client_id_and_entity_links(admin: Client) -> None:
    ws, c = make_workspace(admin)
    patient = c.put(f"/v1/{ws}/fhir/resources/Patient/mrn-77", json={"data": PATIENT})
    assert patient.status_code == 201 and patient.json()["resource_id"] == "mrn-77"
    obs = c.post(
        f"/v1/{ws}/fhir/resources/Observation",
        json={"data": {"resourceType": "Observation", "status": "final", "code": {"text": "BP"}, "subject": {"reference": "Patient/mrn-77"}}},
    )
    assert obs.status_code == 201 and obs.json()["entity_id"] == patient.json()["entity_id"] is not None


def test_workspace_isolation(admin: Client) -> None:
    ws_a, a = make_workspace(admin)
    ws_b, b = make_workspace(admin)
    rid = b.post(f"/v1/{ws_b}/fhir/resources/Patient", json={"data": PATIENT}).json()["resource_id"]
    for path in (f"/v1/{ws_b}/fhir/resources/Patient/{rid}", f"/v1/{ws_b}/fhir/resources/Patient/{rid}/history", f"/v1/{ws_b}/fhir/status", f"/v1/{ws_b}/api-keys"):
        reply = a.get(path)
        assert reply.status_code == 403 and rid not in reply.text, path
    assert a.put(f"/v1/{ws_b}/fhir/resources/Patient/{rid}", json={"data": PATIENT}).status_code == 403
    assert a.get(f"/v1/{ws_a}/fhir/resources/Patient/{rid}").status_code == 404


def test_bad_input_over_http(stack, admin: Client) -> None:
    ws, c = make_workspace(admin)
    unknown = c.post(f"/v1/{ws}/fhir/resources/Starship", json={"data": {"resourceType": "Starship"}})
    assert unknown.status_code == 400 and unknown.json()["detail"][0]["loc"] == ["path", "resource_type"]
    invalid = c.post(f"/v1/{ws}/fhir/resources/Patient", json={"data": {**PATIENT, "birthDate": "29/02/1988"}})
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["body", "data", "birthDate"]
    garbage = c.request("POST", f"/v1/{ws}/fhir/resources/Patient", data="{{{", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 422
    big = c.post(f"/v1/{ws}/fhir/resources/Patient", json={"data": {**PATIENT, "text": {"status": "generated", "div": "x" * 6_000_000}}})
    assert big.status_code == 413
    assert c.get(f"/v1/{ws}/fhir/resources/Patient/missing").status_code == 404
    assert c.get(f"/v1/{ws}/fhir/resources/Patient/missing/history").status_code == 404
    assert c.get(f"/v1/{ws}/fhir/status").json()["event_count"] == 0
    unconfigured, u = make_workspace(admin, fhir=False)
    gate = u.post(f"/v1/{unconfigured}/fhir/resources/Patient", json={"data": PATIENT})
    assert gate.status_code == 409 and "not configured" in gate.json()["message"]
    assert PATIENT["name"][0]["family"] not in stack.output()  # no PHI in the stack's logs


def test_bad_input_never_corrupts_stored_state_over_http(admin: Client) -> None:
    """Over real HTTP: PATCH name:null and bodies that are not UTF-8 are 422s naming the field, and
    the workspace and its keys read exactly as before (the null used to be stored: every later GET
    of the workspace and its keys was a 500)."""
    ws, c = make_workspace(admin)
    key_id = c.get(f"/v1/{ws}/api-keys").json()["items"][0]["key_id"]
    before = {path: c.get(path).json() for path in (f"/v1/workspaces/{ws}", f"/v1/{ws}/api-keys")}

    nulled = c.request("PATCH", f"/v1/workspaces/{ws}", json={"name": None, "environment": "staging"})
    assert nulled.status_code == 422, nulled.text
    assert nulled.json()["detail"] == [{"loc": ["body", "name"], "msg": "must not be null: leave the field out instead", "type": "null_not_allowed"}]

    latin1 = {"Content-Type": "application/json"}
    for path, raw in (
        (f"/v1/{ws}/api-keys", b'{"name": "caf\xe9", "duration_days": 7}'),
        (f"/v1/{ws}/api-keys/{key_id}/rotate", b'{"duration_days": 7, "x": "\xff\xfe"}'),
        (f"/v1/{ws}/api-keys/{key_id}/rotate", b"\xff\xfe{}"),
    ):
        reply = c.post(path, data=raw, headers=latin1)
        assert reply.status_code == 422, (path, reply.status_code, reply.text)
        body = reply.json()
        assert set(body) == {"statusCode", "error", "message", "detail"} and body["detail"][0]["loc"][0] == "body"
    assert c.post(f"/v1/{ws}/api-keys", data=b'{"name": "caf\xe9", "duration_days": 7}', headers=latin1).json()["detail"] == [
        {"loc": ["body", "name"], "msg": "must be valid UTF-8 text", "type": "string_unicode"}
    ]

    for path, was in before.items():
        now = c.get(path)
        assert now.status_code == 200 and now.json() == was, path
