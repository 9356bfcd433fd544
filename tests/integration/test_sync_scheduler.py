"""The sync scheduler over moto: due entries, cadence, business hours, and a cost that does not
grow with the sources that are not due."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from bench.aws_calls import counting, dynamodb

WS = "3f2b8c4e-6a1d-4e8f-9b2a-5c7d1e0f9a21"
T0 = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # a Monday, 09:00 in Chicago


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


@pytest.fixture
def env(aws: dict[str, str]) -> dict[str, Any]:
    from fhir_platform.connector.scheduler import Scheduler
    from fhir_platform.connector.sources import DataSourceService

    clock = Clock(T0)
    table = boto3.resource("dynamodb").Table(aws["TABLE_NAME"])
    table.put_item(Item={"PK": f"WS#{WS}", "SK": "META", "id": WS})
    return {"service": DataSourceService(clock=clock), "scheduler": Scheduler(clock=clock), "clock": clock, "queue": aws["SYNC_QUEUE_URL"]}


def source(schedule: str = "rate(1 hour)", **config: Any) -> dict[str, Any]:
    return {
        "name": "ehr",
        "source_type": "fhir_store",
        "sync_strategy": "scheduled",
        "sync_schedule": schedule,
        "connection_config": {"base_url": "https://ehr.example.org/fhir/R4", "resource_types": ["Patient", "Appointment"], **config},
    }


def drain(queue: str) -> list[tuple[str, str]]:
    sqs = boto3.client("sqs")
    out = []
    while True:
        msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            return sorted(out)
        for m in msgs:
            body = json.loads(m["Body"])
            out.append((body["data_source_id"][:8], body["resource_type"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])


def test_new_source_is_due_at_once_then_on_its_schedule(env: dict[str, Any]) -> None:
    ds = env["service"].create(WS, source())
    run = env["scheduler"].run()
    assert sorted(t for _, _, t in run.queued) == ["Appointment", "Patient"]
    assert drain(env["queue"]) == [(ds["id"][:8], "Appointment"), (ds["id"][:8], "Patient")]
    env["clock"].t = T0 + timedelta(minutes=59)
    assert env["scheduler"].run().queued == []
    env["clock"].t = T0 + timedelta(minutes=60)
    assert len(env["scheduler"].run().queued) == 2


def test_cadence_overrides_the_source_schedule_per_type(env: dict[str, Any]) -> None:
    env["service"].create(WS, source(cadence={"Appointment": "rate(5 minutes)"}))
    env["scheduler"].run()
    env["clock"].t = T0 + timedelta(minutes=5)
    assert [t for _, _, t in env["scheduler"].run().queued] == ["Appointment"]
    env["clock"].t = T0 + timedelta(minutes=60)
    assert sorted(t for _, _, t in env["scheduler"].run().queued) == ["Appointment", "Patient"]


def test_business_hours_gate_in_workspace_local_time(env: dict[str, Any]) -> None:
    hours = {"timezone": "America/Chicago", "days": "MON-FRI", "start": "07:00", "end": "19:00"}
    env["clock"].t = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)  # Sunday
    env["service"].create(WS, source(business_hours=hours))
    assert env["scheduler"].run().queued == []
    env["clock"].t = datetime(2026, 11, 30, 12, 59, tzinfo=UTC)  # Monday 06:59 Chicago
    assert env["scheduler"].run().queued == []
    env["clock"].t = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)  # Monday 07:00 Chicago
    assert len(env["scheduler"].run().queued) == 2


def test_inactive_manual_and_deleted_sources_are_not_queued(env: dict[str, Any]) -> None:
    svc = env["service"]
    a = svc.create(WS, source())
    b = svc.create(WS, source())
    c = svc.create(WS, source())
    svc.update(WS, a["id"], {"is_active": False})
    svc.update(WS, b["id"], {"sync_strategy": "manual"})
    svc.delete(WS, c["id"])
    assert env["scheduler"].run().queued == []
    svc.update(WS, a["id"], {"is_active": True})
    assert {ds for _, ds, _ in env["scheduler"].run().queued} == {a["id"]}


def test_scheduler_cost_does_not_grow_with_sources_that_are_not_due(env: dict[str, Any]) -> None:
    """5 vs 60 idle sources (beyond the 2 due ones): the same DynamoDB calls per run."""
    svc, scheduler = env["service"], env["scheduler"]

    def run_with_idle(idle: int) -> int:
        env["clock"].t += timedelta(days=1)
        for _ in range(idle):
            svc.create(WS, source("rate(7 days)"))
        scheduler.run()  # the new idle ones are due once, at creation
        drain(env["queue"])
        env["clock"].t += timedelta(hours=1)
        for _ in range(2):
            svc.create(WS, source("rate(1 hour)"))
        with counting() as calls:
            run = scheduler.run()
        assert len(run.queued) >= 4
        drain(env["queue"])
        return dynamodb(calls)

    # each run: the hourly sources made earlier are due again too, so compare runs with equal due sets
    small = run_with_idle(5)
    svc_ids = {s["id"] for s in svc.repo.list_all(WS) if s["sync_schedule"] == "rate(1 hour)"}
    for ds in svc_ids:
        svc.update(WS, ds, {"is_active": False})
    large = run_with_idle(60)
    assert small == large
