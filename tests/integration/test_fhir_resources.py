"""FHIR create/read/update/history/status through the real handlers, events and moto."""

from __future__ import annotations

import threading

import pytest

from fhir_platform.world.entities import anchor_entity_id
from tests.integration.conftest import ADMIN_KEY, new_key, new_workspace
from tests.support.gateway import Gateway


def base(ws: dict) -> str:
    return f"/v1/{ws['id']}/fhir/resources"


def create(gateway: Gateway, ws: dict, data: dict) -> dict:
    reply = gateway.call("POST", f"{base(ws)}/{data['resourceType']}", token=ws["key"], body={"data": data})
    assert reply.status == 201, reply.body
    return reply.body


PATIENT = {"resourceType": "Patient", "name": [{"family": "Rivera", "given": ["Ana"]}], "telecom": [{"system": "phone", "value": "555-0100"}]}


def test_create_assigns_id_meta_entity_and_etag(gateway: Gateway, workspace: dict) -> None:
    reply = gateway.call("POST", f"{base(workspace)}/Patient", token=workspace["key"], body={"data": {**PATIENT, "id": "client-id"}})
    assert reply.status == 201
    body = reply.body
    assert body["resource_id"] != "client-id" and body["data"]["id"] == body["resource_id"]
    assert body["data"]["meta"]["versionId"] == "1" and body["data"]["meta"]["lastUpdated"].endswith("Z")
    assert body["entity_id"] and reply.headers["ETag"] == 'W/"1"'
    read = gateway.call("GET", f"{base(workspace)}/Patient/{body['resource_id']}", token=workspace["key"])
    assert read.status == 200 and read.body == body and read.headers["ETag"] == 'W/"1"'


