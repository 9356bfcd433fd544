"""Concurrent imports of overlapping data over real HTTP and S3 (issue 13): no resource version is
written twice.

Three sources carry the same resources at once: a synchronous bundle import, an NDJSON stream
import, and one S3 object dropped under two keys (two jobs of the splitter → SQS → worker path).
Some resources are identical in every source, some differ per source. Afterwards every resource's
history is versions 1..N with no gap or duplicate and no version repeating its predecessor's content;
resources identical everywhere have exactly one version; the versions the imports report
(created + updated) are exactly the versions stored and ``/fhir/status``'s counts. Then the same
object is dropped again at the same key: a new job whose every resource is skipped.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config

from bench.concurrency import full_history
from tests.e2e.conftest import Client, make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

SHARED, CONTESTED, OBSERVATIONS = 15, 15, 10


def resources(source: str) -> list[dict[str, Any]]:
    """The same ids in every source: ``shared-*`` and the Observations identical, ``contested-*`` not."""
    shared = [{"resourceType": "Patient", "id": f"shared-{i}", "name": [{"family": "Overlap", "given": [f"S{i}"]}]} for i in range(SHARED)]
    contested = [
        {"resourceType": "Patient", "id": f"contested-{i}", "name": [{"family": "Overlap", "given": [f"{source}{i}"]}]} for i in range(CONTESTED)
    ]
    observations = [
        {
            "resourceType": "Observation",
            "id": f"obs-{i}",
            "status": "final",
            "code": {"text": "heart rate"},
            "subject": {"reference": f"Patient/shared-{i}"},
            "valueQuantity": {"value": 60 + i, "unit": "/min"},
        }
        for i in range(OBSERVATIONS)
    ]
    return shared + contested + observations


def ndjson(source: str) -> str:
    return "".join(json.dumps(r) + "\n" for r in resources(source))


def bundle(source: str) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources(source)]}


def s3_client(stack):
    return boto3.client(
        "s3", endpoint_url=stack.endpoint_url, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local",
        config=Config(s3={"addressing_style": "path"}),
    )


def wait_for_jobs(c: Client, ws: str, count: int, timeout: float = 90) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    jobs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        jobs = c.get(f"/v1/{ws}/fhir/imports").json()["jobs"]
        if len(jobs) >= count and all(j["status"] in ("completed", "failed") for j in jobs):
            return jobs
        time.sleep(0.3)
    raise AssertionError(f"{count} jobs not finished: {jobs}")


def versions_of(c: Client, ws: str) -> dict[str, list[dict[str, Any]]]:
    refs = [f"{r['resourceType']}/{r['id']}" for r in resources("A")]
    return {ref: full_history(c.base_url, c.key, f"/v1/{ws}/fhir/resources/{ref}") for ref in refs}


def assert_history_clean(ref: str, entries: list[dict[str, Any]]) -> None:
    versions = [int(e["data"]["meta"]["versionId"]) for e in entries]
    assert versions == list(range(len(versions), 0, -1)), (ref, versions)
    contents = [json.dumps({k: v for k, v in e["data"].items() if k != "meta"}, sort_keys=True) for e in entries]
    assert all(a != b for a, b in zip(contents, contents[1:])), f"{ref}: a version repeats its predecessor's content"


def written(summary: dict[str, Any]) -> int:
    return summary["events_created"] + summary["events_updated"]


def test_overlapping_imports_at_once_write_each_version_once(stack, admin: Client) -> None:
    ws, c = make_workspace(admin)
    s3 = s3_client(stack)
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "import" in b["Name"])
    dropped = ndjson("C").encode()

    with ThreadPoolExecutor(max_workers=4) as pool:
        sync_import = pool.submit(c.post, f"/v1/{ws}/fhir/import", json={"bundle": bundle("A")})
        stream_import = pool.submit(
            c.post, f"/v1/{ws}/fhir/import-stream", data=ndjson("B"), headers={"Content-Type": "application/x-ndjson"}
        )
        drops = [pool.submit(s3.put_object, Bucket=bucket, Key=f"imports/{ws}/partner/{name}.ndjson", Body=dropped) for name in ("one", "two")]
        sync_reply, stream_reply = sync_import.result(), stream_import.result()
        for drop in drops:
            drop.result()
    assert sync_reply.status_code == 200, sync_reply.text
    assert stream_reply.status_code == 200, stream_reply.text
    jobs = wait_for_jobs(c, ws, 2)
    assert len(jobs) == 2 and all(j["status"] == "completed" and j["error_count"] == 0 for j in jobs), jobs
    total = len(resources("A"))
    summaries = [sync_reply.json(), stream_reply.json(), *jobs]
    for summary in summaries:
        assert written(summary) + summary["events_skipped"] == total, summary

    histories = versions_of(c, ws)
    for ref, entries in histories.items():
        assert_history_clean(ref, entries)
        if not ref.startswith("Patient/contested-"):
            assert len(entries) == 1, (ref, len(entries))  # identical in every source: one version, whoever wrote it
    stored = sum(len(entries) for entries in histories.values())
    assert stored == sum(written(s) for s in summaries), [(written(s), s["events_skipped"]) for s in summaries]
    assert sum(s["events_created"] for s in summaries) == total  # each resource created exactly once
    status = c.get(f"/v1/{ws}/fhir/status").json()
    assert status["event_count"] == stored, status
    assert status["resource_type_counts"] == {"Patient": SHARED + CONTESTED, "Observation": OBSERVATIONS}, status
    assert status["entity_count"] == SHARED + CONTESTED, status


def test_the_same_object_dropped_twice_at_one_key_writes_nothing_the_second_time(stack, admin: Client) -> None:
    ws, c = make_workspace(admin)
    s3 = s3_client(stack)
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "import" in b["Name"])
    key, body = f"imports/{ws}/partner/again.ndjson", ndjson("D").encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    first = wait_for_jobs(c, ws, 1)
    time.sleep(1.1)  # a later upload of the same bytes (S3's LastModified has one-second resolution)
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    jobs = wait_for_jobs(c, ws, 2)
    total = len(resources("D"))
    assert [j["status"] for j in jobs] == ["completed", "completed"], jobs
    by_id = {j["job_id"]: j for j in jobs}
    again = next(j for j in jobs if j["job_id"] != first[0]["job_id"])
    assert by_id[first[0]["job_id"]]["events_created"] == total
    assert written(again) == 0 and again["events_skipped"] == total, again
    for ref, entries in versions_of(c, ws).items():
        assert len(entries) == 1, (ref, len(entries))
    assert c.get(f"/v1/{ws}/fhir/status").json()["event_count"] == total


def test_two_different_uploads_to_one_key_in_quick_succession_are_both_imported(stack, admin: Client) -> None:
    """The bucket is versioned: a partner re-uploading ``Patient.ndjson`` before the first upload was
    split makes two object versions and two S3 events. Each event names its version; each must be
    imported as it was (reading "the key's latest" for both would import the second twice and lose
    the first)."""
    ws, c = make_workspace(admin)
    s3 = s3_client(stack)
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "import" in b["Name"])
    key = f"imports/{ws}/partner/Patient.ndjson"
    first = "".join(json.dumps({"resourceType": "Patient", "id": f"first-{i}"}) + "\n" for i in range(5))
    second = "".join(json.dumps({"resourceType": "Patient", "id": f"second-{i}"}) + "\n" for i in range(5))
    s3.put_object(Bucket=bucket, Key=key, Body=first.encode())
    s3.put_object(Bucket=bucket, Key=key, Body=second.encode())
    jobs = wait_for_jobs(c, ws, 2)
    assert sorted((j["status"], j["events_created"]) for j in jobs) == [("completed", 5), ("completed", 5)], jobs
    for name in ("first-4", "second-4"):
        assert c.get(f"/v1/{ws}/fhir/resources/Patient/{name}").status_code == 200, name
    assert c.get(f"/v1/{ws}/fhir/status").json()["event_count"] == 10
