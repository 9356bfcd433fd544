"""Data sources over the handlers (moto): CRUD, validation (422 naming the field), permissions,
filters and paging, status and history shapes against the contract, manual sync trigger."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from tests.integration.conftest import ADMIN_KEY, new_key, new_workspace
from tests.support.contract import assert_matches
from tests.support.gateway import Gateway

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:fhir-platform/ehr-key-AbCdEf"


def fhir_source(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "epic-prod",
        "source_type": "ehr",
        "connection_config": {
            "base_url": "https://ehr.example.org/fhir/R4",
            "resource_types": ["Patient", "Encounter"],
            "auth": {
                "type": "smart_backend_services",
                "token_url": "https://ehr.example.org/oauth2/token",
                "client_id": "platform",
                "private_key_secret_arn": ARN,
                "key_id": "k1",
                "algorithm": "ES384",
            },
        },
    }
    body.update(over)
    return body


def create(gateway: Gateway, ws: dict[str, Any], body: dict[str, Any]) -> Any:
    return gateway.call("POST", f"/v1/{ws['id']}/data-sources", token=ws["key"], body=body)


def test_create_get_patch_delete_round_trip(gateway: Gateway, workspace: dict[str, Any]) -> None:
    reply = create(gateway, workspace, fhir_source(display_name="Epic (prod)"))
    assert reply.status == 201, reply.body
    assert_matches("DataSourceResponse", reply.body)
    ds = reply.body
    assert ds["health_status"] == "unknown" and ds["is_stale"] is False and ds["last_sync_event_count"] == 0
    assert ds["connection_config"]["page_size"] == 100  # documented default
    assert ds["connection_config"]["auth"]["scope"] == "system/*.read"
    got = gateway.call("GET", f"/v1/{workspace['id']}/data-sources/{ds['id']}", token=workspace["key"])
    assert got.status == 200 and got.body == ds

    patched = gateway.call(
        "PATCH", f"/v1/{workspace['id']}/data-sources/{ds['id']}", token=workspace["key"], body={"is_active": False, "display_name": "Epic (paused)"}
    )
    assert patched.status == 200, patched.body
    assert patched.body["is_active"] is False and patched.body["display_name"] == "Epic (paused)"
    assert patched.body["name"] == "epic-prod" and patched.body["connection_config"] == ds["connection_config"]
    assert_matches("DataSourceResponse", patched.body)

    assert gateway.call("DELETE", f"/v1/{workspace['id']}/data-sources/{ds['id']}", token=workspace["key"]).status == 204
    assert gateway.call("GET", f"/v1/{workspace['id']}/data-sources/{ds['id']}", token=workspace["key"]).status == 404
    assert gateway.call("DELETE", f"/v1/{workspace['id']}/data-sources/{ds['id']}", token=workspace["key"]).status == 404


def test_resource_types_default_to_the_documented_set(gateway: Gateway, workspace: dict[str, Any]) -> None:
    from fhir_platform.connector.config import DEFAULT_RESOURCE_TYPES

    body = fhir_source()
    del body["connection_config"]["resource_types"]
    reply = create(gateway, workspace, body)
    assert reply.status == 201
    assert reply.body["connection_config"]["resource_types"] == list(DEFAULT_RESOURCE_TYPES)


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"base_url": "http://ehr.example.org/fhir"}, ["body", "connection_config", "base_url"]),
        ({"base_url": "ftp://ehr.example.org/fhir"}, ["body", "connection_config", "base_url"]),
        ({"base_url": "https://user:pw@ehr.example.org/fhir"}, ["body", "connection_config", "base_url"]),
        ({"page_size": 0}, ["body", "connection_config", "page_size"]),
        ({"page_size": 1001}, ["body", "connection_config", "page_size"]),
        ({"resource_types": ["Patient", "Nonsense"]}, ["body", "connection_config", "resource_types"]),
        ({"auth": {"type": "bearer"}}, ["body", "connection_config", "auth", "bearer", "token_secret_arn"]),
        ({"auth": {"type": "bearer", "token_secret_arn": "not-an-arn"}}, ["body", "connection_config", "auth", "bearer", "token_secret_arn"]),
        ({"auth": {"type": "kerberos"}}, ["body", "connection_config", "auth"]),
        ({"unexpected": 1}, ["body", "connection_config", "unexpected"]),
    ],
)
def test_invalid_connection_config_is_422_naming_the_field(
    gateway: Gateway, workspace: dict[str, Any], change: dict[str, Any], loc: list[str]
) -> None:
    body = fhir_source()
    body["connection_config"] = {**body["connection_config"], **change}
    reply = create(gateway, workspace, body)
    assert reply.status == 422, reply.body
    assert loc in [d["loc"] for d in reply.body["detail"]], reply.body["detail"]


def test_http_is_accepted_for_loopback_only(gateway: Gateway, workspace: dict[str, Any]) -> None:
    for url in ("http://127.0.0.1:8103/fhir/R4", "http://localhost:8103/fhir/R4", "http://[::1]:8103/fhir"):
        body = fhir_source()
        body["connection_config"] = {**body["connection_config"], "base_url": url, "auth": {"type": "none"}}
        assert create(gateway, workspace, body).status == 201, url


@pytest.mark.parametrize(
    ("auth", "field"),
    [
        ({"type": "bearer", "token": "s3cr3t-value-123"}, "token"),
        ({"type": "smart_backend_services", "private_key": "-----BEGIN PRIVATE KEY-----s3cr3t-value-123"}, "private_key"),
        ({"type": "none", "client_secret": "s3cr3t-value-123"}, "client_secret"),
    ],
)
def test_inline_secrets_are_refused_by_name_and_never_echoed(
    gateway: Gateway, workspace: dict[str, Any], auth: dict[str, Any], field: str
) -> None:
    body = fhir_source()
    body["connection_config"] = {**body["connection_config"], "auth": auth}
    reply = create(gateway, workspace, body)
    assert reply.status == 422
    assert ["body", "connection_config", "auth", field] in [d["loc"] for d in reply.body["detail"]]
    assert "s3cr3t-value-123" not in json.dumps(reply.body)


def test_schedule_is_required_and_validated_for_scheduled_sources(gateway: Gateway, workspace: dict[str, Any]) -> None:
    missing = create(gateway, workspace, fhir_source(sync_strategy="scheduled"))
    assert missing.status == 422 and missing.body["detail"][0]["loc"] == ["body", "sync_schedule"]
    bad = create(gateway, workspace, fhir_source(sync_strategy="scheduled", sync_schedule="every 5 minutes"))
    assert bad.status == 422 and bad.body["detail"][0]["loc"] == ["body", "sync_schedule"]
    bad_cadence = fhir_source(sync_strategy="scheduled", sync_schedule="rate(1 hour)")
    bad_cadence["connection_config"]["cadence"] = {"Patient": "rate(0 minutes)"}
    reply = create(gateway, workspace, bad_cadence)
    assert reply.status == 422 and reply.body["detail"][0]["loc"][:3] == ["body", "connection_config", "cadence"]
    ok = fhir_source(sync_strategy="scheduled", sync_schedule="cron(0/15 * * * ? *)")
    ok["connection_config"]["cadence"] = {"Patient": "rate(5 minutes)"}
    ok["connection_config"]["business_hours"] = {"timezone": "America/Chicago", "days": "MON-FRI", "start": "07:00", "end": "19:00"}
    assert create(gateway, workspace, ok).status == 201


def test_permissions_admin_to_manage_read_to_read(gateway: Gateway, workspace: dict[str, Any]) -> None:
    ds = create(gateway, workspace, fhir_source()).body
    viewer = new_key(gateway, workspace["id"], role="viewer")
    base = f"/v1/{workspace['id']}/data-sources"
    assert gateway.call("GET", base, token=viewer).status == 200
    assert gateway.call("GET", f"{base}/{ds['id']}", token=viewer).status == 200
    assert gateway.call("GET", f"{base}/{ds['id']}/status", token=viewer).status == 200
    assert gateway.call("POST", base, token=viewer, body=fhir_source()).status == 403
    assert gateway.call("PATCH", f"{base}/{ds['id']}", token=viewer, body={"is_active": False}).status == 403
    assert gateway.call("DELETE", f"{base}/{ds['id']}", token=viewer).status == 403
    assert gateway.call("POST", f"{base}/{ds['id']}/sync", token=viewer).status == 403


def test_other_workspaces_sources_are_unreachable(gateway: Gateway, workspace: dict[str, Any]) -> None:
    ds = create(gateway, workspace, fhir_source()).body
    other = new_workspace(gateway)
    other_key = new_key(gateway, other["id"])
    assert gateway.call("GET", f"/v1/{workspace['id']}/data-sources/{ds['id']}", token=other_key).status == 403
    assert gateway.call("GET", f"/v1/{other['id']}/data-sources/{ds['id']}", token=other_key).status == 404
    assert gateway.call("GET", f"/v1/{other['id']}/data-sources", token=other_key).body["items"] == []


def test_list_filters_search_and_paging(gateway: Gateway, workspace: dict[str, Any]) -> None:
    made = []
    for i in range(5):
        made.append(create(gateway, workspace, fhir_source(name=f"ehr-{i}")).body)
    made.append(create(gateway, workspace, {"name": "partner drop", "source_type": "file_drop"}).body)
    gateway.call("PATCH", f"/v1/{workspace['id']}/data-sources/{made[0]['id']}", token=workspace["key"], body={"is_active": False})
    base = f"/v1/{workspace['id']}/data-sources"

    page = gateway.call("GET", base, token=workspace["key"], query={"limit": "4"})
    assert page.status == 200
    assert_matches("PaginatedResponse_DataSourceResponse_", page.body)
    assert page.body["total"] == 6 and page.body["has_more"] is True and len(page.body["items"]) == 4
    rest = gateway.call("GET", base, token=workspace["key"], query={"limit": "4", "continuation_token": str(page.body["continuation_token"])})
    assert rest.body["has_more"] is False and len(rest.body["items"]) == 2
    ids = [i["id"] for i in page.body["items"] + rest.body["items"]]
    assert sorted(ids) == sorted(m["id"] for m in made) and len(set(ids)) == 6

    assert gateway.call("GET", base, token=workspace["key"], query={"is_active": "false"}).body["total"] == 1
    assert gateway.call("GET", base, token=workspace["key"], query={"source_type": "file_drop"}).body["total"] == 1
    assert gateway.call("GET", base, token=workspace["key"], query={"search": "EHR-3"}).body["items"][0]["name"] == "ehr-3"
    assert gateway.call("GET", base, token=workspace["key"], query={"search": made[2]["id"]}).body["total"] == 1
    assert gateway.call("GET", base, token=workspace["key"], query={"limit": "0"}).status == 422
    assert gateway.call("GET", base, token=workspace["key"], query={"limit": "101"}).status == 422


def test_status_history_and_trigger(gateway: Gateway, workspace: dict[str, Any], aws: dict[str, str]) -> None:
    ds = create(gateway, workspace, fhir_source()).body
    base = f"/v1/{workspace['id']}/data-sources/{ds['id']}"
    status = gateway.call("GET", f"{base}/status", token=workspace["key"])
    assert status.status == 200
    assert_matches("DataSourceStatusResponse", status.body)
    assert status.body["event_count"] == 0 and status.body["health_status"] == "unknown"

    history = gateway.call("GET", f"{base}/sync-history", token=workspace["key"], query={"days": "7"})
    assert history.status == 200
    assert_matches("DataSourceSyncHistoryResponse", history.body)
    assert len(history.body["timeline"]) == 7 and history.body["recent_failures"] == []
    assert gateway.call("GET", f"{base}/sync-history", token=workspace["key"], query={"days": "91"}).status == 422
    assert gateway.call("GET", f"{base}/sync-history", token=workspace["key"], query={"days": "0"}).status == 422

    started = gateway.call("POST", f"{base}/sync", token=workspace["key"])
    assert started.status == 202, started.body
    assert_matches("TriggerSyncResponse", started.body)
    messages = boto3.client("sqs").receive_message(QueueUrl=aws["SYNC_QUEUE_URL"], MaxNumberOfMessages=10)["Messages"]
    bodies = sorted((json.loads(m["Body"])["resource_type"], json.loads(m["Body"])["reason"]) for m in messages)
    assert bodies == [("Encounter", "manual"), ("Patient", "manual")]


def test_trigger_rejects_inactive_non_fhir_and_unknown(gateway: Gateway, workspace: dict[str, Any]) -> None:
    drop = create(gateway, workspace, {"name": "drop", "source_type": "file_drop"}).body
    base = f"/v1/{workspace['id']}/data-sources"
    assert gateway.call("POST", f"{base}/{drop['id']}/sync", token=workspace["key"]).status == 400
    ds = create(gateway, workspace, fhir_source()).body
    gateway.call("PATCH", f"{base}/{ds['id']}", token=workspace["key"], body={"is_active": False})
    assert gateway.call("POST", f"{base}/{ds['id']}/sync", token=workspace["key"]).status == 400
    assert gateway.call("POST", f"{base}/00000000-0000-4000-8000-000000000000/sync", token=workspace["key"]).status == 404


def test_trigger_is_409_while_a_poll_holds_the_lease(gateway: Gateway, workspace: dict[str, Any]) -> None:
    from fhir_platform.storage.sync import SyncRepository

    ds = create(gateway, workspace, fhir_source()).body
    SyncRepository().acquire(workspace["id"], ds["id"], "Patient", "someone", "2026-01-01T00:00:00.000Z", "2999-01-01T00:00:00.000Z")
    reply = gateway.call("POST", f"/v1/{workspace['id']}/data-sources/{ds['id']}/sync", token=workspace["key"])
    assert reply.status == 409
    assert_matches("TriggerSyncConflictResponse", reply.body)
    assert reply.body["details"]["last_poll_at"] == "2026-01-01T00:00:00.000Z"


def test_workspace_cap_on_data_sources(gateway: Gateway, workspace: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from fhir_platform.storage import data_sources

    monkeypatch.setattr(data_sources, "MAX_DATA_SOURCES", 2)
    assert create(gateway, workspace, fhir_source()).status == 201
    second = create(gateway, workspace, fhir_source()).body
    assert create(gateway, workspace, fhir_source()).status == 409
    gateway.call("DELETE", f"/v1/{workspace['id']}/data-sources/{second['id']}", token=workspace["key"])
    assert create(gateway, workspace, fhir_source()).status == 201


def test_admin_credential_cannot_create_in_a_missing_workspace(gateway: Gateway) -> None:
    reply = gateway.call("POST", "/v1/00000000-0000-4000-8000-000000000000/data-sources", token=ADMIN_KEY, body=fhir_source())
    assert reply.status == 404
