"""EHR sync benchmark. Prints figures (no assertions):

1. inbound sync of every Synthea fixture from the local FHIR server (the demo EHR: Medplum's
   FHIR router over its in-memory repository), into the platform over moto in-process:
   resources/s, EHR requests per resource, DynamoDB calls per resource;
2. the scheduler: DynamoDB calls per run with 10 and 1,000 data sources (10 of them due), which
   must not grow with the sources that are not due.

    .venv/bin/python bench/sync.py [--fixtures N] [--page-size 100] [--skip-sync] [--skip-scheduler]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench is a script folder, run from anywhere

from bench.aws_calls import counting, dynamodb  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures" / "synthea"
TYPES = [
    "Organization", "Location", "Practitioner", "PractitionerRole", "Patient", "Encounter", "Condition", "Observation",
    "Procedure", "MedicationRequest", "Immunization", "DiagnosticReport", "AllergyIntolerance", "CarePlan", "CareTeam",
    "Claim", "ExplanationOfBenefit", "Goal", "ImagingStudy", "Device", "DocumentReference", "Provenance", "SupplyDelivery",
    "MedicationAdministration", "Medication",
]


def _moto():
    from bench.local_aws import start_moto

    return start_moto()


def _workspace(ws: str) -> None:
    import boto3

    boto3.resource("dynamodb").Table("bench-data").put_item(Item={"PK": f"WS#{ws}", "SK": "META", "id": ws})


def sync_all(fixtures: int | None, page_size: int) -> None:
    from fhir_platform.connector.auth import token_provider
    from fhir_platform.connector.http import EhrClient
    from fhir_platform.connector.inbound import InboundPoller
    from fhir_platform.connector.sources import DataSourceService
    from local_stack.demo_ehr import DemoEhr, ensure_node_modules

    files = sorted(p for p in FIXTURES.rglob("*.json"))
    files = files[:fixtures] if fixtures else files
    ensure_node_modules()
    clients: list[EhrClient] = []

    def factory(cfg):
        client = EhrClient(cfg.base_url, token_provider(cfg.auth.model_dump()))
        clients.append(client)
        return client

    with DemoEhr.start() as ehr:
        t0 = time.perf_counter()
        seeded = ehr.seed(files)
        print(f"\n== 1. inbound sync of {len(files)} Synthea fixtures from the demo EHR (moto in-process, page size {page_size}) ==")
        print(f"  seeded the EHR in {time.perf_counter() - t0:.1f} s ({seeded.get('failed', 0)} bundles failed)")
        in_ehr = {t: ehr.search(t, _summary="count").get("total", 0) for t in TYPES}
        types = [t for t, n in in_ehr.items() if n]
        ws = str(uuid.uuid4())
        _workspace(ws)
        ds = DataSourceService().create(
            ws,
            {"name": "bench", "source_type": "fhir_store",
             "connection_config": {"base_url": ehr.base_url, "resource_types": types, "page_size": page_size}},
        )["id"]
        poller = InboundPoller(client_factory=factory)
        t0 = time.perf_counter()
        written = received = 0
        with counting() as calls:
            for t in types:
                result = poller.poll(ws, ds, t)
                if result.status != "success":
                    print(f"  {t}: {result.status} {result.error}")
                written += result.written
                received += result.received
        dt = time.perf_counter() - t0
        ehr_requests = sum(c.stats.requests for c in clients)
        total = sum(in_ehr[t] for t in types)
        print(f"  {total} resources in the EHR over {len(types)} types; received {received}, stored {written}")
        print(f"  {received / dt:8.0f} resources/s   ({dt:.1f} s)")
        print(f"  {ehr_requests / max(received, 1):8.4f} EHR requests per resource ({ehr_requests} requests)")
        print(f"  {dynamodb(calls) / max(received, 1):8.3f} DynamoDB calls per resource ({dynamodb(calls)} calls: {dict(sorted((k, v) for k, v in calls.items() if k.startswith('dynamodb')))})")


def scheduler_cost() -> None:
    from fhir_platform.connector.scheduler import Scheduler
    from fhir_platform.connector.sources import DataSourceService

    t0 = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    print("\n== 2. scheduler: DynamoDB calls per run (10 sources due, the rest idle) ==")
    for total in (10, 1000):
        now = [t0]
        clock = lambda: now[0]  # noqa: E731
        service, scheduler = DataSourceService(clock=clock), Scheduler(clock=clock)
        workspaces = []
        for i in range(0, total, 100):
            ws = str(uuid.uuid4())
            _workspace(ws)
            workspaces.append(ws)
        hourly = []
        for i in range(total):
            ws = workspaces[i // 100]
            schedule = "rate(1 hour)" if i < 10 else "rate(7 days)"
            body = {"name": f"s{i}", "source_type": "fhir_store", "sync_strategy": "scheduled", "sync_schedule": schedule,
                    "connection_config": {"base_url": "https://ehr.example.org/fhir/R4", "resource_types": ["Patient", "Encounter"]}}
            made = service.create(ws, body)
            if i < 10:
                hourly.append(made)
        scheduler.run()  # every new source is due once, at creation
        now[0] = t0 + timedelta(hours=1)
        with counting() as calls:
            run = scheduler.run()
        sqs = sum(n for k, n in calls.items() if k.startswith("sqs"))
        print(f"  {total:5d} sources: {run.due_sources} due, {len(run.queued)} polls queued, "
              f"{dynamodb(calls)} DynamoDB calls, {sqs} SQS calls")
        for made in hourly:  # leave the next round with only its own sources due
            service.update(made["workspace_id"], made["id"], {"is_active": False})
        t0 += timedelta(days=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", type=int, default=None, help="sync only the first N fixture files")
    ap.add_argument("--page-size", type=int, default=100)
    ap.add_argument("--skip-sync", action="store_true")
    ap.add_argument("--skip-scheduler", action="store_true")
    args = ap.parse_args()
    mock = _moto()
    try:
        if not args.skip_scheduler:
            scheduler_cost()
        if not args.skip_sync:
            sync_all(args.fixtures, args.page_size)
    finally:
        mock.stop()


if __name__ == "__main__":
    main()
