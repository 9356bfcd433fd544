"""Inbound EHR sync against a real FHIR R4 server (the demo EHR: Medplum's FHIR router over its
in-memory repository, run by Node) with the platform over moto in-process.

First sync with counts checked against the EHR, incremental sync of an edit (new version with
fields_affected), many resources sharing one lastUpdated across page boundaries, lease contention,
20 % injected faults with nothing lost or duplicated, a page failing past its retries (recorded,
cursor held, next poll recovers and resolves it), SMART Backend Services with a real key, a bad
token, an off-origin next link, invalid resources; deletes: a Patient deleted in the EHR becomes
a delete event after the next poll (type-level _history) and a re-creation re-creates it, a failed
history read is asked again from the same instant, a server without type-level _history is asked
once, and a 410 on re-reading one resource is a delete."""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from typing import Any, Iterator

import boto3
import requests
import pytest
from joserfc.jwk import ECKey

from local_stack.demo_ehr import DemoEhr
from tests.support.demo_ehr import NEEDS_NODE, emptied, started_demo_ehr
from tests.integration.conftest import new_key, new_workspace
from tests.support.contract import assert_matches
from tests.support.gateway import Gateway
from tests.support.shared import FIXTURES

pytestmark = [
    NEEDS_NODE,
    pytest.mark.xdist_group("demo_ehr_sync"),
]

SYNTHEA = FIXTURES / "synthea" / "intersystems-community_iris-fhir-template"
PATIENT_BUNDLE = SYNTHEA / "Carroll471_O'Hara248_274f5452-2a39-44c4-a7cb-f36de467762e.json"
TYPES = ["Patient", "Encounter", "Condition", "Observation", "Immunization", "Procedure"]
T = "2026-03-01T10:00:00.000Z"


@pytest.fixture(scope="module")
def ehr() -> Iterator[DemoEhr]:
    with started_demo_ehr() as server:
        yield server


@pytest.fixture
def clean_ehr(ehr: DemoEhr) -> Iterator[DemoEhr]:
    yield emptied(ehr)
    emptied(ehr)


def fast_retry_factory(cfg: Any) -> Any:
    from fhir_platform.connector.auth import token_provider
    from fhir_platform.connector.http import EhrClient, RetryPolicy

    # ~21 % of requests fail at random in the fault test: 10 attempts make a page failing them all ~4e-6
    policy = RetryPolicy(attempts=10, backoff_base=0.01, backoff_max=0.05, read_timeout=2.0, deadline=30.0)
    return EhrClient(cfg.base_url, token_provider(cfg.auth.model_dump(), retry=policy), retry=policy)


@pytest.fixture
def platform(gateway: Gateway, clean_ehr: DemoEhr) -> dict[str, Any]:
    from fhir_platform.connector.inbound import InboundPoller

    ws = new_workspace(gateway)
    key = new_key(gateway, ws["id"])
    return {"gateway": gateway, "ws": ws["id"], "key": key, "ehr": clean_ehr, "poller": InboundPoller(client_factory=fast_retry_factory)}


def add_source(p: dict[str, Any], *, types: list[str] = TYPES, page_size: int = 50, auth: dict | None = None) -> str:
    body = {
        "name": "demo-ehr",
        "source_type": "fhir_store",
        "connection_config": {"base_url": p["ehr"].base_url, "resource_types": types, "page_size": page_size, "auth": auth or {"type": "none"}},
    }
    reply = p["gateway"].call("POST", f"/v1/{p['ws']}/data-sources", token=p["key"], body=body)
    assert reply.status == 201, reply.body
    return reply.body["id"]


def ehr_counts(ehr: DemoEhr, types: list[str]) -> dict[str, int]:
    return {t: ehr.search(t, _summary="count")["total"] for t in types}


def platform_counts(p: dict[str, Any]) -> dict[str, int]:
    status = p["gateway"].call("GET", f"/v1/{p['ws']}/fhir/status", token=p["key"]).body
    return status["resource_type_counts"]