def test_compartment_resources_carry_the_patients_entity(gateway: Gateway, workspace: dict) -> None:
    patient = create(gateway, workspace, PATIENT)
    obs = create(
        gateway,
        workspace,
        {"resourceType": "Observation", "status": "final", "code": {"text": "HR"}, "subject": {"reference": f"Patient/{patient['resource_id']}"}},
    )
    allergy = create(gateway, workspace, {"resourceType": "AllergyIntolerance", "patient": {"reference": f"Patient/{patient['resource_id']}"}})
    org = create(gateway, workspace, {"resourceType": "Organization", "name": "Acme"})
    dangling = create(gateway, workspace, {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/nope"}})
    assert obs["entity_id"] == allergy["entity_id"] == patient["entity_id"]
    # an Organization is its own world-model entity (anchor id); a dangling reference has none
    assert org["entity_id"] == anchor_entity_id(workspace["id"], "Organization", org["resource_id"])
    assert dangling["entity_id"] is None


def test_put_creates_with_client_id_then_updates(gateway: Gateway, workspace: dict) -> None:
    url = f"{base(workspace)}/Patient/ehr-123"
    first = gateway.call("PUT", url, token=workspace["key"], body={"data": {**PATIENT, "id": "ehr-123"}})
    assert first.status == 201 and first.body["resource_id"] == "ehr-123"
    changed = {**PATIENT, "name": [{"family": "Rivera", "given": ["Ana", "Maria"]}], "telecom": [{"system": "phone", "value": "555-0199"}]}
    second = gateway.call("PUT", url, token=workspace["key"], body={"data": changed})
    assert second.status == 200 and second.body["data"]["meta"]["versionId"] == "2" and second.headers["ETag"] == 'W/"2"'
    same = gateway.call("PUT", url, token=workspace["key"], body={"data": changed})
    assert same.status == 200 and same.body["data"]["meta"]["versionId"] == "2"  # identical content: no new version


def test_history_newest_first_with_fields_affected_and_paging(gateway: Gateway, workspace: dict) -> None:
    url = f"{base(workspace)}/Patient/h-1"
    versions = [
        {**PATIENT, "id": "h-1"},
        {**PATIENT, "id": "h-1", "name": [{"family": "Rivera", "given": ["Anna"]}]},
        {**PATIENT, "id": "h-1", "name": [{"family": "Rivera", "given": ["Anna"]}], "telecom": [{"system": "phone", "value": "555-0100"}, {"system": "email", "value": "a@example.org"}]},
        {**PATIENT, "id": "h-1", "name": [{"family": "Rivera", "given": ["Anna"]}], "telecom": [{"system": "phone", "value": "555-0111"}]},
    ]
    for data in versions:
        assert gateway.call("PUT", url, token=workspace["key"], body={"data": data}).status in (200, 201)
    page = gateway.call("GET", f"{url}/history", token=workspace["key"], query={"limit": "2"})
    assert page.status == 200
    body = page.body
    assert body["total"] == 4 and body["has_more"] is True and body["next_offset"] == 2
    assert [e["data"]["meta"]["versionId"] for e in body["entries"]] == ["4", "3"]
    assert [e["is_current"] for e in body["entries"]] == [True, False]
    assert body["entries"][0]["fields_affected"] == ["telecom.0.value", "telecom.1"]
    assert body["entries"][1]["fields_affected"] == ["telecom.1"]
    e = body["entries"][0]
    assert e["event_type"] == "updated" and e["source"] == "api" and e["confidence"] == 1.0 and e["created_at"] and e["effective_at"]
    rest = gateway.call("GET", f"{url}/history", token=workspace["key"], query={"limit": "2", "offset": "2"}).body
    assert [x["data"]["meta"]["versionId"] for x in rest["entries"]] == ["2", "1"]
    assert rest["has_more"] is False and rest["next_offset"] is None
    assert rest["entries"][0]["fields_affected"] == ["name.0.given"]
    assert rest["entries"][1]["event_type"] == "created"
    beyond = gateway.call("GET", f"{url}/history", token=workspace["key"], query={"offset": "10"}).body
    assert beyond["entries"] == [] and beyond["total"] == 4


def test_history_bounds_and_missing_resource(gateway: Gateway, workspace: dict) -> None:
    assert gateway.call("GET", f"{base(workspace)}/Patient/none/history", token=workspace["key"]).status == 404
    for bad in ({"limit": "0"}, {"limit": "51"}, {"offset": "-1"}, {"limit": "x"}):
        reply = gateway.call("GET", f"{base(workspace)}/Patient/none/history", token=workspace["key"], query=bad)
        assert reply.status == 422 and reply.body["detail"][0]["loc"][0] == "query", bad


def test_if_match(gateway: Gateway, workspace: dict) -> None:
    url = f"{base(workspace)}/Patient/m-1"
    gateway.call("PUT", url, token=workspace["key"], body={"data": PATIENT})
    ok = gateway.call("PUT", url, token=workspace["key"], body={"data": {**PATIENT, "gender": "female"}}, headers={"If-Match": 'W/"1"'})
    assert ok.status == 200
    stale = gateway.call("PUT", url, token=workspace["key"], body={"data": {**PATIENT, "gender": "male"}}, headers={"If-Match": 'W/"1"'})
    assert stale.status == 412 and stale.body["error"] == "precondition_failed"
    assert gateway.call("GET", url, token=workspace["key"]).body["data"]["gender"] == "female"
    garbage = gateway.call("PUT", url, token=workspace["key"], body={"data": PATIENT}, headers={"If-Match": "banana"})
    assert garbage.status == 400 and garbage.body["detail"][0]["loc"] == ["header", "if-match"]
    absent = gateway.call("PUT", f"{base(workspace)}/Patient/never", token=workspace["key"], body={"data": PATIENT}, headers={"If-Match": 'W/"1"'})
    assert absent.status == 412


def test_concurrent_writers_never_lose_an_update(aws: dict, workspace: dict) -> None:
    """Two services race on the same version: exactly one commit wins, the other must retry."""
    from fhir_platform.resources.service import ResourceService, WriteContext
    from fhir_platform.storage.resources import VersionConflict

    svc = ResourceService(indexer=lambda *a, **k: [])
    ws = workspace["id"]
    svc.upsert(ws, "Patient", "race", dict(PATIENT))
    base_version = svc.store.get(ws, "Patient", "race")
    a = svc.prepare(ws, "Patient", "race", {**PATIENT, "id": "race", "gender": "male"}, base_version, WriteContext())
    b = svc.prepare(ws, "Patient", "race", {**PATIENT, "id": "race", "gender": "female"}, base_version, WriteContext())
    svc.store.commit(a)
    with pytest.raises(VersionConflict):
        svc.store.commit(b)
    assert svc.store.get(ws, "Patient", "race").data["gender"] == "male"
    # without If-Match the service retries from a fresh read: both updates land as versions
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda g=g: results.append(svc.upsert(ws, "Patient", "race", {**PATIENT, "gender": g}).resource.version))
        for g in ("other", "unknown")
    ]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(results) == [3, 4]
    assert svc.history(ws, "Patient", "race", 10, 0).total == 4


