"""Import benchmark. Prints figures (no assertions):

1. every Synthea fixture through the synchronous path (moto in-process): resources/s and DynamoDB
   write calls per resource;
2. a generated NDJSON file (default 100,000 resources) through the asynchronous path — splitter
   (peak Python memory, tracemalloc) → staged chunks → workers — resources/s and calls per resource;
3. the local stack at a realistic size: start ``python -m local_stack``, import every Synthea
   fixture over HTTP, then time reads, searches and status over HTTP (p50/p95/max).

    .venv/bin/python bench/imports.py [--resources 100000] [--skip-local-stack] [--skip-ndjson]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench is a script folder, run from anywhere

from bench.aws_calls import counting, dynamodb  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures" / "synthea"


def _moto():
    from bench.local_aws import start_moto

    return start_moto()


def _writes(c) -> int:
    return sum(n for k, n in c.items() if k in ("dynamodb:TransactWriteItems", "dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"))


def synthea_sync() -> None:
    from fhir_platform.imports import ImportOptions
    from fhir_platform.imports.service import ImportService

    files = sorted(FIXTURES.rglob("*.json"))
    service = ImportService()
    total = 0
    t0 = time.perf_counter()
    with counting() as c:
        for path in files:
            bundle = json.loads(path.read_text())
            service.import_bundle("bench-synthea", bundle, ImportOptions(source_system="synthea"))
            total += len(bundle["entry"])
    dt = time.perf_counter() - t0
    print(f"\n== 1. Synthea fixtures, synchronous import (moto in-process): {len(files)} files, {total} resources ==")
    print(f"  {total / dt:8.0f} resources/s   ({dt:.1f} s)")
    print(f"  {_writes(c) / total:8.3f} DynamoDB write calls per resource  ({_writes(c)} TransactWriteItems)")
    print(f"  {dynamodb(c) / total:8.3f} DynamoDB calls per resource in all ({dict(c)})")


def ndjson_async(count: int) -> None:
    import boto3

    from fhir_platform.imports import split_import_object
    from fhir_platform.imports.service import ImportService

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.ndjson"
        subprocess.run([sys.executable, str(ROOT / "bench" / "gen_ndjson.py"), str(path), "--count", str(count)], check=True, capture_output=True)
        size = path.stat().st_size
        # splitter memory: the real splitter over the file as a stream, chunks discarded
        tracemalloc.start()
        t0 = time.perf_counter()
        result = split_import_object(lambda: open(path, "rb"), lambda i, data, n, loc: None, key="bench.ndjson")
        split_s = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"\n== 2. Generated NDJSON, asynchronous path: {count} resources, {size / 1e6:.1f} MB ==")
        print(f"  splitter: {result.resources_seen / split_s:8.0f} resources/s, {result.chunk_count} chunks, peak Python memory {peak / 1e6:.1f} MB")
        ws = "2c9b1f4e-0d3a-4e5f-8a7b-6c5d4e3f2a1b"
        key = f"imports/{ws}/bench.ndjson"
        boto3.client("s3").upload_file(str(path), "bench-imports", key)
    service = ImportService()
    sqs = boto3.client("sqs")
    queue = os.environ["IMPORT_QUEUE_URL"]
    t0 = time.perf_counter()
    with counting() as c:
        job_id = service.split("bench-imports", key)
        done = 0
        while True:
            msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                service.process_chunk(m["Body"], 1, 5)
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
                done += 1
            if done % 50 < 10:
                print(f"  ... {done}/{result.chunk_count} chunks", file=sys.stderr)
    dt = time.perf_counter() - t0
    job = service.get_job(ws, job_id)
    print(f"  job {job['status']}: {job['events_created']} created, {job['error_count']} errors, {job['chunks_done']}/{job['chunk_count']} chunks")
    print(f"  end to end (split + stage + queue + workers, moto in-process): {count / dt:8.0f} resources/s ({dt:.0f} s)")
    print(f"  {_writes(c) / count:8.3f} DynamoDB write calls per resource; {dynamodb(c) / count:.3f} DynamoDB calls per resource in all")


def local_stack_usability() -> None:
    import requests

    from local_stack.testing import running_local_stack

    files = sorted(FIXTURES.rglob("*.json"))
    with running_local_stack(admin_key="fpadm_bench", timeout=120) as stack:
        base, ws = stack.base_url, stack.workspace_id
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {stack.api_key}"
        t0 = time.perf_counter()
        total = 0
        patient_ids: list[str] = []
        for path in files:
            bundle = json.loads(path.read_text())
            reply = http.post(f"{base}/v1/{ws}/fhir/import", json={"bundle": bundle}, timeout=600)
            reply.raise_for_status()
            total += len(bundle["entry"])
            patient_ids += [e["fullUrl"].rsplit(":", 1)[-1] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
        print(f"\n== 3. Local stack with every Synthea fixture imported over HTTP: {total} resources in {time.perf_counter() - t0:.0f} s ==")
        probes = {
            "read Patient": lambda i: f"/v1/{ws}/fhir/resources/Patient/{patient_ids[i % len(patient_ids)]}",
            "history Patient": lambda i: f"/v1/{ws}/fhir/resources/Patient/{patient_ids[i % len(patient_ids)]}/history",
            "search Observation?patient=": lambda i: f"/v1/{ws}/fhir/resources/Observation?patient={patient_ids[i % len(patient_ids)]}",
            "search Observation?status=final": lambda i: f"/v1/{ws}/fhir/resources/Observation?status=final",
            "search Patient?name=": lambda i: f"/v1/{ws}/fhir/resources/Patient?name=a",
            "patients sort_by=-last_event_at": lambda i: f"/v1/{ws}/fhir/patients?sort_by=-last_event_at",
            "views/patients": lambda i: f"/v1/{ws}/fhir/views/patients",
            "status": lambda i: f"/v1/{ws}/fhir/status",
        }
        print(f"  {'request':<34}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}  status")
        for label, url in probes.items():
            times, codes = [], set()
            for i in range(20):
                t = time.perf_counter()
                reply = http.get(base + url(i), timeout=60)
                times.append((time.perf_counter() - t) * 1000)
                codes.add(reply.status_code)
            times.sort()
            print(f"  {label:<34}{statistics.median(times):9.0f}{times[18]:9.0f}{times[-1]:9.0f}  {sorted(codes)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resources", type=int, default=100_000)
    parser.add_argument("--skip-local-stack", action="store_true")
    parser.add_argument("--skip-ndjson", action="store_true")
    parser.add_argument("--skip-synthea", action="store_true")
    args = parser.parse_args()
    if not FIXTURES.exists():
        sys.exit("shared/fixtures/synthea not found beside the project")
    mock = _moto()
    try:
        if not args.skip_synthea:
            synthea_sync()
        if not args.skip_ndjson:
            ndjson_async(args.resources)
    finally:
        mock.stop()
    if not args.skip_local_stack:
        local_stack_usability()


if __name__ == "__main__":
    main()