def failures(p: dict[str, Any], **query: str) -> dict[str, Any]:
    reply = p["gateway"].call("GET", f"/v1/{p['ws']}/fhir/sync-failures", token=p["key"], query=query or None)
    assert reply.status == 200, reply.body
    return reply.body


def patient(i: int, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": f"p{i:03d}", "name": [{"family": f"Family{i}", "given": ["Pat"]}], "gender": "female", **extra}


def test_first_sync_matches_the_ehr_then_an_edit_is_a_new_version(platform: dict[str, Any]) -> None:
    p, ehr = platform, platform["ehr"]
    assert ehr.seed([PATIENT_BUNDLE])["failed"] == 0
    ds = add_source(p)
    for rt in TYPES:
        result = p["poller"].poll(p["ws"], ds, rt)
        assert result.status == "success", (rt, result)
    expected = ehr_counts(ehr, TYPES)
    assert expected["Observation"] > 50  # more than one page
    got = platform_counts(p)
    assert {t: got.get(t, 0) for t in TYPES} == expected

    # every synced resource carries its provenance and the patient's entity
    pid = ehr.search("Patient")["entry"][0]["resource"]["id"]
    stored = p["gateway"].call("GET", f"/v1/{p['ws']}/fhir/resources/Patient/{pid}", token=p["key"]).body
    assert stored["entity_id"]
    enc = ehr.search("Encounter", _count=1)["entry"][0]["resource"]
    stored_enc = p["gateway"].call("GET", f"/v1/{p['ws']}/fhir/resources/Encounter/{enc['id']}", token=p["key"]).body
    assert stored_enc["entity_id"] == stored["entity_id"]
    history = p["gateway"].call("GET", f"/v1/{p['ws']}/fhir/resources/Patient/{pid}/history", token=p["key"]).body
    first = history["entries"][0]
    assert (first["source"], first["data_source_id"], first["source_system"]) == ("ehr_sync", ds, ehr.base_url)
    assert first["synced_at"] and first["effective_at"] == ehr.read("Patient", pid)["meta"]["lastUpdated"]

    # a second poll with nothing new writes nothing
    again = p["poller"].poll(p["ws"], ds, "Observation")
    assert again.status == "success" and again.written == 0 and again.received >= 1

    # an edit in the EHR arrives as version 2 with fields_affected
    resource = ehr.read("Patient", pid)
    resource["telecom"] = [{"system": "phone", "value": "555-123-4567", "use": "home"}]
    ehr.update(resource)
    result = p["poller"].poll(p["ws"], ds, "Patient")
    assert result.written == 1
    history = p["gateway"].call("GET", f"/v1/{p['ws']}/fhir/resources/Patient/{pid}/history", token=p["key"]).body
    entries = history["entries"]
    assert entries[0]["version"] == 2 and entries[0]["is_current"] and history["total"] == 2
    assert "telecom" in entries[0]["fields_affected"] or any(f.startswith("telecom") for f in entries[0]["fields_affected"])
    assert entries[0]["data"]["telecom"][0]["value"] == "555-123-4567"

    status = p["gateway"].call("GET", f"/v1/{p['ws']}/data-sources/{ds}/status", token=p["key"]).body
    assert_matches("DataSourceStatusResponse", status)
    assert status["health_status"] == "healthy" and status["last_sync_status"] == "success"
    assert status["event_count"] == sum(expected.values()) + 1
    fhir_status = p["gateway"].call("GET", f"/v1/{p['ws']}/fhir/status", token=p["key"]).body
    assert fhir_status["sync_healthy"] is True and fhir_status["last_poll_at"]


def test_many_resources_sharing_one_last_updated_across_pages(platform: dict[str, Any]) -> None:
    p, ehr = platform, platform["ehr"]
    ehr.put_resources([patient(i) for i in range(25)], last_updated=T)
    ds = add_source(p, types=["Patient"], page_size=10)
    first = p["poller"].poll(p["ws"], ds, "Patient")
    assert (first.status, first.pages, first.written) == ("success", 3, 25)
    # more arrive at the very same instant after the checkpoint: the inclusive cursor finds them
    ehr.put_resources([patient(i) for i in range(25, 32)], last_updated=T)
    second = p["poller"].poll(p["ws"], ds, "Patient")
    assert second.written == 7 and second.unchanged == 25
    assert platform_counts(p)["Patient"] == 32


def test_lease_contention_one_poll_at_a_time_and_409(platform: dict[str, Any]) -> None:
    p, ehr = platform, platform["ehr"]
    ehr.put_resources([patient(i) for i in range(5)], last_updated=T)
    ds = add_source(p, types=["Patient"])
    ehr.faults("hang", count=1, hang_seconds=1.5, path_contains="/Patient")
    results: list[Any] = []
    slow = threading.Thread(target=lambda: results.append(p["poller"].poll(p["ws"], ds, "Patient")))
    slow.start()
    time.sleep(0.5)
    assert p["poller"].poll(p["ws"], ds, "Patient").status == "busy"
    reply = p["gateway"].call("POST", f"/v1/{p['ws']}/data-sources/{ds}/sync", token=p["key"])
    assert reply.status == 409, reply.body
    assert_matches("TriggerSyncConflictResponse", reply.body)
    slow.join(30)
    assert results and results[0].status == "success" and results[0].written == 5
    assert p["gateway"].call("POST", f"/v1/{p['ws']}/data-sources/{ds}/sync", token=p["key"]).status == 202


def test_twenty_percent_faults_lose_and_duplicate_nothing(platform: dict[str, Any]) -> None:
    p, ehr = platform, platform["ehr"]
    ehr.put_resources([patient(i) for i in range(60)], last_updated="2026-03-01T10:00:00.000Z")
    ehr.put_resources([patient(i) for i in range(60, 120)], last_updated="2026-03-01T11:00:00.000Z")
    ds = add_source(p, types=["Patient"], page_size=10)
    before = ehr.stats()["faults_injected"]["total"]
    ehr.faults("500", count=2, path_contains="/Patient")  # at least two, whatever the dice say
    ehr.faults("500", rate=0.1, path_contains="/Patient")
    ehr.faults("429", rate=0.1, retry_after=0, path_contains="/Patient")  # ~19 % of requests fail
    ehr.faults("reset", rate=0.02, path_contains="/Patient")
    result = p["poller"].poll(p["ws"], ds, "Patient")
    assert result.status == "success", result
    assert result.written == 120
    assert platform_counts(p)["Patient"] == 120
    history = p["gateway"].call("GET", f"/v1/{p['ws']}/fhir/resources/Patient/p007/history", token=p["key"]).body
    assert history["total"] == 1  # written once, never twice
    assert ehr.stats()["faults_injected"]["total"] >= before + 2


def test_a_page_failing_past_its_retries_is_recorded_and_the_next_poll_recovers(platform: dict[str, Any]) -> None:
    p, ehr = platform, platform["ehr"]
    ehr.put_resources([patient(i) for i in range(15)], last_updated=T)
    ds = add_source(p, types=["Patient"], page_size=10)
    ehr.faults("500", count=100, path_contains="/Patient")
    failed = p["poller"].poll(p["ws"], ds, "Patient")
    assert failed.status == "error" and failed.written == 0
    page = failures(p, fhir_resource_type="Patient")
    assert page["total"] == 1
    f = page["failures"][0]
    assert (f["direction"], f["fhir_resource_id"], f["resolved"], f["data_source_id"]) == ("inbound", None, False, ds)
    assert "EhrUnavailable" in f["error"]
    ds_status = p["gateway"].call("GET", f"/v1/{p['ws']}/data-sources/{ds}", token=p["key"]).body
    assert ds_status["health_status"] == "degraded" and ds_status["last_sync_status"] == "error"
    history = p["gateway"].call("GET", f"/v1/{p['ws']}/data-sources/{ds}/sync-history", token=p["key"], query={"days": "1"}).body
    assert history["timeline"][0]["failed_count"] == 1 and history["recent_failures"][0]["fhir_resource_type"] == "Patient"

    ehr.clear_faults()
    recovered = p["poller"].poll(p["ws"], ds, "Patient")
    assert recovered.status == "success" and recovered.written == 15
    page = failures(p, fhir_resource_type="Patient")
    assert page["total"] == 1 and page["failures"][0]["resolved"] is True
    assert p["gateway"].call("GET", f"/v1/{p['ws']}/data-sources/{ds}", token=p["key"]).body["health_status"] == "healthy"


def test_invalid_resources_fail_alone_and_the_rest_of_the_page_is_stored(platform: dict[str, Any]) -> None:
    p, ehr = platform, platform["ehr"]
    bad = patient(3, birthDate="not-a-date")
    ehr.put_resources([patient(1), patient(2), bad, patient(4)], last_updated=T)
    ds = add_source(p, types=["Patient"])
    result = p["poller"].poll(p["ws"], ds, "Patient")
    assert result.status == "success" and result.written == 3 and result.failed == 1
    one = failures(p, fhir_resource_id="p003")
    assert one["total"] == 1 and one["failures"][0]["fhir_resource_type"] == "Patient"
    assert "not-a-date" not in json.dumps(one)  # the value is not echoed (it could be PHI)
    assert failures(p, fhir_resource_type="Patient", fhir_resource_id="p003")["total"] == 1
    assert failures(p, fhir_resource_type="Observation")["total"] == 0
    # fixed in the EHR: the next poll stores it and resolves the failure
    ehr.put_resources([patient(3, birthDate="1970-01-01")], last_updated="2026-03-01T10:00:05.000Z")
    assert p["poller"].poll(p["ws"], ds, "Patient").written == 1
    assert failures(p, fhir_resource_id="p003")["failures"][0]["resolved"] is True


def test_off_origin_next_link_is_a_failure_and_never_fetched(platform: dict[str, Any]) -> None:
    p, ehr = platform, platform["ehr"]
    ehr.put_resources([patient(i) for i in range(15)], last_updated=T)
    ehr.settings(link_origin="http://127.0.0.2:9")
    ds = add_source(p, types=["Patient"], page_size=10)
    result = p["poller"].poll(p["ws"], ds, "Patient")
    assert result.status == "error" and result.written == 10 and result.pages == 1
    assert "OffOriginLink" in failures(p, fhir_resource_type="Patient")["failures"][0]["error"]


def smart_source(p: dict[str, Any], key: ECKey, client_id: str, *, registered: ECKey) -> str:
    ehr = p["ehr"]
    ehr.register_client(client_id, {"keys": [{**registered.as_dict(private=False), "kid": "k1", "alg": "ES384"}]})
    secret = boto3.client("secretsmanager").create_secret(
        Name=f"fhir-platform/{client_id}", SecretString=key.as_pem(private=True).decode()
    )["ARN"]
    auth = {
        "type": "smart_backend_services",
        "token_url": ehr.token_url,
        "client_id": client_id,
        "private_key_secret_arn": secret,
        "key_id": "k1",
        "algorithm": "ES384",
        "scope": "system/*.read",
    }
    return add_source(p, types=["Patient"], auth=auth)


def test_smart_backend_services_sync_and_a_bad_key(platform: dict[str, Any]) -> None:
    p, ehr = platform, platform["ehr"]
    ehr.put_resources([patient(i) for i in range(3)], last_updated=T)
    ehr.require_auth(True)
    key = ECKey.generate_key("P-384")
    ds = smart_source(p, key, f"client-{uuid.uuid4().hex[:6]}", registered=key)
    ok = p["poller"].poll(p["ws"], ds, "Patient")
    assert ok.status == "success" and ok.written == 3

    other = ECKey.generate_key("P-384")
    bad = smart_source(p, other, f"client-{uuid.uuid4().hex[:6]}", registered=key)  # signs with a key the EHR does not know
    refused = p["poller"].poll(p["ws"], bad, "Patient")
    assert refused.status == "error" and refused.written == 0
    errors = [f["error"] for f in failures(p)["failures"] if f["data_source_id"] == bad]
    assert errors and "EhrAuthFailed" in errors[0]
    assert other.as_pem(private=True).decode() not in json.dumps(failures(p))


def test_a_poll_short_of_lambda_time_hands_on_from_its_checkpoint(platform: dict[str, Any], aws: dict[str, str]) -> None:
    p, ehr = platform, platform["ehr"]
    ehr.put_resources([patient(i) for i in range(10)], last_updated="2026-03-01T10:00:00.000Z")
    ehr.put_resources([patient(i) for i in range(10, 20)], last_updated="2026-03-01T11:00:00.000Z")
    ds = add_source(p, types=["Patient"], page_size=10)
    short = p["poller"].poll(p["ws"], ds, "Patient", remaining_ms=lambda: 30_000)  # under the hand-off margin
    assert (short.status, short.pages, short.written, short.cursor) == ("handed_on", 1, 10, "2026-03-01T10:00:00.000Z")
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=aws["SYNC_QUEUE_URL"], MaxNumberOfMessages=10)["Messages"]
    follow_up = [json.loads(m["Body"]) for m in messages]
    assert [(m["data_source_id"], m["resource_type"], m["reason"]) for m in follow_up] == [(ds, "Patient", "continuation")]
    # the lease was released: the follow-up resumes at the checkpoint and finishes
    rest = p["poller"].poll(p["ws"], ds, "Patient")
    assert rest.status == "success" and rest.written == 10 and rest.unchanged == 10
    assert platform_counts(p)["Patient"] == 20