def test_bad_input_is_named(gateway: Gateway, workspace: dict) -> None:
    key = workspace["key"]
    unknown_type = gateway.call("POST", f"{base(workspace)}/Spaceship", token=key, body={"data": {"resourceType": "Spaceship"}})
    assert unknown_type.status == 400 and unknown_type.body["detail"][0]["loc"] == ["path", "resource_type"]
    unknown_element = gateway.call("POST", f"{base(workspace)}/Patient", token=key, body={"data": {**PATIENT, "favouriteColour": "blue"}})
    assert unknown_element.status == 422 and ["body", "data", "favouriteColour"] in [d["loc"] for d in unknown_element.body["detail"]]
    bad_value = gateway.call("POST", f"{base(workspace)}/Patient", token=key, body={"data": {**PATIENT, "birthDate": "yesterday"}})
    assert bad_value.status == 422 and bad_value.body["detail"][0]["loc"] == ["body", "data", "birthDate"]
    nested = gateway.call("POST", f"{base(workspace)}/Patient", token=key, body={"data": {"resourceType": "Patient", "name": [{"given": "Ana"}]}})
    assert nested.status == 422 and nested.body["detail"][0]["loc"] == ["body", "data", "name", 0, "given"]
    mismatch = gateway.call("POST", f"{base(workspace)}/Patient", token=key, body={"data": {"resourceType": "Observation"}})
    assert mismatch.status == 422 and mismatch.body["detail"][0]["loc"] == ["body", "data", "resourceType"]
    id_mismatch = gateway.call("PUT", f"{base(workspace)}/Patient/abc", token=key, body={"data": {**PATIENT, "id": "xyz"}})
    assert id_mismatch.status == 422 and id_mismatch.body["detail"][0]["loc"] == ["body", "data", "id"]
    bad_id = gateway.call("PUT", f"{base(workspace)}/Patient/bad_id!", token=key, body={"data": PATIENT})
    assert bad_id.status == 400 and bad_id.body["detail"][0]["loc"] == ["path", "resource_id"]
    not_json = gateway.call("POST", f"{base(workspace)}/Patient", token=key, raw_body="{not json")
    assert not_json.status == 422
    no_data = gateway.call("POST", f"{base(workspace)}/Patient", token=key, body={"resourceType": "Patient"})
    assert no_data.status == 422 and ["body", "data"] in [d["loc"] for d in no_data.body["detail"]]
    bad_ws = gateway.call("GET", "/v1/not-a-uuid/fhir/status", token=ADMIN_KEY)
    assert bad_ws.status == 422 and bad_ws.body["detail"][0]["loc"] == ["path", "workspace_id"]
    # nothing was written by any of the failures
    status = gateway.call("GET", f"/v1/{workspace['id']}/fhir/status", token=key).body
    assert status["event_count"] == 0


def test_oversized_body_is_refused_with_413(gateway: Gateway, workspace: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    big = {"resourceType": "Patient", "text": {"status": "generated", "div": "<div>" + "x" * (5 * 1024 * 1024) + "</div>"}}
    reply = gateway.call("POST", f"{base(workspace)}/Patient", token=workspace["key"], body={"data": big})
    assert reply.status == 413 and "/fhir/imports" in reply.body["message"]


def test_large_resource_is_stored_in_s3_and_read_back(gateway: Gateway, workspace: dict, aws: dict) -> None:
    import boto3

    data = {"resourceType": "Patient", "id": "big", "text": {"status": "generated", "div": "<div>" + "y" * 400_000 + "</div>"}}
    assert gateway.call("PUT", f"{base(workspace)}/Patient/big", token=workspace["key"], body={"data": data}).status == 201
    read = gateway.call("GET", f"{base(workspace)}/Patient/big", token=workspace["key"])
    assert read.status == 200 and read.body["data"]["text"]["div"] == data["text"]["div"]
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=aws["IMPORTS_BUCKET"])["Contents"]]
    assert keys == [f"resources/{workspace['id']}/Patient/big/1.json"]


