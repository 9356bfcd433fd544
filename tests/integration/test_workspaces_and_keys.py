"""Workspaces, API keys and the authorizer, through the real handlers and events with moto."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import boto3

from tests.integration.conftest import ADMIN_KEY, new_key, new_workspace
from tests.support.gateway import Gateway


def test_admin_creates_workspace_and_slug_is_unique(gateway: Gateway) -> None:
    ws = new_workspace(gateway, slug="unique-slug")
    assert ws["slug"] == "unique-slug" and ws["fhir_configured"] is True and ws["connector_type"] == "epic"
    again = gateway.call("POST", "/v1/workspaces", token=ADMIN_KEY, body={"name": "Other", "slug": "unique-slug"})
    assert again.status == 409 and "unique-slug" in again.body["message"]


def test_only_the_admin_credential_creates_workspaces(gateway: Gateway, workspace: dict) -> None:
    reply = gateway.call("POST", "/v1/workspaces", token=workspace["key"], body={"name": "X", "slug": "x-clinic"})
    assert reply.status == 403
    assert gateway.call("GET", "/v1/workspaces", token=workspace["key"]).status == 403


def test_workspace_create_rejects_inline_secrets_and_bad_fields(gateway: Gateway) -> None:
    reply = gateway.call(
        "POST",
        "/v1/workspaces",
        token=ADMIN_KEY,
        body={"name": "A", "slug": "a-b", "connector_auth": {"client_id": "c", "client_secret": "s3cr3t-value"}},
    )
    assert reply.status == 422
    assert ["body", "connector_auth", "client_secret"] in [d["loc"] for d in reply.body["detail"]]
    assert "s3cr3t-value" not in json.dumps(reply.body)
    bad_slug = gateway.call("POST", "/v1/workspaces", token=ADMIN_KEY, body={"name": "A", "slug": "Not A Slug"})
    assert bad_slug.status == 422 and bad_slug.body["detail"][0]["loc"] == ["body", "slug"]


def test_connector_auth_is_kept_by_reference(gateway: Gateway) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:epic/private-key-AbCdEf"
    ws = new_workspace(gateway)
    reply = gateway.call(
        "PATCH",
        f"/v1/workspaces/{ws['id']}",
        token=ADMIN_KEY,
        body={"connector_auth": {"client_id": "app-1", "token_url": "https://ehr.example.org/oauth2/token", "private_key_secret_arn": arn}},
    )
    assert reply.status == 200, reply.body
    assert reply.body["connector_auth"]["private_key_secret_arn"] == arn


def test_get_patch_and_immutable_region(gateway: Gateway, workspace: dict) -> None:
    ws_id = workspace["id"]
    assert gateway.call("GET", f"/v1/workspaces/{ws_id}", token=workspace["key"]).body["name"] == "Clinic"
    renamed = gateway.call("PATCH", f"/v1/workspaces/{ws_id}", token=workspace["key"], body={"name": "Renamed"})
    assert renamed.status == 200 and renamed.body["name"] == "Renamed"
    region = gateway.call("PATCH", f"/v1/workspaces/{ws_id}", token=workspace["key"], body={"region": "eu-central-1"})
    assert region.status == 422 and region.body["detail"][0]["loc"] == ["body", "region"]
    missing = gateway.call("GET", "/v1/workspaces/00000000-0000-4000-8000-000000000000", token=ADMIN_KEY)
    assert missing.status == 404


def test_list_workspaces_paginates(gateway: Gateway) -> None:
    for _ in range(3):
        new_workspace(gateway)
    first = gateway.call("GET", "/v1/workspaces", token=ADMIN_KEY, query={"limit": "2"})
    assert first.status == 200 and len(first.body["items"]) == 2 and first.body["has_more"] is True
    rest = gateway.call("GET", "/v1/workspaces", token=ADMIN_KEY, query={"limit": "2", "continuation_token": str(first.body["continuation_token"])})
    assert len(rest.body["items"]) == 1 and rest.body["has_more"] is False
    ids = {i["id"] for i in first.body["items"] + rest.body["items"]}
    assert len(ids) == 3


def test_keys_are_stored_only_as_hashes(gateway: Gateway, aws: dict) -> None:
    ws = new_workspace(gateway)
    key = new_key(gateway, ws["id"])
    table = boto3.resource("dynamodb").Table(aws["TABLE_NAME"])
    dump = json.dumps(table.scan()["Items"], default=str)  # test-only scan of the whole table
    assert key not in dump and key[4:] not in dump


def test_key_lifecycle_list_rotate_delete(gateway: Gateway) -> None:
    ws = new_workspace(gateway)
    admin_key = new_key(gateway, ws["id"])
    member = gateway.call("POST", f"/v1/{ws['id']}/api-keys", token=admin_key, body={"name": "m", "duration_days": 7})
    assert member.status == 201 and member.body["role"] == "member" and member.body["permissions"] == ["read", "write"]
    listing = gateway.call("GET", f"/v1/{ws['id']}/api-keys", token=admin_key)
    assert listing.status == 200 and len(listing.body["items"]) == 2
    assert all("api_key" not in i and "key_hash" not in i for i in listing.body["items"])

    key_id, old = member.body["key_id"], member.body["api_key"]
    assert gateway.call("GET", f"/v1/{ws['id']}/fhir/status", token=old).status == 200
    rotated = gateway.call("POST", f"/v1/{ws['id']}/api-keys/{key_id}/rotate", token=admin_key, body={"duration_days": 3})
    assert rotated.status == 200 and rotated.body["api_key"] != old and rotated.body["key_id"] == key_id
    rotated_away = gateway.call("GET", f"/v1/{ws['id']}/fhir/status", token=old)
    assert rotated_away.status == 401 and rotated_away.body["detail"][0]["type"] == "invalid_key"
    assert gateway.call("GET", f"/v1/{ws['id']}/fhir/status", token=rotated.body["api_key"]).status == 200

    assert gateway.call("DELETE", f"/v1/{ws['id']}/api-keys/{key_id}", token=admin_key).status == 204
    revoked = gateway.call("GET", f"/v1/{ws['id']}/fhir/status", token=rotated.body["api_key"])
    assert revoked.status == 401 and revoked.body["error"] == "unauthorized"
    assert gateway.call("DELETE", f"/v1/{ws['id']}/api-keys/{key_id}", token=admin_key).status == 404


def test_member_cannot_manage_keys_or_escalate(gateway: Gateway) -> None:
    ws = new_workspace(gateway)
    member = new_key(gateway, ws["id"], role="member")
    assert gateway.call("GET", f"/v1/{ws['id']}/api-keys", token=member).status == 403
    assert gateway.call("POST", f"/v1/{ws['id']}/api-keys", token=member, body={"duration_days": 1, "role": "admin"}).status == 403


def test_role_and_permission_validation(gateway: Gateway) -> None:
    ws = new_workspace(gateway)
    bad_role = gateway.call("POST", f"/v1/{ws['id']}/api-keys", token=ADMIN_KEY, body={"duration_days": 1, "role": "root"})
    assert bad_role.status == 422
    not_granted = gateway.call(
        "POST", f"/v1/{ws['id']}/api-keys", token=ADMIN_KEY, body={"duration_days": 1, "role": "viewer", "permissions": ["write"]}
    )
    assert not_granted.status == 422
    too_long = gateway.call("POST", f"/v1/{ws['id']}/api-keys", token=ADMIN_KEY, body={"duration_days": 91})
    assert too_long.status == 422 and too_long.body["detail"][0]["loc"] == ["body", "duration_days"]
    viewer = gateway.call(
        "POST", f"/v1/{ws['id']}/api-keys", token=ADMIN_KEY, body={"duration_days": 1, "role": "viewer"}
    ).body["api_key"]
    write = gateway.call("POST", f"/v1/{ws['id']}/fhir/resources/Patient", token=viewer, body={"data": {"resourceType": "Patient"}})
    assert write.status == 403 and "write" in write.body["message"]


def test_permission_catalog(gateway: Gateway, workspace: dict) -> None:
    reply = gateway.call("GET", f"/v1/{workspace['id']}/api-keys/permission-catalog", token=workspace["key"])
    assert reply.status == 200
    roles = {r["name"]: r["permission_names"] for r in reply.body["roles"]}
    assert roles["viewer"] == ["read"] and "admin" in roles["admin"]
    assert {p["name"] for p in reply.body["permissions"]} == {"read", "write", "import", "admin"}


def test_key_never_reaches_another_workspace(gateway: Gateway) -> None:
    a, b = new_workspace(gateway), new_workspace(gateway)
    key_a = new_key(gateway, a["id"])
    created = gateway.call("POST", f"/v1/{b['id']}/fhir/resources/Patient", token=ADMIN_KEY, body={"data": {"resourceType": "Patient"}})
    assert created.status == 201
    rid = created.body["resource_id"]
    for method, path in [
        ("GET", f"/v1/{b['id']}/fhir/resources/Patient/{rid}"),
        ("GET", f"/v1/{b['id']}/fhir/resources/Patient/{rid}/history"),
        ("GET", f"/v1/{b['id']}/fhir/status"),
        ("GET", f"/v1/workspaces/{b['id']}"),
        ("GET", f"/v1/{b['id']}/api-keys"),
    ]:
        reply = gateway.call(method, path, token=key_a)
        assert reply.status == 403, (path, reply.body)
        assert rid not in json.dumps(reply.body)
    # same resource id in workspace A does not exist
    assert gateway.call("GET", f"/v1/{a['id']}/fhir/resources/Patient/{rid}", token=key_a).status == 404


def test_authorizer_identifies_keys_and_marks_unknown_ones_unauthenticated(gateway: Gateway, aws: dict) -> None:
    assert gateway.authorize(None) == {"isAuthorized": False}
    unknown = gateway.authorize("fhp_unknown")
    assert unknown["isAuthorized"] and unknown["context"]["kind"] == "unauthenticated"
    assert unknown["context"]["workspace_id"] == "" and unknown["context"]["permissions"] == ""
    ws = new_workspace(gateway)
    key = new_key(gateway, ws["id"])
    ok = gateway.authorize(key)
    assert ok["isAuthorized"] and ok["context"]["workspace_id"] == ws["id"] and key not in json.dumps(ok)
    from fhir_platform.auth.authorizer import Authenticator

    future = datetime.now(UTC) + timedelta(days=31)
    assert Authenticator(admin_key_source=lambda: ADMIN_KEY).authenticate(key, now=future) is None
    assert gateway.authorize(ADMIN_KEY)["context"]["kind"] == "admin"


def test_no_route_serves_an_unknown_key(gateway: Gateway) -> None:
    """Every route but /health answers 401 with the JSON error body, before validating anything
    (the path ids and bodies here are all invalid: a route that looked at them would say 4xx else)."""
    for method, template in sorted(gateway.routes):
        path = re.sub(r"\{\w+\}", "not-valid", template)
        reply = gateway.call(method, path, token="fhp_unknown", raw_body="{not json")
        if template in ("/health", "/v1/openapi.json", "/v1/docs"):  # public (Authorizer: NONE)
            assert reply.status == 200
            continue
        assert reply.status == 401, (method, template, reply.body)
        assert reply.headers["WWW-Authenticate"] == "Bearer"
        if "/fhir/r4" in template:  # the FHIR REST facade: the same refusal as an OperationOutcome
            [issue] = reply.body["issue"]
            assert reply.body["resourceType"] == "OperationOutcome" and issue["code"] == "login", reply.body
            assert issue["location"] == ["http.authorization"] and issue["details"]["coding"][0]["code"] == "invalid_key"
            continue
        assert reply.body["statusCode"] == 401 and reply.body["error"] == "unauthorized"
        assert reply.body["detail"] == [{"loc": ["header", "authorization"], "msg": reply.body["message"], "type": "invalid_key"}]