def test_polls_of_deleted_inactive_or_unlisted_types_do_nothing(platform: dict[str, Any]) -> None:
    p = platform
    ds = add_source(p, types=["Patient"])
    assert p["poller"].poll(p["ws"], ds, "Observation").status == "skipped"
    p["gateway"].call("PATCH", f"/v1/{p['ws']}/data-sources/{ds}", token=p["key"], body={"is_active": False})
    assert p["poller"].poll(p["ws"], ds, "Patient").status == "skipped"
    p["gateway"].call("DELETE", f"/v1/{p['ws']}/data-sources/{ds}", token=p["key"])
    assert p["poller"].poll(p["ws"], ds, "Patient").status == "skipped"


# ---- deletes ------------------------------------------------------------------------------------


def ehr_delete(ehr: DemoEhr, rt: str, rid: str) -> None:
    reply = requests.delete(f"{ehr.base_url}/{rt}/{rid}", timeout=10)
    assert reply.status_code in (200, 204), reply.text


def platform_read(p: dict[str, Any], rt: str, rid: str) -> Any:
    return p["gateway"].call("GET", f"/v1/{p['ws']}/fhir/resources/{rt}/{rid}", token=p["key"])


def platform_history(p: dict[str, Any], rt: str, rid: str) -> dict[str, Any]:
    reply = p["gateway"].call("GET", f"/v1/{p['ws']}/fhir/resources/{rt}/{rid}/history", token=p["key"])
    assert reply.status == 200, reply.body
    return reply.body