def test_fhir_gate_for_unconfigured_workspace(gateway: Gateway) -> None:
    ws = new_workspace(gateway, fhir=False)
    key = new_key(gateway, ws["id"])
    reply = gateway.call("POST", f"/v1/{ws['id']}/fhir/resources/Patient", token=key, body={"data": PATIENT})
    assert reply.status == 409 and reply.body["error"] == "fhir_not_configured" and "fhir_store_url" in reply.body["message"]
    status = gateway.call("GET", f"/v1/{ws['id']}/fhir/status", token=key)
    assert status.status == 200 and status.body["configured"] is False
    gateway.call("PATCH", f"/v1/workspaces/{ws['id']}", token=key, body={"ehr_type": "cerner", "fhir_store_url": "https://fhir.example.org/r4"})
    assert gateway.call("POST", f"/v1/{ws['id']}/fhir/resources/Patient", token=key, body={"data": PATIENT}).status == 201


def test_status_counts_come_from_write_time_counters(gateway: Gateway, workspace: dict) -> None:
    p = create(gateway, workspace, PATIENT)
    create(gateway, workspace, {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": f"Patient/{p['resource_id']}"}})
    gateway.call("PUT", f"{base(workspace)}/Patient/{p['resource_id']}", token=workspace["key"], body={"data": {**PATIENT, "gender": "other"}})
    status = gateway.call("GET", f"/v1/{workspace['id']}/fhir/status", token=workspace["key"]).body
    assert status["configured"] is True and status["connector_type"] == "epic"
    assert status["event_count"] == 3 and status["resource_type_counts"] == {"Patient": 1, "Observation": 1}
    assert status["entity_count"] == 1 and status["entity_type_counts"] == {"patient": 1}
    assert status["last_change_at"]


def test_no_phi_in_logs(gateway: Gateway, workspace: dict, capsys: pytest.CaptureFixture) -> None:
    create(gateway, workspace, {**PATIENT, "name": [{"family": "Zyxwvutsrq"}]})
    gateway.call("POST", f"{base(workspace)}/Patient", token=workspace["key"], body={"data": {**PATIENT, "name": [{"family": "Qwertyuiop"}], "bogus": 1}})
    out = capsys.readouterr()
    assert "Zyxwvutsrq" not in out.out + out.err and "Qwertyuiop" not in out.out + out.err
    assert workspace["key"] not in out.out + out.err


@pytest.mark.parametrize("media_type", ["application/fhir+json", "application/fhir+json; charset=utf-8", "application/json+fhir"])
def test_fhir_json_media_types_are_json(gateway: Gateway, workspace: dict, media_type: str) -> None:
    """FHIR clients send ``application/fhir+json``: the body is parsed and validated like JSON."""
    reply = gateway.call(
        "POST", f"{base(workspace)}/Patient", token=workspace["key"], body={"data": PATIENT}, headers={"Content-Type": media_type}
    )
    assert reply.status == 201, reply.body
    bad = gateway.call(
        "POST", f"{base(workspace)}/Patient", token=workspace["key"], body={"data": "nope"}, headers={"Content-Type": media_type}
    )
    assert bad.status == 422 and bad.body["detail"][0]["loc"][:2] == ["body", "data"]


def test_losing_every_race_is_409_not_500(gateway: Gateway, workspace: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PUT without If-Match retries a lost race from a fresh read; when other writers win every
    attempt, the answer is a 409 saying nothing was written (it was a 500)."""
    from fhir_platform.storage.resources import ResourceStore, VersionConflict

    real_commit = ResourceStore.commit
    attempts = []

    def always_lose(self, change, touches=None):  # noqa: ANN001
        attempts.append(change.version)
        raise VersionConflict("another writer won")

    monkeypatch.setattr(ResourceStore, "commit", always_lose)
    reply = gateway.call("PUT", f"{base(workspace)}/Patient/busy-1", token=workspace["key"], body={"data": PATIENT})
    assert reply.status == 409, reply.body
    assert reply.body["error"] == "conflict" and "retry" in reply.body["message"]
    assert len(attempts) == 5  # MAX_WRITE_ATTEMPTS fresh reads, then the answer
    monkeypatch.setattr(ResourceStore, "commit", real_commit)
    assert gateway.call("GET", f"{base(workspace)}/Patient/busy-1", token=workspace["key"]).status == 404
