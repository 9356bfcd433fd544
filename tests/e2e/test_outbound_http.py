"""Outbound EHR sync end to end: the local stack delivers the table's stream to the template's
OutboundSyncFunction (its filter, batch failure reporting, retries and on-failure SQS queue), which
writes to the demo EHR (a real FHIR R4 server run by Node)."""

from __future__ import annotations

import json
from typing import Any, Iterator

import boto3
import pytest

from local_stack.demo_ehr import DemoEhr
from tests.support.demo_ehr import NEEDS_NODE, emptied, started_demo_ehr
from tests.e2e.conftest import Client, make_workspace
from tests.e2e.test_sync_http import T, wait_for

pytestmark = [
    pytest.mark.e2e,
    NEEDS_NODE,
]


def outbound_source(client: Client, ws: str, ehr: DemoEhr) -> str:
    body = {
        "name": "demo-ehr",
        "source_type": "fhir_store",
        "connection_config": {
            "base_url": ehr.base_url,
            "resource_types": ["Patient"],
            "outbound": {"enabled": True, "resource_types": ["Patient"]},
        },
    }
    reply = client.post(f"/v1/{ws}/data-sources", json=body)
    assert reply.status_code == 201, reply.text
    ds = reply.json()["id"]
    assert client.post(f"/v1/{ws}/data-sources/{ds}/sync").status_code == 202
    wait_for(lambda: client.get(f"/v1/{ws}/data-sources/{ds}/status").json()["synced_count"] >= 1, timeout=30)
    return ds


def put_patient(client: Client, ws: str, rid: str, **changes: Any) -> None:
    data = client.get(f"/v1/{ws}/fhir/resources/Patient/{rid}").json()["data"]
    data.pop("meta", None)
    reply = client.put(f"/v1/{ws}/fhir/resources/Patient/{rid}", json={"data": {**data, **changes}})
    assert reply.status_code == 200, reply.text


def test_a_platform_edit_reaches_the_ehr_through_the_stream(admin: Client, ehr: DemoEhr) -> None:
    ehr.put_resources([{"resourceType": "Patient", "id": "out-1", "gender": "female"}], last_updated=T)
    ws, client = make_workspace(admin)
    ds = outbound_source(client, ws, ehr)
    put_patient(client, ws, "out-1", gender="male")
    wait_for(lambda: ehr.read("Patient", "out-1")["gender"] == "male", timeout=30)
    entry = wait_for(lambda: (e := client.get(f"/v1/{ws}/fhir/resources/Patient/out-1/history").json()["entries"][0])["synced_at"] and e)
    assert entry["version"] == 2 and entry["sync_error"] is None
    status = wait_for(lambda: (s := client.get(f"/v1/{ws}/data-sources/{ds}/status").json())["synced_count"] >= 2 and s)
    assert status["failed_count"] == 0
    # the next poll reads the EHR's copy back: no new version on the platform
    assert client.post(f"/v1/{ws}/data-sources/{ds}/sync").status_code == 202
    wait_for(lambda: client.get(f"/v1/{ws}/data-sources/{ds}/status").json()["synced_count"] >= 3, timeout=30)
    assert client.get(f"/v1/{ws}/fhir/resources/Patient/out-1/history").json()["total"] == 2


def test_a_change_that_keeps_failing_ends_in_sync_failures_and_the_on_failure_queue(admin: Client, ehr: DemoEhr, stack: Any) -> None:
    ehr.put_resources([{"resourceType": "Patient", "id": "out-2", "gender": "female"}], last_updated=T)
    ws, client = make_workspace(admin)
    ds = outbound_source(client, ws, ehr)
    sqs = boto3.client(
        "sqs", endpoint_url=stack.endpoint_url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    url = next(u for u in sqs.list_queues()["QueueUrls"] if "OutboundDeadLetterQueue" in u)
    ehr.faults("500", rate=1.0, path_contains="/Patient/out-2")
    put_patient(client, ws, "out-2", gender="male")

    def failed() -> Any:
        body = client.get(f"/v1/{ws}/fhir/sync-failures", params={"fhir_resource_id": "out-2"}).json()
        return [f for f in body["failures"] if f["direction"] == "outbound"]

    (failure,) = wait_for(failed, timeout=60)
    assert failure["data_source_id"] == ds and "EhrUnavailable" in failure["error"]

    def dead_lettered() -> Any:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        return [json.loads(m["Body"]) for m in got]

    (message,) = wait_for(dead_lettered, timeout=120, every=0.1)
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["DDBStreamBatchInfo"]["batchSize"] >= 1
    assert failed()[0]["attempts"] == 4  # the first delivery and MaximumRetryAttempts (3) retries
    ehr.clear_faults()
    assert ehr.read("Patient", "out-2")["gender"] == "female"  # nothing half-written