def sync_state(p: dict[str, Any], ds: str, rt: str) -> dict[str, Any]:
    from fhir_platform.storage.sync import SyncRepository

    return SyncRepository().states(p["ws"], ds)[rt]


def test_a_patient_deleted_in_the_ehr_is_a_delete_event_after_the_next_poll(platform: dict[str, Any]) -> None:
    p, ehr = platform, platform["ehr"]
    ehr.put_resources([patient(i) for i in range(3)], last_updated=T)
    ds = add_source(p, types=["Patient"])
    assert p["poller"].poll(p["ws"], ds, "Patient").written == 3
    ehr_delete(ehr, "Patient", "p001")
    deleted_at = requests.get(f"{ehr.base_url}/Patient/p001/_history", timeout=10).json()["entry"][0]["response"]["lastModified"]

    result = p["poller"].poll(p["ws"], ds, "Patient")
    assert (result.status, result.written, result.deleted) == ("success", 0, 1)
    gone = platform_read(p, "Patient", "p001")
    assert gone.status == 410 and gone.body["error"] == "gone"
    history = platform_history(p, "Patient", "p001")
    top = history["entries"][0]
    assert history["total"] == 2 and (top["event_type"], top["is_current"], top["fields_affected"]) == ("deleted", True, [])
    assert (top["source"], top["data_source_id"], top["source_system"], top["effective_at"]) == ("ehr_sync", ds, ehr.base_url, deleted_at)
    assert top["data"]["name"][0]["family"] == "Family1"  # what was deleted
    assert platform_counts(p)["Patient"] == 2
    patients = p["gateway"].call("GET", f"/v1/{p['ws']}/fhir/patients", token=p["key"]).body
    assert patients["total"] == 2 and "Family1" not in json.dumps(patients)
    status = p["gateway"].call("GET", f"/v1/{p['ws']}/data-sources/{ds}/status", token=p["key"]).body
    assert status["event_count"] == 4 and status["last_sync_event_count"] == 1  # 3 creates + 1 delete

    # the next poll finds the deletion again (inclusive _since) and records nothing twice
    again = p["poller"].poll(p["ws"], ds, "Patient")
    assert (again.status, again.deleted) == ("success", 0)
    assert platform_history(p, "Patient", "p001")["total"] == 2

    # re-created in the EHR: its newest history entry is no longer the DELETE; the poll re-creates it
    ehr.put_resources([patient(1, gender="male")], last_updated="2030-01-01T00:00:00.000Z")
    back = p["poller"].poll(p["ws"], ds, "Patient")
    assert (back.written, back.deleted) == (1, 0)
    reread = platform_read(p, "Patient", "p001")
    assert reread.status == 200 and reread.body["data"]["gender"] == "male"
    assert [e["event_type"] for e in platform_history(p, "Patient", "p001")["entries"]] == ["created", "deleted", "created"]
    assert platform_counts(p)["Patient"] == 3


