"""The foundation end to end: real HTTP to the local stack (gateway, authorizer, functions, moto)."""

from __future__ import annotations

import boto3
import pytest
import requests

from fhir_platform.auth.credentials import hash_key
from fhir_platform.storage import keys

from tests.e2e.conftest import Client, make_workspace
from tests.support.contract import assert_matches

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]
PATIENT = {"resourceType": "Patient", "name": [{"family": "Okafor", "given": ["Ngozi"]}], "birthDate": "1988-02-29"}


def test_health_needs_no_auth_and_the_demo_workspace_works(stack) -> None:
    assert requests.get(f"{stack.base_url}/health", timeout=10).json() == {"status": "ok"}
    demo = Client(stack.base_url, stack.api_key)
    created = demo.post(f"/v1/{stack.workspace_id}/fhir/resources/Patient", json={"data": PATIENT})
    assert created.status_code == 201, created.text


def assert_401(reply: requests.Response, reason: str) -> None:
    """The platform's JSON error body, saying where the problem is (the Authorization header)."""
    assert reply.status_code == 401, reply.text
    assert reply.headers["content-type"] == "application/json" and reply.headers["www-authenticate"] == "Bearer"
    body = reply.json()
    assert body == {
        "statusCode": 401,
        "error": "unauthorized",
        "message": body["message"],
        "detail": [{"loc": ["header", "authorization"], "msg": body["message"], "type": reason}],
    }


def expire(stack, api_key: str) -> None:
    """Move the key's expiry into the past, as time would (keys live at least a day)."""
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=stack.endpoint_url, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    )
    table = next(t for t in dynamodb.list_tables()["TableNames"] if "data" in t.lower())
    dynamodb.update_item(
        TableName=table,
        Key={"PK": {"S": keys.key_hash_pk(hash_key(api_key))}, "SK": {"S": keys.KEY_HASH_SK}},
        UpdateExpression="SET expires_at = :past",
        ConditionExpression="attribute_exists(PK)",
        ExpressionAttributeValues={":past": {"S": "2020-01-01T00:00:00Z"}},
    )


def test_authentication_failures(stack, admin: Client) -> None:
    ws_id, owner = make_workspace(admin)
    status = f"/v1/{ws_id}/fhir/status"
    missing = requests.get(f"{stack.base_url}{status}", timeout=10)
    assert missing.status_code == 401 and missing.json() == {"message": "Unauthorized"}  # the gateway's own answer
    assert_401(Client(stack.base_url, "fhp_not-a-key").get(status), "invalid_key")
    assert_401(owner.get(status, headers={"Authorization": f"Basic {owner.key}"}), "malformed")
    # a request body or an invalid path is never looked at for an unknown key
    assert_401(Client(stack.base_url, "fhp_not-a-key").post("/v1/not-a-uuid/fhir/resources/Patient", data="{"), "invalid_key")
    assert_401(Client(stack.base_url, "fhp_not-a-key").get("/v1/workspaces"), "invalid_key")

    def new_key(role: str) -> tuple[str, Client]:
        reply = owner.post(f"/v1/{ws_id}/api-keys", json={"name": role, "duration_days": 1, "role": role})
        assert reply.status_code == 201, reply.text
        return reply.json()["key_id"], Client(stack.base_url, reply.json()["api_key"])

    _, expiring = new_key("viewer")
    assert expiring.get(status).status_code == 200
    expire(stack, expiring.key)
    assert_401(expiring.get(status), "invalid_key")

    key_id, revoked = new_key("viewer")
    assert revoked.get(status).status_code == 200
    assert owner.request("DELETE", f"/v1/{ws_id}/api-keys/{key_id}").status_code == 204
    assert_401(revoked.get(status), "invalid_key")  # on the very next request: no decision is cached
    assert owner.get(status).status_code == 200  # and a valid key right after an invalid one is served

    _, viewer = new_key("viewer")
    no_write = viewer.post(f"/v1/{ws_id}/fhir/resources/Patient", json={"data": PATIENT})
    assert no_write.status_code == 403 and no_write.json()["statusCode"] == 403 and "'write'" in no_write.json()["message"]
    other_ws, _ = make_workspace(admin)
    elsewhere = viewer.get(f"/v1/{other_ws}/fhir/status")
    assert elsewhere.status_code == 403 and "another workspace" in elsewhere.json()["message"]


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
