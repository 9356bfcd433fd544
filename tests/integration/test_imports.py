"""Imports through the real handlers with moto: sync Bundle (every type and policy), NDJSON stream,
and the S3 → splitter → SQS → worker path (idempotent redelivery, poison message)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.gateway import LambdaContext, sample_event, _module
from tests.support.gateway import Gateway

SYNTHEA = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "synthea" / "smart-on-fhir_generated-sample-data"
SMALL = "Buster_Hoeger_ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423.json"


def synthea(name: str = SMALL) -> dict:
    if not SYNTHEA.exists():
        pytest.skip("shared fixtures not present")
    return json.loads((SYNTHEA / name).read_text())


def by_type(bundle: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in bundle["entry"]:
        out[e["resource"]["resourceType"]] = out.get(e["resource"]["resourceType"], 0) + 1
    return out


def post_import(gateway: Gateway, ws: dict, bundle: dict, **options: Any):
    return gateway.call("POST", f"/v1/{ws['id']}/fhir/import", token=ws["key"], body={"bundle": bundle, **options})


def status(gateway: Gateway, ws: dict) -> dict:
    return gateway.call("GET", f"/v1/{ws['id']}/fhir/status", token=ws["key"]).body


def test_synthea_transaction_import_counts_links_and_references(gateway: Gateway, workspace: dict) -> None:
    bundle = synthea()
    reply = post_import(gateway, workspace, bundle, source_system="synthea")
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["events_created"] == len(bundle["entry"]) and body["error_count"] == 0
    # the Patient, its Practitioner and its Organization each found an entity (world model)
    assert body["entities_created"] == 3 and body["upsert_semantics"] == "same_resource_id_upsert"
    counts = status(gateway, workspace)
    assert counts["resource_type_counts"] == by_type(bundle) and counts["entity_count"] == 3
    assert counts["entity_type_counts"] == {"patient": 1, "practitioner": 1, "organization": 1}
    patient_id = next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient").removeprefix("urn:uuid:")
    patient = gateway.call("GET", f"/v1/{workspace['id']}/fhir/resources/Patient/{patient_id}", token=workspace["key"]).body
    obs_entry = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation")
    obs_id = obs_entry["fullUrl"].removeprefix("urn:uuid:")
    obs = gateway.call("GET", f"/v1/{workspace['id']}/fhir/resources/Observation/{obs_id}", token=workspace["key"]).body
    assert obs["data"]["subject"]["reference"] == f"Patient/{patient_id}"
    assert obs["data"]["encounter"]["reference"].startswith("Encounter/")
    assert obs["entity_id"] == patient["entity_id"] is not None
    history = gateway.call("GET", f"/v1/{workspace['id']}/fhir/resources/Observation/{obs_id}/history", token=workspace["key"]).body
    assert history["entries"][0]["source"] == "fhir_import" and history["entries"][0]["source_system"] == "synthea"


def test_reimport_is_deduplicated_and_changes_supersede(gateway: Gateway, workspace: dict) -> None:
    bundle = synthea()
    post_import(gateway, workspace, bundle)
    again = post_import(gateway, workspace, bundle).body
    assert again["events_skipped"] == len(bundle["entry"]) and again["events_created"] == 0 and again["events_updated"] == 0
    forced = post_import(gateway, workspace, bundle, dedup=False).body
    assert forced["events_updated"] == len(bundle["entry"])
    changed = copy.deepcopy(bundle)
    patient = next(e for e in changed["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["resource"]["gender"] = "other"
    partial = {"resourceType": "Bundle", "type": "batch", "entry": [patient]}
    result = post_import(gateway, workspace, partial).body
    assert result["events_updated"] == 1 and result["entities_updated"] == 1
    pid = patient["fullUrl"].removeprefix("urn:uuid:")
    history = gateway.call("GET", f"/v1/{workspace['id']}/fhir/resources/Patient/{pid}/history", token=workspace["key"]).body
    assert history["entries"][0]["fields_affected"] == ["gender"]
    # resources omitted from the later bundle are untouched
    assert status(gateway, workspace)["resource_type_counts"] == by_type(bundle)


def _bundle(kind: str, resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}", "resource": r} for i, r in enumerate(resources)]}


GOOD = {"resourceType": "Patient", "name": [{"family": "Good"}]}
BAD = {"resourceType": "Patient", "birthDate": "not-a-date"}


def test_transaction_is_all_or_nothing(gateway: Gateway, workspace: dict) -> None:
    reply = post_import(gateway, workspace, _bundle("transaction", [GOOD, BAD, GOOD]))
    assert reply.status == 422
    locs = [d["loc"] for d in reply.body["detail"]]
    assert any(loc[:4] == ["body", "bundle", "entry", 1] for loc in locs), locs
    assert status(gateway, workspace)["event_count"] == 0


@pytest.mark.parametrize("kind", ["batch", "collection", "searchset", "message"])
def test_non_transaction_bundles_write_valid_entries(gateway: Gateway, workspace: dict, kind: str) -> None:
    resources = [GOOD, BAD, {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}}]
    if kind == "message":
        resources = [{"resourceType": "MessageHeader", "eventCoding": {"code": "x"}, "source": {"endpoint": "https://e.example"}}, *resources]
    reply = post_import(gateway, workspace, _bundle(kind, resources))
    assert reply.status == 200, reply.body
    body = reply.body
    expected_created = len(resources) - 1
    assert body["events_created"] == expected_created and body["error_count"] == 1
    bad_index = resources.index(BAD)
    assert body["errors"][0].startswith(f"entry[{bad_index}]") and "birthDate" in body["errors"][0]


def test_unsupported_resource_policy(gateway: Gateway, workspace: dict) -> None:
    resources = [GOOD, {"resourceType": "Spaceship", "id": "x"}, {"name": "no type"}]
    strict = post_import(gateway, workspace, _bundle("batch", resources)).body
    assert strict["unsupported_resource_count"] == 2 and strict["error_count"] == 2 and strict["events_created"] == 1
    assert {u["location"] for u in strict["unsupported_resources"]} == {"entry[1]", "entry[2]"}
    lenient = post_import(gateway, workspace, _bundle("batch", resources), unsupported_resource_policy="skip").body
    assert lenient["unsupported_resource_count"] == 2 and lenient["error_count"] == 0 and lenient["events_skipped"] == 1


def test_bad_bundles_and_size_limit(gateway: Gateway, workspace: dict) -> None:
    not_bundle = post_import(gateway, workspace, {"resourceType": "Patient"})
    assert not_bundle.status == 400
    bad_type = post_import(gateway, workspace, {"resourceType": "Bundle", "type": "history", "entry": []})
    assert bad_type.status == 400
    bad_policy = post_import(gateway, workspace, _bundle("batch", [GOOD]), unsupported_resource_policy="ignore")
    assert bad_policy.status == 422 and bad_policy.body["detail"][0]["loc"] == ["body", "unsupported_resource_policy"]
    huge = _bundle("batch", [{**GOOD, "text": {"status": "generated", "div": "<div>" + "z" * (4 * 1024 * 1024) + "</div>"}}])
    too_big = post_import(gateway, workspace, huge)
    assert too_big.status == 413 and "imports" in too_big.body["message"]
    viewer = gateway.call("POST", f"/v1/{workspace['id']}/api-keys", token=workspace["key"], body={"duration_days": 1, "role": "member"}).body["api_key"]
    assert gateway.call("POST", f"/v1/{workspace['id']}/fhir/import", token=viewer, body={"bundle": _bundle("batch", [GOOD])}).status == 403


def ndjson(*resources: Any) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in resources) + "\n"


def test_stream_import_with_line_errors(gateway: Gateway, workspace: dict) -> None:
    body = ndjson({**GOOD, "id": "s1"}, "{not json", {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/s1"}}, BAD)
    reply = gateway.call(
        "POST", f"/v1/{workspace['id']}/fhir/import-stream", token=workspace["key"], raw_body=body,
        headers={"content-type": "application/x-ndjson"}, query={"source_system": "bulk"},
    )
    assert reply.status == 200, reply.body
    assert reply.body["events_created"] == 2 and reply.body["error_count"] == 2
    assert reply.body["errors"][0].startswith("line 2") and reply.body["errors"][1].startswith("line 4")
    obs = gateway.call("GET", f"/v1/{workspace['id']}/fhir/resources/Observation/o1", token=workspace["key"]).body
    assert obs["entity_id"] is not None


def test_stream_line_cap(gateway: Gateway, workspace: dict) -> None:
    from fhir_platform.imports import STREAM_MAX_LINES

    body = "".join(json.dumps({"resourceType": "Basic", "code": {"text": "x"}}) + "\n" for _ in range(STREAM_MAX_LINES + 1))
    reply = gateway.call("POST", f"/v1/{workspace['id']}/fhir/import-stream", token=workspace["key"], raw_body=body, headers={"content-type": "application/x-ndjson"})
    assert reply.status == 400 and str(STREAM_MAX_LINES) in reply.body["message"]
    assert status(gateway, workspace)["event_count"] == 0


# ---- asynchronous path --------------------------------------------------------------------------


def split(aws: dict, key: str) -> dict:
    event = sample_event("import_splitter")
    record = event["Records"][0]
    head = boto3.client("s3").head_object(Bucket=aws["IMPORTS_BUCKET"], Key=key)
    record["s3"]["bucket"]["name"] = aws["IMPORTS_BUCKET"]
    record["s3"]["object"].update(key=key, eTag=head["ETag"].strip('"'), size=head["ContentLength"])
    return _module("import_splitter").handler(event, LambdaContext())


def drain(aws: dict, *, duplicate: bool = False) -> int:
    """Deliver every queued chunk to the worker the way Lambda's SQS poller does (batches of 5)."""
    sqs = boto3.client("sqs")
    delivered = 0
    while True:
        msgs = sqs.receive_message(QueueUrl=aws["IMPORT_QUEUE_URL"], MaxNumberOfMessages=5, AttributeNames=["All"]).get("Messages", [])
        if not msgs:
            return delivered
        template = sample_event("import_worker")["Records"][0]
        records = [{**template, "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "attributes": {**template["attributes"], **m["Attributes"]}} for m in msgs]
        for _ in range(2 if duplicate else 1):
            result = _module("import_worker").handler({"Records": records}, LambdaContext())
            assert result == {"batchItemFailures": []}
        for m in msgs:
            sqs.delete_message(QueueUrl=aws["IMPORT_QUEUE_URL"], ReceiptHandle=m["ReceiptHandle"])
        delivered += len(msgs)


def test_presigned_job_splits_fans_out_and_completes(gateway: Gateway, workspace: dict, aws: dict) -> None:
    bundle = synthea()
    job = gateway.call("POST", f"/v1/{workspace['id']}/fhir/imports", token=workspace["key"], body={"format": "bundle", "source_system": "synthea"})
    assert job.status == 201 and job.body["status"] == "pending" and job.body["upload_url"].startswith("http")
    key = job.body["object_key"]
    assert key == f"imports/{workspace['id']}/{job.body['job_id']}.json"
    boto3.client("s3").put_object(Bucket=aws["IMPORTS_BUCKET"], Key=key, Body=json.dumps(bundle).encode())
    assert split(aws, key) == {"jobs": [job.body["job_id"]]}
    running = gateway.call("GET", f"/v1/{workspace['id']}/fhir/imports/{job.body['job_id']}", token=workspace["key"]).body
    assert running["status"] == "running" and running["total"] == len(bundle["entry"]) and running["chunk_count"] >= 1
    drain(aws, duplicate=True)  # every chunk delivered twice: the second delivery changes nothing
    done = gateway.call("GET", f"/v1/{workspace['id']}/fhir/imports/{job.body['job_id']}", token=workspace["key"]).body
    assert done["status"] == "completed" and done["processed"] == len(bundle["entry"])
    assert done["events_created"] == len(bundle["entry"]) and done["events_skipped"] == 0 and done["entities_created"] == 3
    assert status(gateway, workspace)["resource_type_counts"] == by_type(bundle)
    assert status(gateway, workspace)["entity_count"] == 3  # Patient, Practitioner, Organization; redelivery adds none
    listing = gateway.call("GET", f"/v1/{workspace['id']}/fhir/imports", token=workspace["key"]).body
    assert [j["job_id"] for j in listing["jobs"]] == [job.body["job_id"]]
    # the same S3 event delivered again does not start the job twice
    assert split(aws, key) == {"jobs": [job.body["job_id"]]}
    assert drain(aws) == 0


def test_partner_drop_creates_a_job_with_metadata_options(gateway: Gateway, workspace: dict, aws: dict) -> None:
    key = f"imports/{workspace['id']}/export/Patient.000.ndjson"
    body = ndjson({**GOOD, "id": "d1"}, {**GOOD, "id": "d2"}, BAD)
    boto3.client("s3").put_object(Bucket=aws["IMPORTS_BUCKET"], Key=key, Body=body.encode(), Metadata={"source-system": "partner-x"})
    job_id = split(aws, key)["jobs"][0]
    drain(aws)
    job = gateway.call("GET", f"/v1/{workspace['id']}/fhir/imports/{job_id}", token=workspace["key"]).body
    assert job["origin"] == "s3_drop" and job["status"] == "completed" and job["format"] == "ndjson"
    assert job["events_created"] == 2 and job["error_count"] == 1 and job["errors"][0].startswith("line 3")
    history = gateway.call("GET", f"/v1/{workspace['id']}/fhir/resources/Patient/d1/history", token=workspace["key"]).body
    assert history["entries"][0]["source_system"] == "partner-x"


def test_invalid_transaction_upload_fails_the_job_and_writes_nothing(gateway: Gateway, workspace: dict, aws: dict) -> None:
    key = f"imports/{workspace['id']}/bad-transaction.json"
    boto3.client("s3").put_object(Bucket=aws["IMPORTS_BUCKET"], Key=key, Body=json.dumps(_bundle("transaction", [GOOD, BAD])).encode())
    job_id = split(aws, key)["jobs"][0]
    assert drain(aws) == 0
    job = gateway.call("GET", f"/v1/{workspace['id']}/fhir/imports/{job_id}", token=workspace["key"]).body
    assert job["status"] == "failed" and "transaction" in job["failure"] and job["error_count"] == 1
    assert status(gateway, workspace)["event_count"] == 0


def test_poison_message_fails_the_job_on_its_last_attempt(gateway: Gateway, workspace: dict, aws: dict) -> None:
    key = f"imports/{workspace['id']}/one.ndjson"
    boto3.client("s3").put_object(Bucket=aws["IMPORTS_BUCKET"], Key=key, Body=ndjson(GOOD).encode())
    job_id = split(aws, key)["jobs"][0]
    sqs = boto3.client("sqs")
    msg = sqs.receive_message(QueueUrl=aws["IMPORT_QUEUE_URL"], AttributeNames=["All"])["Messages"][0]
    staged = json.loads(msg["Body"])["key"]
    boto3.client("s3").delete_object(Bucket=aws["IMPORTS_BUCKET"], Key=staged)  # the chunk is gone: every attempt fails
    template = sample_event("import_worker")["Records"][0]
    for attempt in (1, 5):
        record = {**template, "messageId": msg["MessageId"], "body": msg["Body"], "attributes": {**template["attributes"], "ApproximateReceiveCount": str(attempt)}}
        result = _module("import_worker").handler({"Records": [record]}, LambdaContext())
        assert result == {"batchItemFailures": [{"itemIdentifier": msg["MessageId"]}]}
        job = gateway.call("GET", f"/v1/{workspace['id']}/fhir/imports/{job_id}", token=workspace["key"]).body
        assert job["status"] == ("running" if attempt == 1 else "failed")
    assert "chunk 0 failed after 5 attempts" in job["failure"]


def test_unparseable_message_is_reported_as_a_batch_item_failure(aws: dict) -> None:
    event = sample_event("import_worker")
    event["Records"][0]["body"] = "not json"
    assert _module("import_worker").handler(event, LambdaContext()) == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