def test_a_failed_history_read_is_retried_from_the_same_instant(platform: dict[str, Any]) -> None:
    p, ehr = platform, platform["ehr"]
    ehr.put_resources([patient(i) for i in range(2)], last_updated=T)
    ds = add_source(p, types=["Patient"])
    p["poller"].poll(p["ws"], ds, "Patient")
    ehr_delete(ehr, "Patient", "p000")
    # the cursor moves far past the deletion, and the history read fails past its retries
    ehr.put_resources([patient(5)], last_updated="2030-01-01T00:00:00.000Z")
    ehr.faults("500", count=100, path_contains="_history")
    failed = p["poller"].poll(p["ws"], ds, "Patient")
    assert (failed.status, failed.written, failed.deleted, failed.cursor) == ("error", 1, 0, "2030-01-01T00:00:00.000Z")
    errors = failures(p, fhir_resource_type="Patient")["failures"]
    assert len(errors) == 1 and "_history" in errors[0]["error"] and errors[0]["resolved"] is False
    assert platform_read(p, "Patient", "p000").status == 200
    assert sync_state(p, ds, "Patient")["history_since"] == T

    ehr.clear_faults()
    recovered = p["poller"].poll(p["ws"], ds, "Patient")
    assert (recovered.status, recovered.deleted) == ("success", 1)  # asked from T, not from the new cursor
    assert platform_read(p, "Patient", "p000").status == 410
    assert failures(p, fhir_resource_type="Patient")["failures"][0]["resolved"] is True
    assert sync_state(p, ds, "Patient")["history_since"] == "2030-01-01T00:00:00.000Z"


