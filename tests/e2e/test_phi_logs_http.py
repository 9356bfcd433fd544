"""No PHI or secret in any log line (issue 13).

A stack of its own, at ``LogLevel=DEBUG`` (what an operator might switch on to investigate), takes
requests whose payloads carry a patient's name, birth date, identifier, phone and email: writes,
reads and searches by those values, the FHIR facade, imports, and the errors around them (422 bad
input, 404, 409, 412, 401/403 with a wrong key, invalid resources in sync, stream and S3 imports,
a failed transaction). Everything the stack's processes print — the gateway's request lines, each
function's Powertools log lines, EMF metrics, tracebacks — lands in one output; none of it may hold
any of those values or the workspace's API key.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

from local_stack.demo_ehr import DemoEhr
from local_stack.testing import RunningStack, running_local_stack
from tests.e2e.conftest import Client, make_workspace
from tests.support.demo_ehr import NEEDS_NODE

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

FAMILY, GIVEN = "Zubrowska", "Ottoline"
BIRTH_DATE, BAD_BIRTH_DATE = "1957-03-14", "1957-14-03"
MRN, SSN = "MRN-884213377", "541-27-6619"
PHONE, PHONE_DIGITS = "+1 617 555 0142", "6175550142"
EMAIL = "ottoline.zubrowska@example.org"
STREET = "77 Quillfeather Lane"
PHI = [FAMILY, GIVEN, BIRTH_DATE, BAD_BIRTH_DATE, MRN, SSN, PHONE, PHONE_DIGITS, EMAIL, STREET]


def patient(pid: str | None = None, birth_date: str = BIRTH_DATE) -> dict:
    body = {
        "resourceType": "Patient",
        "name": [{"family": FAMILY, "given": [GIVEN]}],
        "birthDate": birth_date,
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": MRN}, {"system": "http://hl7.org/fhir/sid/us-ssn", "value": SSN}],
        "telecom": [{"system": "phone", "value": PHONE}, {"system": "email", "value": EMAIL}],
        "address": [{"line": [STREET], "city": "Boston"}],
    }
    return {**body, "id": pid} if pid else body


@pytest.fixture(scope="module")
def debug_stack() -> Iterator[RunningStack]:
    with running_local_stack(admin_key="fpadm_phi_" + uuid.uuid4().hex, demo=False, extra_args=["--parameter", "LogLevel=DEBUG"], timeout=120) as running:
        yield running


def exercise(stack: RunningStack) -> tuple[str, str]:
    """Every request of the sweep; returns (workspace id, its API key)."""
    admin = Client(stack.base_url, stack.admin_key)
    ws, c = make_workspace(admin)
    base = f"/v1/{ws}/fhir/resources/Patient"

    assert c.put(f"{base}/phi-1", json={"data": patient()}).status_code == 201
    assert c.post(base, json={"data": patient()}).status_code == 201
    assert c.put(f"{base}/phi-1", json={"data": {**patient(), "gender": "female"}}, headers={"If-Match": 'W/"1"'}).status_code == 200
    assert c.put(f"{base}/phi-1", json={"data": patient()}, headers={"If-Match": 'W/"1"'}).status_code == 412
    assert c.put(f"{base}/phi-2", json={"data": patient(birth_date=BAD_BIRTH_DATE)}).status_code == 422
    assert c.put(f"{base}/phi-3", json={"data": {**patient(), "id": "other"}}).status_code == 422
    assert c.put(f"{base}/phi-4", data='{"data": {"resourceType": "Patient", "name": [{"family": "' + FAMILY + '"}]').status_code == 422
    assert c.get(f"{base}/phi-1").status_code == 200
    assert c.get(f"{base}/phi-1/history").status_code == 200
    assert c.get(f"{base}/missing-{MRN}").status_code == 404
    for query in ({"name": FAMILY}, {"family": FAMILY, "birthdate": BIRTH_DATE}, {"identifier": MRN}, {"phone": PHONE}, {"email": EMAIL}):
        assert c.get(f"/v1/{ws}/fhir/resources/Patient", params=query).status_code in (200, 422), query
        assert c.get(f"/v1/{ws}/fhir/r4/Patient", params=query).status_code in (200, 400, 422), query
    assert c.get(f"/v1/{ws}/fhir/patients", params={"name": FAMILY}).status_code in (200, 422)
    assert c.get(f"/v1/{ws}/fhir/patients", params={"birthdate": BAD_BIRTH_DATE}).status_code in (400, 422)

    fhir = {"Content-Type": "application/fhir+json"}
    assert c.post(f"/v1/{ws}/fhir/r4/Patient", data=json.dumps(patient()), headers=fhir).status_code == 201
    assert c.put(f"/v1/{ws}/fhir/r4/Patient/phi-1", data=json.dumps(patient("phi-1")), headers={**fhir, "If-Match": 'W/"1"'}).status_code == 412
    assert c.post(f"/v1/{ws}/fhir/r4/Patient", data=json.dumps(patient(birth_date=BAD_BIRTH_DATE)), headers=fhir).status_code in (400, 422)
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient("tx-1"), "request": {"method": "PUT", "url": "Patient/tx-1"}},
        {"resource": patient("tx-2", BAD_BIRTH_DATE), "request": {"method": "PUT", "url": "Patient/tx-2"}},
    ]}
    assert c.post(f"/v1/{ws}/fhir/r4", data=json.dumps(transaction), headers=fhir).status_code in (400, 422)
    assert c.get(f"/v1/{ws}/fhir/r4/Patient/phi-1/$everything").status_code == 200

    assert c.post(f"/v1/{ws}/fhir/import", json={"bundle": transaction}).status_code == 422
    batch = {**transaction, "type": "batch"}
    reply = c.post(f"/v1/{ws}/fhir/import", json={"bundle": batch})
    assert reply.status_code == 200 and reply.json()["error_count"] == 1, reply.text
    lines = json.dumps(patient("st-1")) + "\n" + json.dumps(patient("st-2", BAD_BIRTH_DATE)) + "\n" + '{"resourceType": "Patient", "name": "' + FAMILY + "\n"
    stream = c.post(f"/v1/{ws}/fhir/import-stream", data=lines, headers={"Content-Type": "application/x-ndjson"})
    assert stream.status_code == 200 and stream.json()["error_count"] == 2, stream.text

    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local", config=Config(s3={"addressing_style": "path"}))
    bucket = next(b["Name"] for b in s3.list_buckets()["Buckets"] if "import" in b["Name"])
    s3.put_object(Bucket=bucket, Key=f"imports/{ws}/partner/phi.ndjson", Body=lines.encode())
    s3.put_object(Bucket=bucket, Key=f"imports/{ws}/partner/phi-tx.json", Body=json.dumps(transaction).encode())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = c.get(f"/v1/{ws}/fhir/imports").json()["jobs"]
        if len(jobs) == 2 and all(j["status"] in ("completed", "failed") for j in jobs):
            break
        time.sleep(0.3)
    assert sorted(j["status"] for j in jobs) == ["completed", "failed"], jobs

    bare, _ = make_workspace(admin, fhir=False)  # no FHIR configured: 409
    assert c.put(f"/v1/{bare}/fhir/resources/Patient/phi-9", json={"data": patient()}).status_code in (403, 409)
    assert admin.put(f"/v1/{bare}/fhir/resources/Patient/phi-9", json={"data": patient()}).status_code == 409
    wrong = Client(stack.base_url, c.key[:-4] + "abcd")
    assert wrong.get(f"{base}/phi-1").status_code in (401, 403)
    assert Client(stack.base_url, "fpk_" + MRN).put(f"{base}/phi-1", json={"data": patient()}).status_code in (401, 403)
    return ws, str(c.key)


def assert_no_leak(stack: RunningStack, key: str) -> None:
    time.sleep(1)  # the last invocations' lines flushed
    lines = stack.output().splitlines()
    # captured: the gateway's request lines and the functions' own (Powertools JSON, EMF metrics)
    assert any("local-stack INFO" in line for line in lines) and any('"function_name"' in line for line in lines)
    secrets = [key, key[:-4] + "abcd", key.split("_")[-1]]
    leaks = {}
    for value in PHI + secrets:
        pattern = re.compile(re.escape(value), re.IGNORECASE)
        hits = [line[:300] for line in lines if pattern.search(line)]
        if hits:
            leaks[value if value not in secrets else "<api key>"] = hits[:3]
    assert not leaks, json.dumps(leaks, indent=1)


def test_no_phi_or_key_in_any_log_line(debug_stack: RunningStack) -> None:
    _, key = exercise(debug_stack)
    assert_no_leak(debug_stack, key)


@NEEDS_NODE
def test_no_phi_in_logs_of_an_ehr_sync_with_invalid_resources_and_failed_pages(debug_stack: RunningStack, ehr: DemoEhr) -> None:
    ehr.put_resources([patient("ehr-1"), {**patient("ehr-2"), "birthDate": BAD_BIRTH_DATE}], last_updated="2026-03-01T10:00:00.000Z")
    ehr.faults("500", count=1, path_contains="/Patient")  # one failed page, retried
    admin = Client(debug_stack.base_url, debug_stack.admin_key)
    ws, c = make_workspace(admin)
    source = {"name": "demo-ehr", "source_type": "fhir_store", "connection_config": {"base_url": ehr.base_url, "resource_types": ["Patient"], "page_size": 10}}
    ds = c.post(f"/v1/{ws}/data-sources", json=source)
    assert ds.status_code == 201, ds.text
    assert c.post(f"/v1/{ws}/data-sources/{ds.json()['id']}/sync").status_code == 202
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not c.get(f"/v1/{ws}/data-sources/{ds.json()['id']}").json().get("last_sync_status"):
        time.sleep(0.5)
    assert c.get(f"/v1/{ws}/fhir/resources/Patient/ehr-1").status_code == 200
    failures = c.get(f"/v1/{ws}/fhir/sync-failures").json()
    assert failures.get("total", len(failures.get("failures", failures.get("items", [])))) >= 1, failures
    assert_no_leak(debug_stack, str(c.key))
