"""EHR sync end to end over real HTTP: the local stack (template's API, scheduler, sync queue and
worker on moto) syncing from the demo EHR (a real FHIR R4 server run by Node), deletes included."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
import requests

from local_stack.demo_ehr import DemoEhr
from tests.support.demo_ehr import NEEDS_NODE, emptied, started_demo_ehr
from tests.e2e.conftest import Client, make_workspace
from tests.support.contract import assert_matches

pytestmark = [
    pytest.mark.e2e,
    NEEDS_NODE,
]

T = "2026-03-01T10:00:00.000Z"


def patients(prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        {"resourceType": "Patient", "id": f"{prefix}-{i}", "name": [{"family": f"Sync{prefix}", "given": [f"P{i}"]}], "gender": "male"}
        for i in range(n)
    ]


def wait_for(predicate, timeout: float = 60.0, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(every)


def add_source(client: Client, ws: str, ehr: DemoEhr, **config: Any) -> str:
    body = {
        "name": "demo-ehr",
        "source_type": "fhir_store",
        "connection_config": {"base_url": ehr.base_url, "resource_types": ["Patient"], "page_size": 10, **config},
    }
    reply = client.post(f"/v1/{ws}/data-sources", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def test_manual_sync_brings_the_ehrs_patients_and_reports_health(admin: Client, ehr: DemoEhr) -> None:
    ehr.put_resources(patients("a", 25), last_updated=T)
    ws, client = make_workspace(admin)
    ds = add_source(client, ws, ehr)
    started = client.post(f"/v1/{ws}/data-sources/{ds}/sync")
    assert started.status_code == 202, started.text
    assert_matches("TriggerSyncResponse", started.json())

    def synced() -> bool:
        listing = client.get(f"/v1/{ws}/fhir/patients", params={"q": "synca", "limit": 100}).json()
        return listing.get("total") == 25

    wait_for(synced)
    source = wait_for(lambda: (r := client.get(f"/v1/{ws}/data-sources/{ds}").json())["last_sync_status"] and r)
    assert source["health_status"] == "healthy" and source["last_sync_status"] == "success"
    status = client.get(f"/v1/{ws}/data-sources/{ds}/status").json()
    assert status["synced_count"] == 25 and status["event_count"] == 25 and status["failed_count"] == 0
    fhir_status = client.get(f"/v1/{ws}/fhir/status").json()
    assert fhir_status["sync_healthy"] is True and fhir_status["last_poll_at"]
    assert fhir_status["resource_type_counts"]["Patient"] == 25


def test_a_second_trigger_while_polling_is_409(admin: Client, ehr: DemoEhr) -> None:
    ehr.put_resources(patients("b", 5), last_updated=T)
    ws, client = make_workspace(admin)
    ds = add_source(client, ws, ehr)
    ehr.faults("hang", count=1, hang_seconds=8, path_contains="/Patient")  # the poll holds its lease a while
    assert client.post(f"/v1/{ws}/data-sources/{ds}/sync").status_code == 202

    def conflict() -> Any:
        reply = client.post(f"/v1/{ws}/data-sources/{ds}/sync")
        return (reply,) if reply.status_code == 409 else None  # (a 4xx Response is falsy)

    (reply,) = wait_for(conflict, timeout=40, every=0.2)  # requests are served while the worker polls
    assert_matches("TriggerSyncConflictResponse", reply.json())
    assert reply.json()["details"]["last_poll_at"]
    wait_for(lambda: client.get(f"/v1/{ws}/data-sources/{ds}/status").json()["synced_count"] >= 5, timeout=30)


def test_sync_failures_over_http(admin: Client, ehr: DemoEhr) -> None:
    bad = {"resourceType": "Patient", "id": "c-bad", "birthDate": "31/12/1999"}
    ehr.put_resources([*patients("c", 2), bad], last_updated=T)
    ws, client = make_workspace(admin)
    ds = add_source(client, ws, ehr)
    assert client.post(f"/v1/{ws}/data-sources/{ds}/sync").status_code == 202

    def failed() -> Any:
        body = client.get(f"/v1/{ws}/fhir/sync-failures", params={"fhir_resource_type": "Patient"}).json()
        return body if body["total"] else None

    body = wait_for(failed)
    assert body["failures"][0]["fhir_resource_id"] == "c-bad" and body["failures"][0]["direction"] == "inbound"
    assert "31/12/1999" not in str(body)
    assert client.get(f"/v1/{ws}/fhir/sync-failures", params={"limit": 0}).status_code == 422
    history = client.get(f"/v1/{ws}/data-sources/{ds}/sync-history", params={"days": 1}).json()
    assert_matches("DataSourceSyncHistoryResponse", history)
    assert history["timeline"][0]["failed_count"] >= 1


def test_a_patient_deleted_in_the_ehr_reads_410_after_the_next_sync(admin: Client, ehr: DemoEhr) -> None:
    ehr.put_resources(patients("d", 3), last_updated=T)
    ws, client = make_workspace(admin)
    ds = add_source(client, ws, ehr)
    assert client.post(f"/v1/{ws}/data-sources/{ds}/sync").status_code == 202
    wait_for(lambda: client.get(f"/v1/{ws}/fhir/resources/Patient/d-1").status_code == 200)
    assert requests.delete(f"{ehr.base_url}/Patient/d-1", timeout=10).status_code in (200, 204)

    def triggered() -> bool:  # once the first poll has released its lease
        return client.post(f"/v1/{ws}/data-sources/{ds}/sync").status_code == 202

    wait_for(triggered, timeout=30)
    # (a 4xx Response is falsy: wait for its status, then read it)
    wait_for(lambda: client.get(f"/v1/{ws}/fhir/resources/Patient/d-1").status_code == 410)
    gone = client.get(f"/v1/{ws}/fhir/resources/Patient/d-1")
    assert gone.json()["statusCode"] == 410 and gone.json()["error"] == "gone"
    history = client.get(f"/v1/{ws}/fhir/resources/Patient/d-1/history").json()
    assert_matches("FhirResourceHistoryResponse", history)
    assert [(e["event_type"], e["is_current"]) for e in history["entries"]] == [("deleted", True), ("created", False)]
    assert history["entries"][0]["source"] == "ehr_sync" and history["entries"][0]["data_source_id"] == ds
    listing = client.get(f"/v1/{ws}/fhir/patients", params={"q": "syncd"}).json()
    assert listing["total"] == 2
    assert client.get(f"/v1/{ws}/fhir/status").json()["resource_type_counts"]["Patient"] == 2


def test_the_demo_workspace_gets_patients_by_sync_with_no_extra_step(stack: Any) -> None:
    """What ``make dev`` promises: the demo workspace has the demo EHR as a scheduled data source,
    and its patients arrive by sync on their own."""
    client = Client(stack.base_url, stack.api_key)
    sources = client.get(f"/v1/{stack.workspace_id}/data-sources").json()["items"]
    demo = [s for s in sources if s["name"] == "demo-ehr"]
    assert demo, "the demo EHR was not registered (is node on PATH and ehr_server installed?)"
    assert demo[0]["sync_strategy"] == "scheduled" and demo[0]["connection_config"]["base_url"].startswith("http://127.0.0.1:")
    listing = wait_for(
        lambda: (body := client.get(f"/v1/{stack.workspace_id}/fhir/patients").json())["total"] >= 3 and body, timeout=90
    )
    assert all(p["entity_id"] for p in listing["patients"])
    status = wait_for(
        lambda: (s := client.get(f"/v1/{stack.workspace_id}/data-sources/{demo[0]['id']}").json())["last_sync_status"] and s,
        timeout=90,
    )
    assert status["health_status"] == "healthy"
