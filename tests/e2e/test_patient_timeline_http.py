"""Patient timeline and summary end to end: real HTTP to the local stack, a Synthea bundle imported
through ``POST /fhir/import`` (references resolved by the import)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import make_workspace
from tests.support.contract import assert_matches
from tests.support.shared import FIXTURES

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

LIZ = FIXTURES / "synthea" / "smart-on-fhir_generated-sample-data" / "Liz_Conn_27c911c6-f045-4ffa-af5d-6eba57ac94b2.json"
NOT_EVENTS = {"Patient", "Organization", "Practitioner"}


def test_timeline_and_summary_of_an_imported_synthea_patient(admin) -> None:
    if not LIZ.exists():
        pytest.skip("Synthea fixtures not present")
    bundle = json.loads(LIZ.read_text())
    resources = [e["resource"] for e in bundle["entry"]]
    events = [r for r in resources if r["resourceType"] not in NOT_EVENTS]
    pid = next(r["id"] for r in resources if r["resourceType"] == "Patient")
    ws, c = make_workspace(admin)
    reply = c.post(f"/v1/{ws}/fhir/import", json={"bundle": bundle})
    assert reply.status_code == 200, reply.text

    first = c.get(f"/v1/{ws}/fhir/patients/{pid}/timeline", params={"limit": 20})
    assert first.status_code == 200, first.text
    body = first.json()
    assert_matches("PatientTimelineResponse", body)
    assert body["total"] == len(events) and len(body["events"]) == 20 and body["has_more"]
    # every page, newest first by clinical time, covers each resource once
    seen: list[dict] = []
    offset = 0
    while True:
        page = c.get(f"/v1/{ws}/fhir/patients/{pid}/timeline", params={"limit": 50, "offset": offset}).json()
        seen += page["events"]
        if not page["has_more"]:
            break
        offset = page["next_offset"]
    assert sorted(e["reference"] for e in seen) == sorted(f"{r['resourceType']}/{r['id']}" for r in events)
    times = [e["occurred_at"] for e in seen]
    assert times == sorted(times, reverse=True)
    newest_encounter = max((r for r in events if r["resourceType"] == "Encounter"), key=lambda r: r["period"]["start"])
    encounters = c.get(f"/v1/{ws}/fhir/patients/{body['entity_id']}/timeline", params={"domain": "encounter"}).json()
    assert encounters["total"] == sum(r["resourceType"] == "Encounter" for r in events)
    assert encounters["events"][0]["resource_id"] == newest_encounter["id"]
    assert encounters["events"][0]["display"] == f"Encounter · {newest_encounter['type'][0]['text']} · finished"
    bad = c.get(f"/v1/{ws}/fhir/patients/{pid}/timeline", params={"domain": "labs"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "domain"]

    summary = c.get(f"/v1/{ws}/fhir/patients/{pid}/summary")
    assert summary.status_code == 200, summary.text
    s = summary.json()
    assert_matches("PatientSummaryResponse", s)
    assert s["entity_id"] == body["entity_id"] and s["entity_type"] == "patient" and s["display_name"]
    assert s["event_count"] == len(resources) - 2  # the compartment's changes: the Patient and its events
    vitals = s["clinical"]["vital_signs"]
    assert {k for k, v in vitals.items() if v} >= {"weight", "height", "bmi", "blood_pressure"}
    latest_weight = max((r for r in events if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "29463-7"),
                        key=lambda r: r["effectiveDateTime"])
    assert vitals["weight"]["reference"] == f"Observation/{latest_weight['id']}"
    assert vitals["weight"]["value"] == latest_weight["valueQuantity"]["value"]
    active = {f"Condition/{r['id']}" for r in events if r["resourceType"] == "Condition"
              and r["clinicalStatus"]["coding"][0]["code"] == "active"}
    assert {p["reference"] for p in s["clinical"]["active_problems"]} == active
    assert s["clinical"]["recent_encounters"][0]["reference"] == f"Encounter/{newest_encounter['id']}"
    assert len(s["clinical"]["immunizations"]) == sum(r["resourceType"] == "Immunization" for r in events)
    assert c.get(f"/v1/{ws}/fhir/patients/nobody/summary").status_code == 404
