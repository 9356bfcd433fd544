"""CRUD benchmark: handlers in-process over moto (the same events API Gateway sends).

Prints, per operation: requests/s, DynamoDB calls per request (the backend-independent cost), and
how the calls per request change when the workspace grows 10x. Cold starts: bench/cold_start.py
(`make bench` runs both).

    .venv/bin/python bench/crud.py [--requests 200] [--sizes 100,1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench is a script folder, run from anywhere

from bench.aws_calls import counting, dynamodb  # noqa: E402


def setup():
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
        TABLE_NAME="bench-data", IMPORTS_BUCKET="bench-imports", POWERTOOLS_TRACE_DISABLED="1",
        POWERTOOLS_LOG_LEVEL="WARNING", IMPORT_QUEUE_URL="unused",
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from moto import mock_aws

    mock = mock_aws()
    mock.start()
    try:
        from local_stack import moto_speedups

        moto_speedups.apply()
    except ImportError:
        pass
    import boto3

    from tests.support.template import create_table

    create_table(boto3.client("dynamodb"), "DataTable", "bench-data")
    boto3.client("s3").create_bucket(Bucket="bench-imports")
    os.environ["ADMIN_KEY_SECRET_ARN"] = boto3.client("secretsmanager").create_secret(Name="a", SecretString="fpadm_bench")["ARN"]
    return mock


def measure(gateway, label, fn, n):
    times, dcalls = [], []
    for i in range(n):
        with counting() as c:
            t0 = time.perf_counter()
            fn(i)
            times.append(time.perf_counter() - t0)
        dcalls.append(dynamodb(c))
    rps = n / sum(times)
    return {"op": label, "req/s": round(rps, 1), "p50 ms": round(statistics.median(times) * 1000, 2),
            "ddb calls/req": round(statistics.mean(dcalls), 2), "max ddb calls": max(dcalls)}


def crud_round(n: int, background: int):
    from tests.support.gateway import Gateway

    gw = Gateway()
    ws = gw.call("POST", "/v1/workspaces", token="fpadm_bench", body={"name": "Bench", "slug": f"bench-{background}", "ehr_type": "epic", "fhir_store_url": "https://ehr.example.org/fhir"}).body
    key = gw.call("POST", f"/v1/{ws['id']}/api-keys", token="fpadm_bench", body={"duration_days": 1, "role": "admin"}).body["api_key"]
    base = f"/v1/{ws['id']}/fhir/resources"
    patient = {"resourceType": "Patient", "name": [{"family": "Bench", "given": ["Mark"]}], "gender": "other", "birthDate": "1970-01-01"}
    for i in range(background):  # grow the workspace first
        gw.call("PUT", f"{base}/Patient/bg-{i}", token=key, body={"data": {**patient, "id": f"bg-{i}"}})
    ids = []
    rows = [
        measure(gw, "create (POST)", lambda i: ids.append(gw.call("POST", f"{base}/Patient", token=key, body={"data": patient}).body["resource_id"]), n),
        measure(gw, "read (GET)", lambda i: gw.call("GET", f"{base}/Patient/{ids[i]}", token=key), n),
        measure(gw, "update (PUT)", lambda i: gw.call("PUT", f"{base}/Patient/{ids[i]}", token=key, body={"data": {**patient, "gender": "female"}}), n),
        measure(gw, "history (GET)", lambda i: gw.call("GET", f"{base}/Patient/{ids[i]}/history", token=key), n),
        measure(gw, "status (GET)", lambda i: gw.call("GET", f"/v1/{ws['id']}/fhir/status", token=key), n),
    ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--sizes", default="0,1000", help="background patients already in the workspace")
    args = parser.parse_args()
    mock = setup()
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            print(f"\n== CRUD with {size} other patients in the workspace ({args.requests} requests per op; moto in-process) ==")
            print(f"{'operation':<16}{'req/s':>10}{'p50 ms':>10}{'ddb calls/req':>16}{'max ddb calls':>15}")
            for r in crud_round(args.requests, size):
                print(f"{r['op']:<16}{r['req/s']:>10}{r['p50 ms']:>10}{r['ddb calls/req']:>16}{r['max ddb calls']:>15}")
            print("(ddb calls/req include the authorizer's GetItem and the FHIR gate's workspace GetItem)")
    finally:
        mock.stop()


if __name__ == "__main__":
    main()
