"""Imports end to end in the local stack: presigned upload and a partner's direct drop both run
S3 → splitter → SQS → worker with no extra command; sync and stream over HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

from tests.e2e.conftest import Client, make_workspace
from tests.support.contract import assert_matches

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]
SYNTHEA = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "synthea" / "smart-on-fhir_generated-sample-data"
SMALL = "Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json"


def wait_for_job(c: Client, ws: str, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/v1/{ws}/fhir/imports/{job_id}")
        if job.status_code == 200 and job.json()["status"] in ("completed", "failed"):
            return job.json()
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished: {job.text}")


def test_sync_and_stream_import(admin: Client) -> None:
    if not SYNTHEA.exists():
        pytest.skip("shared fixtures not present")
    ws, c = make_workspace(admin)
    bundle = json.loads((SYNTHEA / SMALL).read_text())
    reply = c.post(f"/v1/{ws}/fhir/import", json={"bundle": bundle})
    assert reply.status_code == 200, reply.text
    assert_matches("FhirImportResponse", reply.json())
    assert reply.json()["events_created"] == len(bundle["entry"])
    lines = '{"resourceType":"Patient","id":"st-1"}\n{"resourceType":"Patient","id":"st-2","birthDate":"bad"}\n'
    stream = c.post(f"/v1/{ws}/fhir/import-stream", data=lines, headers={"Content-Type": "application/x-ndjson"}, params={"dedup": "false"})
    assert stream.status_code == 200 and stream.json()["events_created"] == 1 and stream.json()["errors"][0].startswith("line 2")


def test_presigned_upload_imports_end_to_end(admin: Client) -> None:
    if not SYNTHEA.exists():
        pytest.skip("shared fixtures not present")
    ws, c = make_workspace(admin)
    job = c.post(f"/v1/{ws}/fhir/imports", json={"format": "bundle", "source_system": "synthea"})
    assert job.status_code == 201, job.text
    assert job.json()["upload_headers"] == {}
    body = (SYNTHEA / SMALL).read_bytes()
    # a plain PUT, as the README tells users to upload: no Content-Type, no encryption headers
    put = requests.put(job.json()["upload_url"], data=body, timeout=30)
    assert put.status_code == 200, put.text
    assert not any(h.lower() == "content-type" or h.lower().startswith("x-amz-") for h in put.request.headers)
    done = wait_for_job(c, ws, job.json()["job_id"])
    entries = len(json.loads(body)["entry"])
    assert done["status"] == "completed" and done["events_created"] == entries and done["processed"] == entries
    assert c.get(f"/v1/{ws}/fhir/status").json()["event_count"] == entries
    listing = c.get(f"/v1/{ws}/fhir/imports").json()
    assert listing["jobs"][0]["job_id"] == job.json()["job_id"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_upload_as_the_readme_shows(admin: Client, tmp_path: Path) -> None:
    ws, c = make_workspace(admin)
    job = c.post(f"/v1/{ws}/fhir/imports", json={"format": "ndjson"})
    assert job.status_code == 201, job.text
    upload = tmp_path / "patients.ndjson"
    upload.write_text("".join(json.dumps({"resourceType": "Patient", "id": f"curl-{i}"}) + "\n" for i in range(3)))
    put = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", str(upload), job.json()["upload_url"]],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert put.stdout == "200", (put.stdout, put.stderr)
    done = wait_for_job(c, ws, job.json()["job_id"])
    assert done["status"] == "completed" and done["events_created"] == 3, done
    assert c.get(f"/v1/{ws}/fhir/resources/Patient/curl-2").status_code == 200


def test_partner_drop_into_the_bucket_becomes_a_job(stack, admin: Client) -> None:
    ws, c = make_workspace(admin)
    s3 = boto3.client(
        "s3", endpoint_url=stack.endpoint_url, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local",
        config=Config(s3={"addressing_style": "path"}),
    )
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "import" in b["Name"])
    lines = "".join(json.dumps({"resourceType": "Patient", "id": f"drop-{i}", "name": [{"family": f"Drop{i}"}]}) + "\n" for i in range(450))
    s3.put_object(Bucket=bucket, Key=f"imports/{ws}/partner/Patient.ndjson", Body=lines.encode())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = c.get(f"/v1/{ws}/fhir/imports").json()["jobs"]
        if jobs and jobs[0]["status"] == "completed":
            break
        time.sleep(0.2)
    assert jobs and jobs[0]["origin"] == "s3_drop" and jobs[0]["status"] == "completed", jobs
    assert jobs[0]["chunk_count"] == 3 and jobs[0]["events_created"] == 450
    assert c.get(f"/v1/{ws}/fhir/resources/Patient/drop-449").status_code == 200
