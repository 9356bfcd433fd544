"""Patient timeline and summary through the real handlers, events and moto (Gateway)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.aws_calls import counting
from fhir_platform.api import deps
from fhir_platform.resources.service import WriteContext
from tests.integration.conftest import new_key, new_workspace
from tests.support.contract import assert_matches
from tests.support.gateway import Gateway

LOINC = "http://loinc.org"
MRN = {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "system": "urn:mrn", "value": "MRN-77"}


@pytest.fixture(autouse=True)
def clock() -> None:
    start = datetime(2025, 6, 1, tzinfo=UTC)
    ticks = itertools.count()
    deps.resources().clock = lambda: (start + timedelta(seconds=next(ticks))).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Api:
    def __init__(self, gateway: Gateway, ws: dict) -> None:
        self.gw, self.ws, self.key = gateway, ws["id"], ws["key"]

    def put(self, data: dict) -> dict:
        reply = self.gw.call("PUT", f"/v1/{self.ws}/fhir/resources/{data['resourceType']}/{data['id']}", token=self.key, body={"data": data})
        assert reply.status in (200, 201), reply.body
        return reply.body

    def get(self, path: str, **query: Any):
        return self.gw.call("GET", f"/v1/{self.ws}/fhir/{path}", token=self.key, query={k: str(v) for k, v in query.items()} or None)

    def timeline(self, pid: str, **query: Any) -> dict:
        reply = self.get(f"patients/{pid}/timeline", **query)
        assert reply.status == 200, reply.body
        assert_matches("PatientTimelineResponse", reply.body)
        return reply.body

    def summary(self, pid: str) -> dict:
        reply = self.get(f"patients/{pid}/summary")
        assert reply.status == 200, reply.body
        assert_matches("PatientSummaryResponse", reply.body)
        return reply.body


@pytest.fixture
def api(gateway: Gateway, workspace: dict) -> Api:
    return Api(gateway, workspace)


def subject(pid: str) -> dict:
    return {"reference": f"Patient/{pid}"}


def vital(oid: str, pid: str, code: str, value: float, unit: str, when: str, display: str = "Vital") -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
        "subject": subject(pid),
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit},
    }


def chart(pid: str) -> list[dict]:
    """A small chart: one resource per domain, clinical times spread over 2021-2024."""
    return [
        {"resourceType": "Encounter", "id": "enc-1", "status": "finished", "class": {"code": "AMB"},
         "type": [{"text": "General examination"}], "subject": subject(pid), "period": {"start": "2024-01-10T09:00:00Z"}},
        {"resourceType": "Condition", "id": "cond-1", "subject": subject(pid), "code": {"text": "Hypertension"},
         "clinicalStatus": {"coding": [{"code": "active"}]}, "onsetDateTime": "2022-03-01"},
        vital("hr-1", pid, "8867-4", 72, "/min", "2024-02-01T08:00:00Z", "Heart rate"),
        vital("wt-old", pid, "29463-7", 80.5, "kg", "2021-05-01T08:00:00Z", "Body weight"),
        {"resourceType": "Observation", "id": "bp-1", "status": "final", "subject": subject(pid), "effectiveDateTime": "2024-02-01T08:00:00Z",
         "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
         "component": [
             {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": {"value": 128, "unit": "mm[Hg]"}},
             {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": {"value": 84, "unit": "mm[Hg]"}},
         ]},
        {"resourceType": "Immunization", "id": "imm-1", "status": "completed", "patient": subject(pid),
         "vaccineCode": {"text": "Influenza vaccine"}, "occurrenceDateTime": "2023-10-01"},
        {"resourceType": "MedicationRequest", "id": "med-1", "status": "active", "intent": "order", "subject": subject(pid),
         "medicationCodeableConcept": {"text": "Lisinopril 10 MG"}, "authoredOn": "2022-03-02"},
        {"resourceType": "AllergyIntolerance", "id": "alg-1", "patient": subject(pid), "code": {"text": "Peanut"},
         "clinicalStatus": {"coding": [{"code": "active"}]}, "recordedDate": "2021-01-01"},
        {"resourceType": "Coverage", "id": "cov-1", "status": "active", "beneficiary": subject(pid),
         "payor": [{"display": "Acme Health"}], "subscriberId": "SUB-9"},
        {"resourceType": "CareTeam", "id": "ct-1", "status": "active", "subject": subject(pid), "name": "Primary care",
         "participant": [{"member": {"reference": "Practitioner/dr-1", "display": "Dr. Ada Lane"}, "role": [{"text": "Physician"}]}]},
        {"resourceType": "Claim", "id": "clm-1", "status": "active", "use": "claim", "patient": subject(pid),
         "type": {"text": "professional"}, "billablePeriod": {"start": "2024-01-10T09:00:00Z"}, "created": "2024-01-11",
         "provider": {"display": "Clinic"}, "priority": {"coding": [{"code": "normal"}]}, "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/cov-1"}}]},
    ]


def seed(api: Api, pid: str = "p1") -> dict:
    created = api.put({"resourceType": "Patient", "id": pid, "name": [{"family": "Rivera", "given": ["Ana"]}], "birthDate": "1980-02-03",
                       "gender": "female", "identifier": [MRN], "telecom": [{"system": "phone", "value": "555-588-7087"}, {"system": "email", "value": "ana@example.org"}],
                       "generalPractitioner": [{"reference": "Practitioner/dr-1", "display": "Dr. Ada Lane"}]})
    for resource in chart(pid):
        api.put(resource)
    return created


def test_timeline_is_newest_first_by_clinical_time_with_exact_totals_and_domains(api: Api) -> None:
    patient = seed(api)
    body = api.timeline("p1")
    events = body["events"]
    assert body["total"] == len(events) == 11 and body["entity_id"] == patient["entity_id"]
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times, reverse=True)
    # clinical time; the care team and coverage have none, so their lastUpdated (2025) puts them first
    assert [e["resource_id"] for e in events] == [
        "ct-1", "cov-1", "hr-1", "bp-1", "enc-1", "clm-1", "imm-1", "med-1", "cond-1", "wt-old", "alg-1"
    ]
    enc = next(e for e in events if e["resource_id"] == "enc-1")
    assert enc["display"] == "Encounter · General examination · finished"
    assert enc | {} == {**enc, "domain": "encounter", "resource_type": "Encounter", "occurred_at": "2024-01-10T09:00:00.000Z",
                        "event_type": "created", "source": "platform", "entity_id": patient["entity_id"], "reference": "Encounter/enc-1"}
    hr = next(e for e in events if e["resource_id"] == "hr-1")
    assert hr["display"] == "Observation · Heart rate · 72 /min"
    assert next(e for e in events if e["resource_id"] == "cond-1")["display"] == "Condition · Hypertension · active"

    encounters = api.timeline("p1", domain="encounter")
    assert encounters["total"] == 1 and [e["resource_id"] for e in encounters["events"]] == ["enc-1"]
    obs = api.timeline("p1", domain="observation")
    assert obs["total"] == 3 and {e["domain"] for e in obs["events"]} == {"observation"}

    page = api.timeline("p1", limit=3, offset=3)
    assert [e["resource_id"] for e in page["events"]] == [e["resource_id"] for e in events[3:6]]
    assert page["total"] == 11 and page["has_more"] and page["next_offset"] == 6
    last = api.timeline("p1", limit=50, offset=10)
    assert len(last["events"]) == 1 and not last["has_more"]

    by_entity = api.timeline(patient["entity_id"])
    assert by_entity["events"] == events and by_entity["total"] == 11


def test_history_and_timeline_share_the_event_id(api: Api) -> None:
    seed(api)
    api.put(vital("hr-1", "p1", "8867-4", 75, "/min", "2024-02-01T08:00:00Z", "Heart rate"))
    hr = next(e for e in api.timeline("p1")["events"] if e["resource_id"] == "hr-1")
    history = api.get("resources/Observation/hr-1/history").body
    entries = history.get("events") or history.get("entries") or history.get("history")
    assert entries is not None, history.keys()
    assert hr["event_id"] == entries[0]["event_id"] and hr["event_type"] == "updated" and hr["version"] == 2
    assert hr["display"] == "Observation · Heart rate · 75 /min"


def test_totals_follow_updates_deletes_moves_and_resolution(api: Api) -> None:
    seed(api)
    api.put({"resourceType": "Patient", "id": "p2", "name": [{"family": "Other"}]})
    service, ws = deps.resources(), api.ws
    api.put(vital("hr-1", "p1", "8867-4", 80, "/min", "2024-02-01T08:00:00Z", "Heart rate"))  # update: no new event
    assert api.timeline("p1")["total"] == 11
    service.delete(ws, "Immunization", "imm-1", WriteContext(source="sync"))
    body = api.timeline("p1")
    assert body["total"] == 10 and "imm-1" not in {e["resource_id"] for e in body["events"]}
    immunizations = api.timeline("p1", domain="immunization")
    assert immunizations["total"] == 0 and immunizations["events"] == []
    api.put(vital("hr-1", "p2", "8867-4", 80, "/min", "2024-02-01T08:00:00Z", "Heart rate"))  # moved to p2
    assert api.timeline("p1")["total"] == 9 and api.timeline("p1", domain="observation")["total"] == 2
    assert [e["resource_id"] for e in api.timeline("p2")["events"]] == ["hr-1"] and api.timeline("p2")["total"] == 1
    api.put({"resourceType": "Condition", "id": "cond-1", "subject": subject("p1"), "code": {"text": "Hypertension"},
             "clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": "2022-03-01"})
    assert api.timeline("p1")["total"] == 9  # still on the timeline, but no longer an active problem
    summary = api.summary("p1")
    assert summary["clinical"]["active_problems"] == []
    assert summary["clinical"]["immunizations"] == [] and summary["clinical"]["vital_signs"]["heart_rate"] is None
    api.put({"resourceType": "Immunization", "id": "imm-1", "status": "completed", "patient": subject("p1"),
             "vaccineCode": {"text": "Influenza vaccine"}, "occurrenceDateTime": "2023-10-01"})  # re-created
    assert api.timeline("p1")["total"] == 10 and api.timeline("p1", domain="immunization")["total"] == 1


def test_summary_has_demographics_and_the_clinical_picture(api: Api) -> None:
    patient = seed(api)
    api.put(vital("wt-new", "p1", "29463-7", 78.25, "kg", "2024-03-01T08:00:00Z", "Body weight"))  # newer weight replaces older
    s = api.summary("p1")
    assert s | {} == {**s, "entity_id": patient["entity_id"], "entity_type": "patient", "display_name": "Ana Rivera", "name": "Ana Rivera",
                      "phone": "+15555887087", "email": "ana@example.org", "birth_date": "1980-02-03", "gender": "female", "mrn": "MRN-77",
                      "event_count": 13, "reference": "Patient/p1"}
    c = s["clinical"]
    assert c["active_problems"] == [{"display": "Hypertension", "reference": "Condition/cond-1"}]
    assert c["active_medications"] == [{"display": "Lisinopril 10 MG", "reference": "MedicationRequest/med-1"}]
    assert c["allergies"] == [{"display": "Peanut", "reference": "AllergyIntolerance/alg-1"}]
    v = c["vital_signs"]
    assert v["weight"] == {"value": 78.25, "unit": "kg", "date": "2024-03-01T08:00:00.000Z", "reference": "Observation/wt-new"}
    assert v["heart_rate"]["value"] == 72 and v["heart_rate"]["reference"] == "Observation/hr-1"
    assert v["blood_pressure"] | {} == {**v["blood_pressure"], "value": "128/84", "systolic": 128, "diastolic": 84, "unit": "mm[Hg]", "reference": "Observation/bp-1"}
    assert v["height"] is None and v["bmi"] is None and v["temperature"] is None
    assert c["recent_encounters"] == [{"display": "General examination", "date": "2024-01-10T09:00:00.000Z", "status": "finished", "reference": "Encounter/enc-1"}]
    assert c["immunizations"] == [{"display": "Influenza vaccine", "date": "2023-10-01T00:00:00.000Z", "status": "completed", "reference": "Immunization/imm-1"}]
    assert {"display": "Primary care", "members": ["Dr. Ada Lane (Physician)"], "reference": "CareTeam/ct-1"} in c["care_team"]
    assert {"display": "Dr. Ada Lane", "role": "general practitioner", "reference": "Practitioner/dr-1"} in c["care_team"]
    assert c["coverage"][0] | {} == {**c["coverage"][0], "payer": "Acme Health", "member_id": "SUB-9", "reference": "Coverage/cov-1"}
    assert api.summary(patient["entity_id"]) == s  # by entity id too


def test_errors(api: Api, gateway: Gateway) -> None:
    seed(api)
    reply = api.get("patients/p1/timeline", domain="labs")
    assert reply.status == 422 and reply.body["detail"][0]["loc"] == ["query", "domain"]
    assert "encounter" in reply.body["message"] and "diagnostic_report" in reply.body["message"]
    assert api.get("patients/p1/timeline", limit=201).status == 422
    assert api.get("patients/p1/timeline", sort="x").status == 422
    for path in ("patients/nobody/timeline", "patients/nobody/summary"):
        reply = api.get(path)
        assert reply.status == 404 and reply.body["detail"][0]["loc"] == ["path", "patient_id"], reply.body
    other = new_workspace(gateway)
    intruder = new_key(gateway, other["id"])
    for path in ("timeline", "summary"):
        reply = gateway.call("GET", f"/v1/{api.ws}/fhir/patients/p1/{path}", token=intruder)
        assert reply.status == 403 and "Rivera" not in str(reply.body)
    viewer = new_key(gateway, api.ws, role="viewer")  # read permission is enough
    assert gateway.call("GET", f"/v1/{api.ws}/fhir/patients/p1/summary", token=viewer).status == 200
    deps.resources().delete(api.ws, "Patient", "p1", WriteContext(source="sync"))
    reply = api.get("patients/p1/timeline")
    assert reply.status == 410 and reply.body["detail"][0]["loc"] == ["path", "patient_id"]
    unconfigured = new_workspace(gateway, fhir=False)
    key = new_key(gateway, unconfigured["id"])
    assert gateway.call("GET", f"/v1/{unconfigured['id']}/fhir/patients/p1/timeline", token=key).status == 409  # FHIR not configured


def _calls(fn) -> int:
    with counting() as c:
        reply = fn()
    assert reply.status == 200, reply.body
    assert "dynamodb:Scan" not in c
    return sum(n for k, n in c.items() if k.startswith("dynamodb:"))


def test_calls_per_page_do_not_grow_with_the_history(api: Api) -> None:
    service, ws = deps.resources(), api.ws

    def grow(pid: str, n: int) -> None:
        api.put({"resourceType": "Patient", "id": pid, "name": [{"family": "Long"}]})
        entries = [("Observation", f"{pid}-o{i}", vital(f"{pid}-o{i}", pid, "8867-4", 60 + i % 40, "/min",
                    (datetime(2020, 1, 1, tzinfo=UTC) + timedelta(hours=i)).isoformat())) for i in range(n)]
        for start in range(0, n, 500):
            service.write_many(ws, entries[start:start + 500], WriteContext(source="import"))

    grow("short", 10)
    grow("long", 1000)
    assert api.timeline("long", limit=1)["total"] == 1000
    cost: dict[str, list[int]] = {}
    for pid in ("short", "long"):
        cost.setdefault("timeline", []).append(_calls(lambda: api.get(f"patients/{pid}/timeline")))
        cost.setdefault("timeline deep", []).append(_calls(lambda: api.get(f"patients/{pid}/timeline", limit=5, offset=5)))
        cost.setdefault("timeline domain", []).append(_calls(lambda: api.get(f"patients/{pid}/timeline", domain="observation", limit=200)))
        cost.setdefault("summary", []).append(_calls(lambda: api.get(f"patients/{pid}/summary")))
    for name, (short, long) in cost.items():
        assert short == long, (name, cost)
    assert cost["timeline"][0] <= 4 and cost["summary"][0] <= 14, cost  # authorizer + FHIR gate + reads