class NoTypeHistoryClient:
    """The demo EHR's client, asking for type-level history where a server without it has nothing
    (``{Type}/_history/_history``: the demo EHR answers 404, as Medplum's own router does for
    ``{Type}/_history``). Counts the history requests."""

    history_calls = 0

    def __init__(self, cfg: Any) -> None:
        self.client = fast_retry_factory(cfg)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def history(self, resource_type: str, params: Any = None) -> dict[str, Any]:
        NoTypeHistoryClient.history_calls += 1
        return self.client._get_bundle(f"{self.client.base_url}/{resource_type}/_history/_history", params, op=f"history {resource_type}")


def test_a_server_without_type_history_is_asked_once(platform: dict[str, Any]) -> None:
    from fhir_platform.connector.inbound import InboundPoller

    p, ehr = platform, platform["ehr"]
    poller = InboundPoller(client_factory=NoTypeHistoryClient)
    NoTypeHistoryClient.history_calls = 0
    ehr.put_resources([patient(i) for i in range(2)], last_updated=T)
    ds = add_source(p, types=["Patient"])
    assert poller.poll(p["ws"], ds, "Patient").written == 2
    assert NoTypeHistoryClient.history_calls == 0  # the first poll has no cursor: nothing to ask since
    ehr_delete(ehr, "Patient", "p000")
    second = poller.poll(p["ws"], ds, "Patient")
    assert (second.status, second.deleted) == ("success", 0) and NoTypeHistoryClient.history_calls == 1
    assert sync_state(p, ds, "Patient")["history_unsupported"] is True
    assert failures(p)["total"] == 0  # not a failure: the server does not offer it
    third = poller.poll(p["ws"], ds, "Patient")
    assert third.status == "success" and NoTypeHistoryClient.history_calls == 1  # not asked again
    assert platform_read(p, "Patient", "p000").status == 200  # nothing to learn deletes from

    # a 410 met while re-reading the resource is a delete all the same
    assert poller.refresh(p["ws"], ds, "Patient", "p000") == "deleted"
    assert platform_read(p, "Patient", "p000").status == 410
    assert platform_history(p, "Patient", "p000")["entries"][0]["event_type"] == "deleted"
    assert poller.refresh(p["ws"], ds, "Patient", "p000") == "absent"  # already deleted: nothing more
    assert poller.refresh(p["ws"], ds, "Patient", "p001") == "unchanged"
    assert platform_counts(p)["Patient"] == 1


