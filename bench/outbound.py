"""Outbound EHR sync benchmark. Prints figures (no assertions): 1,000 platform updates of synced
Patients written back to the demo EHR (a real FHIR R4 server) through the outbound stream handler,
over moto in-process. The table's stream is read from moto and passed through the template's
filter in batches of the template's BatchSize, as Lambda's poller would: outbound changes/s, EHR
requests per change, DynamoDB calls per change.

    .venv/bin/python bench/outbound.py [--changes 1000] [--batch-size 50]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench is a script folder, run from anywhere

from bench.aws_calls import counting, dynamodb  # noqa: E402
from bench.local_aws import start_moto  # noqa: E402
from bench.sync import _workspace  # noqa: E402

T = "2026-03-01T10:00:00.000Z"


def run(changes: int, batch_size: int) -> None:
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    from fhir_platform.connector.auth import token_provider
    from fhir_platform.connector.handlers import handle_outbound_event
    from fhir_platform.connector.http import EhrClient
    from fhir_platform.connector.inbound import InboundPoller
    from fhir_platform.connector.outbound import OutboundWriter
    from fhir_platform.connector.sources import DataSourceService
    from fhir_platform.resources.service import ResourceService, WriteContext
    from local_stack.demo_ehr import DemoEhr, ensure_node_modules
    from tests.integration.test_ehr_outbound import FILTERS, _lambda_record
    from local_stack.events.filters import record_matches

    clients: list[EhrClient] = []

    def factory(cfg):
        client = EhrClient(cfg.base_url, token_provider(cfg.auth.model_dump()))
        clients.append(client)
        return client

    ensure_node_modules()
    with DemoEhr.start() as ehr:
        patients = [{"resourceType": "Patient", "id": f"b{i:05d}", "gender": "female", "name": [{"family": f"Bench{i}"}]} for i in range(changes)]
        ehr.put_resources(patients, last_updated=T)
        ws = str(uuid.uuid4())
        _workspace(ws)
        ds = DataSourceService().create(
            ws,
            {"name": "bench", "source_type": "fhir_store",
             "connection_config": {"base_url": ehr.base_url, "resource_types": ["Patient"], "page_size": 1000,
                                   "outbound": {"enabled": True, "resource_types": ["Patient"]}}},
        )["id"]
        assert InboundPoller(client_factory=factory).poll(ws, ds, "Patient").written == changes

        streams = dynamodbstreams_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
        arn = boto3.client("dynamodb").describe_table(TableName="bench-data")["Table"]["LatestStreamArn"]
        iterator = streams.get_shard_iterator(arn, streams.describe_stream(arn)["Shards"][0]["ShardId"], "LATEST").arn
        service = ResourceService()
        edited = [("Patient", p["id"], {**p, "gender": "male"}) for p in patients]
        for start in range(0, changes, 100):
            service.write_many(ws, edited[start : start + 100], WriteContext(source="api"))
        records = []
        while True:
            page = streams.get_records(iterator, 1000)
            iterator = page["NextShardIterator"]
            if not page["Records"]:
                break
            records += [r for r in map(_lambda_record, page["Records"]) if record_matches(FILTERS, r)]
        assert len(records) == changes, len(records)

        clients.clear()
        writer = OutboundWriter(client_factory=factory)
        t0 = time.perf_counter()
        failed = 0
        with counting() as calls:
            for start in range(0, len(records), batch_size):
                failed += len(handle_outbound_event({"Records": records[start : start + batch_size]}, writer)["batchItemFailures"])
        dt = time.perf_counter() - t0
        ehr_requests = sum(c.stats.requests for c in clients)
        male = ehr.search("Patient", gender="male", _summary="count")["total"]
        print(f"\n== outbound: {changes} platform updates through the stream handler (batches of {batch_size}), moto in-process + demo EHR ==")
        print(f"  {male} of {changes} reached the EHR; {failed} batch item failures")
        print(f"  {changes / dt:8.1f} outbound changes/s   ({dt:.1f} s)")
        print(f"  {ehr_requests / changes:8.3f} EHR requests per change ({ehr_requests} requests)")
        print(f"  {dynamodb(calls) / changes:8.3f} DynamoDB calls per change ({dynamodb(calls)} calls: {dict(sorted((k, v) for k, v in calls.items() if k.startswith('dynamodb')))})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=50)
    args = ap.parse_args()
    mock = start_moto()
    try:
        run(args.changes, args.batch_size)
    finally:
        mock.stop()


if __name__ == "__main__":
    main()
