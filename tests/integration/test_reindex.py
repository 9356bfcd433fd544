"""storage/reindex.py over moto: a table as an older INDEX_VERSION left it (no TypeIndex attributes
on events and CURRENT items, date index items without the sort mark) is made whole again — type
history, ``_sort=_id`` and a date ``_sort`` find everything — without touching a resource written
meanwhile, and a second run changes nothing."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from fhir_platform.storage import keys
from fhir_platform.storage.reindex import Reindexer, main
from tests.integration.test_fhir_r4 import _all_pages, call, create

LOINC = "http://loinc.org"


def observation(pid: str, when: str, value: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "/min"},
    }


def _all_items() -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table("fhir-data")
    items, kwargs = [], {}
    while True:
        page = table.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _make_it_old(ws: str) -> int:
    """Strip what INDEX_VERSION 7 added from the workspace's items; how many were changed."""
    table = boto3.resource("dynamodb").Table("fhir-data")
    changed = 0
    for item in _all_items():
        if not str(item["PK"]).startswith(f"WS#{ws}#"):
            continue
        drop = [a for a in (keys.TYPE_INDEX_PK, keys.TYPE_INDEX_SK, "so") if a in item]
        if drop:
            table.put_item(Item={k: v for k, v in item.items() if k not in drop})
            changed += 1
    return changed


def _reads(gateway: Any, ws: dict) -> dict[str, Any]:
    history = call(gateway, ws, "GET", "/Observation/_history", query={"_count": "50"})
    assert history.status == 200, history.body
    by_id, _ = _all_pages(gateway, ws, "/Observation", {"_sort": "_id", "_count": "2"})
    by_date, _ = _all_pages(gateway, ws, "/Observation", {"_sort": "-date", "_count": "2"})
    return {"history": len(history.body["entry"]), "_sort=_id": by_id, "_sort=-date": by_date}


@pytest.fixture
def ws(gateway: Any, workspace: dict) -> dict:
    return workspace


def test_an_older_table_is_reindexed_whole_and_a_second_run_changes_nothing(gateway: Any, ws: dict) -> None:
    pid = create(gateway, ws, {"resourceType": "Patient", "name": [{"family": "Moreau", "given": ["Lea"]}], "birthDate": "1990-01-02"})["id"]
    made = [create(gateway, ws, observation(pid, f"2024-0{m}-01T10:00:00Z", 60 + m))["id"] for m in range(1, 6)]
    updated = call(gateway, ws, "PUT", f"/Observation/{made[0]}", body={**observation(pid, "2024-09-01T10:00:00Z", 99), "id": made[0]})
    assert updated.status == 200, updated.body
    assert call(gateway, ws, "DELETE", f"/Observation/{made[1]}").status in (200, 204)
    whole = _reads(gateway, ws)
    live = sorted(set(made) - {made[1]})
    assert whole["history"] == 7 and whole["_sort=_id"] == live  # 5 creates, 1 update, 1 delete
    assert whole["_sort=-date"][0] == made[0] and len(whole["_sort=-date"]) == 4

    assert _make_it_old(ws["id"]) > 0
    old = _reads(gateway, ws)
    assert old["history"] == 0 and old["_sort=_id"] == [], old  # what an older table gives before the job

    report = Reindexer().run(ws["id"], segments=3)
    assert report.resources == 6 and report.reindexed == 5 and report.deleted == 1 and report.skipped == 0
    assert report.events_updated == 8  # 7 Observation events + the Patient's creation
    assert _reads(gateway, ws) == whole

    before = {(i["PK"], i["SK"]): i for i in _all_items()}
    again = Reindexer().run(ws["id"], segments=2)
    assert again.events_updated == 0 and again.reindexed == 5
    assert {(i["PK"], i["SK"]): i for i in _all_items()} == before  # idempotent


def test_a_resource_written_meanwhile_is_skipped_and_its_newer_items_kept(gateway: Any, ws: dict) -> None:
    pid = create(gateway, ws, {"resourceType": "Patient", "name": [{"family": "Okoro", "given": ["Ada"]}], "birthDate": "1975-05-05"})["id"]
    oid = create(gateway, ws, observation(pid, "2024-01-01T10:00:00Z", 70))["id"]
    table = boto3.resource("dynamodb").Table("fhir-data")
    stale = table.get_item(Key={"PK": keys.resource_pk(ws["id"], "Observation", oid), "SK": keys.CURRENT_SK})["Item"]
    # a newer version lands between the job's read and its write: a different code and date
    newer = {**observation(pid, "2025-06-01T10:00:00Z", 71), "id": oid, "code": {"coding": [{"system": LOINC, "code": "8310-5"}]}}
    assert call(gateway, ws, "PUT", f"/Observation/{oid}", body=newer).status == 200

    report = Reindexer().resource(stale)
    assert report.skipped == 1 and report.reindexed == 0
    old_code, _ = _all_pages(gateway, ws, "/Observation", {"code": f"{LOINC}|8867-4"})
    new_code, _ = _all_pages(gateway, ws, "/Observation", {"code": f"{LOINC}|8310-5"})
    assert old_code == [] and new_code == [oid]  # the stale version's items were not put back


def test_the_command_prints_counts_only(gateway: Any, ws: dict, capsys: pytest.CaptureFixture[str]) -> None:
    create(gateway, ws, {"resourceType": "Patient", "name": [{"family": "Secretname", "given": ["Hidden"]}], "birthDate": "1961-07-08"})
    assert main(["--workspace", ws["id"], "--segments", "2"]) == 0
    out = capsys.readouterr().out
    assert '"resources": 1' in out and '"reindexed": 1' in out
    assert "Secretname" not in out and ws["id"] not in out
    with pytest.raises(SystemExit):
        main(["--segments", "0"])