def test_bearer_token_from_secrets_manager(platform: dict[str, Any]) -> None:
    p, ehr = platform, platform["ehr"]
    ehr.put_resources([patient(i) for i in range(4)], last_updated=T)
    ehr.require_auth(True)
    token = f"static-{uuid.uuid4().hex}"
    ehr.set_static_token(token)
    try:
        sm = boto3.client("secretsmanager")
        good = sm.create_secret(Name=f"fhir-platform/bearer-{uuid.uuid4().hex[:6]}", SecretString=token)["ARN"]
        ds = add_source(p, types=["Patient"], auth={"type": "bearer", "token_secret_arn": good})
        assert p["poller"].poll(p["ws"], ds, "Patient").written == 4
        wrong = sm.create_secret(Name=f"fhir-platform/bearer-{uuid.uuid4().hex[:6]}", SecretString="not-the-token")["ARN"]
        bad = add_source(p, types=["Patient"], auth={"type": "bearer", "token_secret_arn": wrong})
        refused = p["poller"].poll(p["ws"], bad, "Patient")
        assert refused.status == "error" and "EhrAuthFailed" in refused.error
        assert token not in json.dumps(failures(p)) and "not-the-token" not in json.dumps(failures(p))
        shown = p["gateway"].call("GET", f"/v1/{p['ws']}/data-sources/{ds}", token=p["key"]).body
        assert shown["connection_config"]["auth"] == {"type": "bearer", "token_secret_arn": good}
    finally:
        ehr.set_static_token(None)


def test_a_crashed_polls_lease_lapses_by_itself(platform: dict[str, Any]) -> None:
    from fhir_platform.storage.sync import SyncRepository

    p, ehr = platform, platform["ehr"]
    ehr.put_resources([patient(i) for i in range(3)], last_updated=T)
    ds = add_source(p, types=["Patient"])
    sync = SyncRepository()
    # a poll that died holding the lease: while it is unexpired nobody else polls …
    assert sync.acquire(p["ws"], ds, "Patient", "crashed", "2026-01-01T00:00:00.000Z", "2999-01-01T00:00:00.000Z")
    assert p["poller"].poll(p["ws"], ds, "Patient").status == "busy"
    # … and once it has expired the next poll takes over and finishes the work
    sync.table.update_item(
        Key={"PK": f"WS#{p['ws']}#DS#{ds}", "SK": "SYNC#Patient"},
        UpdateExpression="SET lease_expires_at = :past",
        ExpressionAttributeValues={":past": "2000-01-01T00:00:00.000Z"},
    )
    result = p["poller"].poll(p["ws"], ds, "Patient")
    assert result.status == "success" and result.written == 3
