"""Search, the patient list and the views through the real handlers, events and moto (Gateway)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.integration.conftest import new_key, new_workspace
from tests.support.contract import assert_matches
from tests.support.gateway import Gateway


@pytest.fixture
def clock() -> Any:
    """Writes one second apart, so orderings by time are deterministic and easy to read (the index keeps
    milliseconds: test_search_order_within_a_second.py)."""
    from fhir_platform.api import deps

    start = datetime(2025, 1, 1, tzinfo=UTC)
    ticks = itertools.count()
    deps.resources().clock = lambda: (start + timedelta(seconds=next(ticks))).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return start


class Api:
    def __init__(self, gateway: Gateway, ws: dict) -> None:
        self.gw, self.ws, self.key = gateway, ws["id"], ws["key"]

    def put(self, data: dict, data_source_id: str | None = None) -> dict:
        body: dict[str, Any] = {"data": data}
        if data_source_id:
            body["data_source_id"] = data_source_id
        reply = self.gw.call("PUT", f"/v1/{self.ws}/fhir/resources/{data['resourceType']}/{data['id']}", token=self.key, body=body)
        assert reply.status in (200, 201), reply.body
        return reply.body

    def get(self, path: str, **query: str) -> Any:
        return self.gw.call("GET", f"/v1/{self.ws}/fhir/{path}", token=self.key, query={k: str(v) for k, v in query.items()} or None)

    def ok(self, path: str, **query: str) -> dict:
        reply = self.get(path, **query)
        assert reply.status == 200, reply.body
        return reply.body

    def search(self, rtype: str, **query: str) -> list[str]:
        body = self.ok(f"resources/{rtype}", **query)
        assert_matches("FhirSearchResponse", body)
        return [e["resource_id"] for e in body["entries"]]


def patient(pid: str, family: str, given: str, **extra: Any) -> dict:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": family, "given": [given]}], **extra}


def observation(oid: str, pid: str, *, status: str = "final", code: str = "8867-4", when: str = "2024-03-05T10:00:00Z", **extra: Any) -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": "Heart rate"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        **extra,
    }


MRN = {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "system": "urn:mrn"}


@pytest.fixture
def api(gateway: Gateway, workspace: dict, clock: Any) -> Api:
    return Api(gateway, workspace)


@pytest.fixture
def people(api: Api) -> Api:
    """Five patients (created in this order, one second apart) and a few clinical resources."""
    api.put(patient("p-ana", "Álvarez", "Ana", gender="female", birthDate="1980-02-29", identifier=[{**MRN, "value": "MRN-001"}],
                    telecom=[{"system": "phone", "value": "(555) 010-0001"}, {"system": "email", "value": "ana@example.org"}],
                    managingOrganization={"reference": "Organization/org-1"}, generalPractitioner=[{"reference": "Practitioner/dr-1"}]))
    api.put(patient("p-ben", "Smith-Jones", "Ben", gender="male", birthDate="1975-06-15", identifier=[{**MRN, "value": "MRN-002"}],
                    telecom=[{"system": "phone", "value": "+1 555-010-0002"}]))
    api.put(patient("p-cy", "Smith", "Cyrus", gender="male", birthDate="1980-11-02", identifier=[{**MRN, "value": "MRN-003"}]))
    api.put(patient("p-dee", "Okafor", "Dee", gender="female", birthDate="1990-01-01"))
    api.put(patient("p-eve", "Zhou", "Eve", gender="female", birthDate="2001-12-31"))
    api.put({"resourceType": "Encounter", "id": "enc-1", "status": "finished", "class": {"code": "AMB"},
             "subject": {"reference": "Patient/p-ana"}, "period": {"start": "2024-03-05T09:00:00Z", "end": "2024-03-05T11:00:00Z"},
             "participant": [{"individual": {"reference": "Practitioner/dr-1"}}], "location": [{"location": {"reference": "Location/loc-1"}}],
             "serviceProvider": {"reference": "Organization/org-1"}})
    for i in range(7):
        api.put(observation(f"o-{i}", "p-ana" if i < 5 else "p-ben", when=f"2024-03-{i + 1:02d}T10:00:00Z", encounter={"reference": "Encounter/enc-1"},
                            performer=[{"reference": "Practitioner/dr-1"}]))
    api.put(observation("o-pre", "p-cy", status="preliminary", code="2339-0"))
    return api


# --- GET /fhir/resources/{type} --------------------------------------------------------------


def test_resource_search_pages_with_count_offset_and_next_url(people: Api) -> None:
    first = people.ok("resources/Observation", status="final", _count=3)
    assert_matches("FhirSearchResponse", first)
    assert first["resource_type"] == "Observation" and len(first["entries"]) == 3 and first["total"] is None
    entry = first["entries"][0]
    assert set(entry) == {"resource_type", "resource_id", "entity_id", "data"} and entry["data"]["id"] == entry["resource_id"]
    assert entry["entity_id"] is not None  # compartment resources carry their patient's entity
    seen, body = [], first
    while True:
        seen += [e["resource_id"] for e in body["entries"]]
        if not body["next_url"]:
            break
        url = urlsplit(body["next_url"])
        params = dict(parse_qsl(url.query))
        assert url.path == f"/v1/{people.ws}/fhir/resources/Observation" and params["status"] == "final" and params["_count"] == "3"
        body = people.ok("resources/Observation", **params)
    assert sorted(seen) == [f"o-{i}" for i in range(7)] and body["total"] == 7  # the last page knows the total
    assert people.ok("resources/Observation", status="final", _count=3, _offset=6)["next_url"] is None
    # no criteria: the type list (newest first) with the counter's total
    listed = people.ok("resources/Observation", _count=2)
    assert listed["total"] == 8 and [e["resource_id"] for e in listed["entries"]] == ["o-pre", "o-6"]
    assert "_offset=2" in listed["next_url"]
    assert people.ok("resources/Observation", _offset=100)["entries"] == []


def test_each_parameter_kind(people: Api) -> None:
    s = people.search
    # string: case/accent-insensitive prefix of any element or word; :exact
    assert s("Patient", name="alva") == ["p-ana"] and s("Patient", family="ÁLV") == ["p-ana"]
    assert s("Patient", name="jones") == ["p-ben"] and sorted(s("Patient", family="smith")) == ["p-ben", "p-cy"]
    assert s("Patient", given="cy") == ["p-cy"] and s("Patient", **{"name:exact": "Smith"}) == ["p-cy"]
    assert s("Patient", **{"name:exact": "smith"}) == []
    # q: every word prefixes a word of the names
    assert s("Patient", q="ana alv") == ["p-ana"] and s("Patient", q="ana smith") == []
    # token: code, system|code, |code, :not
    assert s("Patient", identifier="urn:mrn|MRN-002") == ["p-ben"] and s("Patient", identifier="mrn-002") == ["p-ben"]
    assert s("Patient", identifier="urn:other|MRN-002") == []
    assert sorted(s("Patient", gender="female")) == ["p-ana", "p-dee", "p-eve"]
    assert sorted(s("Patient", **{"gender:not": "female"})) == ["p-ben", "p-cy"]
    assert s("Patient", email="ANA@example.org") == ["p-ana"]
    assert s("Observation", code="http://loinc.org|2339-0") == ["o-pre"] and s("Observation", status="preliminary") == ["o-pre"]
    # phone in any format
    assert s("Patient", phone="5550100002") == ["p-ben"] and s("Patient", phone="(555) 010-0001") == ["p-ana"]
    # dates: partial dates and prefixes
    assert sorted(s("Patient", birthdate="1980")) == ["p-ana", "p-cy"] and s("Patient", birthdate="1980-02") == ["p-ana"]
    assert sorted(s("Patient", birthdate="ge1990")) == ["p-dee", "p-eve"] and s("Patient", birthdate="lt1976") == ["p-ben"]
    assert sorted(s("Observation", date="le2024-03-02")) == ["o-0", "o-1"] and s("Observation", date="2024-03-07T10:00:00Z") == ["o-6"]
    assert s("Encounter", date="2024-03-05") == ["enc-1"]
    # references: Type/id, bare id, subject, encounter, practitioner, location, organization
    assert sorted(s("Observation", patient="Patient/p-ben")) == ["o-5", "o-6"] and sorted(s("Observation", subject="p-ben")) == ["o-5", "o-6"]
    assert len(s("Observation", encounter="Encounter/enc-1", _count=100)) == 7
    assert len(s("Observation", practitioner="dr-1")) == 7 and s("Patient", practitioner="Practitioner/dr-1") == ["p-ana"]
    assert s("Encounter", location="loc-1") == ["enc-1"] and s("Encounter", organization="Organization/org-1") == ["enc-1"]
    assert s("Patient", organization="org-1") == ["p-ana"]
    # _id, _lastUpdated
    assert s("Patient", _id="p-eve,nope") == ["p-eve"]
    assert s("Patient", _lastUpdated="ge2025-01-01T00:00:04Z") == ["p-eve"]
    # AND across parameters
    assert s("Patient", family="smith", gender="male", birthdate="1980") == ["p-cy"]
    assert s("Observation", patient="p-ana", code="8867-4", date="ge2024-03-04") == ["o-3", "o-4"]


def test_read_your_writes(api: Api) -> None:
    api.put(patient("rw", "Quist", "Ola"))
    assert api.search("Patient", name="quist") == ["rw"]
    api.put(patient("rw", "Rask", "Ola"))
    assert api.search("Patient", name="quist") == [] and api.search("Patient", name="rask") == ["rw"]


@pytest.mark.parametrize(
    ("path", "query", "status", "param"),
    [
        ("resources/Patient", {"shoe_size": "9"}, 422, "shoe_size"),
        ("resources/Patient", {"birthdate": "29/02/1980"}, 422, "birthdate"),
        ("resources/Patient", {"birthdate": "2024-02-30"}, 422, "birthdate"),
        ("resources/Patient", {"name": "x" * 201}, 422, "name"),
        ("resources/Observation", {"date": "ge2024-01-01T00:00:00.000000000+00:00"}, 422, "date"),
        ("resources/Patient", {"_count": "0"}, 422, "_count"),
        ("resources/Patient", {"_count": "101"}, 422, "_count"),
        ("resources/Patient", {"_offset": "-1"}, 422, "_offset"),
        ("resources/Patient", {"name:contains": "a"}, 422, "name:contains"),
        ("resources/Observation", {"patient": "Practitioner/x"}, 422, "patient"),
        ("resources/Patient", {"phone": "x"}, 422, "phone"),
        ("patients", {"sort_by": "-shoe_size"}, 422, "sort_by"),
        ("patients", {"limit": "0"}, 422, "limit"),
        ("patients", {"limit": "101"}, 422, "limit"),
        ("patients", {"colour": "red"}, 422, "colour"),
        ("views/patients", {"sort_by": "name"}, 422, "sort_by"),
        ("views/practitioners", {"data_source_id": "not-a-uuid"}, 422, "data_source_id"),
        ("views/slots", {"date": "2024-13-01"}, 422, "date"),
        ("views/slots", {"days": "91"}, 422, "days"),
        ("views/slots", {"days": "0"}, 422, "days"),
        ("views/slots", {"status": "!!"}, 422, "status"),
        ("views/locations", {"limit": "500"}, 422, "limit"),
    ],
)
def test_bad_parameters_name_the_parameter(api: Api, path: str, query: dict, status: int, param: str) -> None:
    reply = api.get(path, **query)
    assert reply.status == status, reply.body
    assert reply.body["detail"][0]["loc"] == ["query", param], reply.body
    assert_matches("HTTPValidationError", {"detail": reply.body["detail"]})


def test_unknown_resource_type_and_too_broad_searches(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    unknown = api.get("resources/Starship")
    assert unknown.status == 400 and unknown.body["detail"][0]["loc"] == ["path", "resource_type"]
    from fhir_platform.search import executor

    monkeypatch.setattr(executor, "MAX_EXAMINED", 2)
    for i in range(4):
        api.put(patient(f"b{i}", "Broad", f"B{i}"))
    broad = api.get("resources/Patient", **{"gender:not": "male"})  # no index can drive :not; all residual
    assert broad.status == 400 and broad.body["error"] == "search_too_broad" and "selective" in broad.body["message"]


# --- GET /fhir/patients ----------------------------------------------------------------------


def names(body: dict) -> list[str]:
    return [p["name"] for p in body["patients"]]


def test_patient_list_sorting_paging_and_last_event(people: Api) -> None:
    body = people.ok("patients", sort_by="+name")
    assert_matches("PatientSearchResponse", body)
    assert names(body) == ["Ana Álvarez", "Dee Okafor", "Cyrus Smith", "Ben Smith-Jones", "Eve Zhou"]
    assert body["total"] == 5 and body["has_more"] is False and body["next_offset"] is None
    assert names(people.ok("patients", sort_by="-name"))[0] == "Eve Zhou"
    assert names(people.ok("patients", sort_by="created_at")) == ["Ana Álvarez", "Ben Smith-Jones", "Cyrus Smith", "Dee Okafor", "Eve Zhou"]
    assert names(people.ok("patients", sort_by="-created_at"))[0] == "Eve Zhou"
    # last_event_at: Cyrus's preliminary observation was the last write, then Ben's; Dee and Eve only have themselves
    newest = people.ok("patients", sort_by="-last_event_at")
    assert names(newest)[:2] == ["Cyrus Smith", "Ben Smith-Jones"] and newest["patients"][1]["event_count"] == 3
    assert names(people.ok("patients", sort_by="+last_event_at"))[0] == "Dee Okafor"
    assert names(people.ok("patients")) == names(newest)  # the default is -last_event_at
    people.put(observation("o-new", "p-eve"))
    moved = people.ok("patients", sort_by="-last_event_at")
    assert moved["patients"][0]["name"] == "Eve Zhou" and moved["patients"][0]["event_count"] == 2
    assert moved["patients"][0]["last_event_at"] > newest["patients"][0]["last_event_at"]
    # paging: limit / offset / has_more / next_offset
    page = people.ok("patients", sort_by="+name", limit=2)
    assert names(page) == ["Ana Álvarez", "Dee Okafor"] and page["has_more"] is True and page["next_offset"] == 2 and page["total"] == 5
    page = people.ok("patients", sort_by="+name", limit=2, offset=page["next_offset"])
    assert names(page) == ["Cyrus Smith", "Ben Smith-Jones"] and page["next_offset"] == 4
    last = people.ok("patients", sort_by="+name", limit=2, offset=4)
    assert names(last) == ["Eve Zhou"] and last["has_more"] is False and last["next_offset"] is None


def test_patient_search_q_mrn_phone(people: Api) -> None:
    smiths = people.ok("patients", q="smith", sort_by="name")
    assert names(smiths) == ["Cyrus Smith", "Ben Smith-Jones"] and smiths["total"] == 2
    assert names(people.ok("patients", q="smith", sort_by="-name")) == ["Ben Smith-Jones", "Cyrus Smith"]
    assert names(people.ok("patients", q="smith", sort_by="+created_at", limit=1)) == ["Ben Smith-Jones"]
    assert names(people.ok("patients", q="mrn-003")) == ["Cyrus Smith"]  # q finds identifiers too
    assert names(people.ok("patients", q="(555) 010-0002")) == ["Ben Smith-Jones"]  # …and phones
    ana = people.ok("patients", mrn="MRN-001")
    assert ana["patients"][0]["mrn"] == "MRN-001" and ana["patients"][0]["email"] == "ana@example.org"
    assert ana["patients"][0]["entity_id"] == people.ok("resources/Patient/p-ana")["entity_id"]
    for phone in ("555-010-0001", "+1 (555) 010 0001", "5550100001"):
        assert names(people.ok("patients", phone=phone)) == ["Ana Álvarez"], phone
    assert people.ok("patients", q="smith", mrn="MRN-001")["total"] == 0  # filters AND
    assert people.ok("patients", q="nobody")["patients"] == []


# --- views -----------------------------------------------------------------------------------


def test_patient_view_follows_condition_changes(people: Api) -> None:
    condition = {
        "resourceType": "Condition", "id": "cond-1", "subject": {"reference": "Patient/p-dee"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"text": "Asthma"},
    }
    people.put(condition)
    people.put({"resourceType": "AllergyIntolerance", "id": "al-1", "patient": {"reference": "Patient/p-dee"}, "code": {"text": "Peanuts"}})
    people.put({"resourceType": "MedicationRequest", "id": "mr-1", "status": "active", "intent": "order", "subject": {"reference": "Patient/p-dee"},
                "medicationCodeableConcept": {"text": "Albuterol"}})
    body = people.ok("views/patients", q="okafor")
    assert_matches("FhirPatientListResponse", body)
    row = body["patients"][0]
    assert (row["active_conditions"], row["allergies"], row["active_medications"]) == (["Asthma"], ["Peanuts"], ["Albuterol"])
    assert row["canonical_id"] == "Patient/p-dee" and row["event_count"] == 4 and row["created_at"] == "2025-01-01T00:00:03.000Z"
    people.put({**condition, "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]}})
    row = people.ok("views/patients", q="okafor")["patients"][0]
    assert row["active_conditions"] == [] and row["allergies"] == ["Peanuts"] and row["event_count"] == 5
    listing = people.ok("views/patients", limit=2)
    assert listing["total"] == 5 and listing["has_more"] is True and listing["next_offset"] == 2
    assert listing["patients"][0]["name"] == "Dee Okafor"  # newest activity first


DR = {"resourceType": "Practitioner", "id": "dr-1", "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
      "name": [{"family": "Woloski", "given": ["Jane"], "prefix": ["Dr."]}], "telecom": [{"system": "phone", "value": "555-0199"}],
      "qualification": [{"code": {"text": "Psychiatry"}}], "active": True}


def directory(api: Api) -> None:
    api.put(DR)
    api.put({"resourceType": "Practitioner", "id": "dr-2", "name": [{"family": "Berg", "given": ["Tom"]}]})
    api.put({"resourceType": "Organization", "id": "org-1", "name": "Northside Clinic", "telecom": [{"system": "email", "value": "desk@northside.example"}],
             "type": [{"text": "Healthcare Provider"}]})
    api.put({"resourceType": "Location", "id": "loc-1", "name": "Northside Main", "identifier": [{"value": "FAC-1"}],
             "address": {"line": ["1 Main St"], "city": "Springfield", "state": "IL", "postalCode": "62701"}, "position": {"latitude": 39.8, "longitude": -89.6}})
    api.put({"resourceType": "Location", "id": "loc-2", "name": "Southside Annex"})
    api.put({"resourceType": "Schedule", "id": "sch-1", "actor": [{"reference": "Practitioner/dr-1"}, {"reference": "Location/loc-1"}],
             "specialty": [{"text": "Psychiatry"}]})
    api.put({"resourceType": "Schedule", "id": "sch-2", "actor": [{"reference": "Practitioner/dr-2", "display": "Tom Berg"}, {"reference": "Location/loc-2"}]})
    slot = lambda sid, sch, start, status="free", **kw: {  # noqa: E731
        "resourceType": "Slot", "id": sid, "schedule": {"reference": f"Schedule/{sch}"}, "status": status,
        "start": start, "end": start.replace(":00:00Z", ":30:00Z"), **kw}
    follow_up = [{"coding": [{"code": "FU", "display": "Follow-up visit"}]}]
    api.put(slot("s-1", "sch-1", "2025-03-03T09:00:00Z", serviceType=follow_up))
    api.put(slot("s-2", "sch-1", "2025-03-04T09:00:00Z", status="busy"))
    api.put(slot("s-3", "sch-1", "2025-03-12T09:00:00Z", serviceType=follow_up))
    api.put(slot("s-4", "sch-2", "2025-03-03T10:00:00Z", specialty=[{"text": "Cardiology"}], serviceType=[{"text": "New patient"}]))
    api.put(slot("s-5", "sch-2", "2025-03-05T10:00:00Z", status="busy"))
    api.put({"resourceType": "Appointment", "id": "ap-1", "status": "booked", "start": "2025-03-03T09:00:00Z", "end": "2025-03-03T09:30:00Z",
             "appointmentType": {"text": "Follow-up"}, "reasonCode": [{"text": "Anxiety review"}],
             "participant": [{"actor": {"reference": "Patient/p-ana", "display": "Ana Álvarez"}, "status": "accepted"},
                             {"actor": {"reference": "Practitioner/dr-1", "display": "Dr. Jane Woloski"}, "status": "accepted"},
                             {"actor": {"reference": "Location/loc-1", "display": "Northside Main"}, "status": "accepted"}]})
    api.put({"resourceType": "Appointment", "id": "ap-2", "status": "cancelled", "participant": [{"actor": {"display": "Walk-in"}, "status": "declined"}],
             "cancelationReason": {"text": "Patient request"}})


def test_directory_views_rows_paging_and_totals(api: Api) -> None:
    directory(api)
    prac = api.ok("views/practitioners")
    assert_matches("FhirPractitionerListResponse", prac)
    assert prac["total"] == 2 and [p["name"] for p in prac["practitioners"]] == ["Tom Berg", "Jane Woloski"]  # newest first
    jane = prac["practitioners"][1]
    assert (jane["npi"], jane["specialty"], jane["phone"], jane["scheduling_eligible"]) == ("1234567893", "Psychiatry", "555-0199", True)
    assert jane["canonical_id"] == "Practitioner/dr-1" and jane["event_count"] == 1 and uuid.UUID(jane["entity_id"])
    assert api.ok("views/practitioners")["practitioners"][1]["entity_id"] == jane["entity_id"]  # stable
    assert [p["name"] for p in api.ok("views/practitioners", q="wolo")["practitioners"]] == ["Jane Woloski"]
    page = api.ok("views/practitioners", limit=1)
    assert page["has_more"] is True and page["next_offset"] == 1 and page["total"] == 2
    page = api.ok("views/practitioners", limit=1, offset=1)
    assert page["has_more"] is False and page["next_offset"] is None and page["practitioners"][0]["name"] == "Jane Woloski"

    locs = api.ok("views/locations", q="northside")
    assert_matches("FhirLocationListResponse", locs)
    loc = locs["locations"][0]
    assert locs["total"] == 1 and (loc["city"], loc["postal_code"], loc["address_line"], loc["facility_id"], loc["latitude"]) == (
        "Springfield", "62701", "1 Main St", "loc-1", 39.8)
    assert api.ok("views/locations")["total"] == 2

    orgs = api.ok("views/organizations")
    assert_matches("FhirOrganizationListResponse", orgs)
    assert orgs["organizations"][0]["domain"] == "northside.example" and orgs["organizations"][0]["industry"] == "Healthcare Provider"

    appts = api.ok("views/appointments")
    assert_matches("FhirAppointmentListResponse", appts)
    assert appts["total"] == 2
    booked = next(a for a in appts["appointments"] if a["canonical_id"] == "Appointment/ap-1")
    assert (booked["patient_name"], booked["practitioner_name"], booked["location_name"], booked["duration_minutes"], booked["reason"]) == (
        "Ana Álvarez", "Dr. Jane Woloski", "Northside Main", 30, "Anxiety review")
    cancelled = next(a for a in appts["appointments"] if a["canonical_id"] == "Appointment/ap-2")
    assert cancelled["cancel_reason"] == "Patient request"
    assert [a["canonical_id"] for a in api.ok("views/appointments", q="anxiety")["appointments"]] == ["Appointment/ap-1"]


def slot_ids(body: dict) -> list[str]:
    return [s["canonical_id"].split("/")[1] for s in body["slots"]]


def test_slot_view_filters(api: Api) -> None:
    directory(api)
    everything = api.ok("views/slots", limit=100)
    assert_matches("FhirSlotListResponse", everything)
    assert everything["total"] == 5
    s1 = next(s for s in everything["slots"] if s["canonical_id"] == "Slot/s-1")
    assert (s1["provider_id"], s1["facility_id"], s1["schedule_ref"], s1["specialty"], s1["visit_type_names"], s1["visit_type_ids"]) == (
        "dr-1", "loc-1", "Schedule/sch-1", "Psychiatry", "Follow-up visit", "FU")
    s4 = next(s for s in everything["slots"] if s["canonical_id"] == "Slot/s-4")
    assert s4["provider_name"] == "Tom Berg" and s4["specialty"] == "Cardiology"
    # window: [date, date + days), ordered by start
    week = api.ok("views/slots", date="2025-03-03")
    assert slot_ids(week) == ["s-1", "s-4", "s-2", "s-5"] and week["total"] == 4
    assert slot_ids(api.ok("views/slots", date="2025-03-04", days=1)) == ["s-2"]
    assert slot_ids(api.ok("views/slots", date="2025-03-03", days=30)) == ["s-1", "s-4", "s-2", "s-5", "s-3"]
    # status, specialty, service type, provider (name words, via the Practitioner or the actor display), facility
    free = api.ok("views/slots", date="2025-03-03", days=30, status="free", limit=2)
    assert slot_ids(free) == ["s-1", "s-4"] and free["total"] == 3 and free["has_more"] is True and free["next_offset"] == 2
    assert slot_ids(api.ok("views/slots", date="2025-03-03", days=30, status="free", limit=2, offset=2)) == ["s-3"]
    assert slot_ids(api.ok("views/slots", date="2025-03-03", status="FREE,busy")) == ["s-1", "s-4", "s-2", "s-5"]
    assert sorted(slot_ids(api.ok("views/slots", specialty="psych"))) == ["s-1", "s-2", "s-3"]  # s-2 via its Schedule
    assert slot_ids(api.ok("views/slots", specialty="cardio")) == ["s-4"]
    assert sorted(slot_ids(api.ok("views/slots", service_type="follow"))) == ["s-1", "s-3"]
    assert sorted(slot_ids(api.ok("views/slots", provider="Woloski"))) == ["s-1", "s-2", "s-3"]
    assert sorted(slot_ids(api.ok("views/slots", provider="jane wol"))) == ["s-1", "s-2", "s-3"]
    assert sorted(slot_ids(api.ok("views/slots", provider="berg"))) == ["s-4", "s-5"]
    assert api.ok("views/slots", provider="nobody") == {"slots": [], "total": 0, "has_more": False, "next_offset": None}
    annex = api.ok("views/locations", q="southside")["locations"][0]["facility_id"]  # the location view's id filters slots
    assert sorted(slot_ids(api.ok("views/slots", facility_id=annex))) == ["s-4", "s-5"]
    assert slot_ids(api.ok("views/slots", provider="woloski", facility_id="loc-2")) == []
    combined = api.ok("views/slots", provider="woloski", facility_id="loc-1", date="2025-03-01", days=14, status="free", service_type="follow-up")
    assert slot_ids(combined) == ["s-1", "s-3"] and combined["total"] == 2
    # views follow changes: a booked slot leaves the free list
    api.put({"resourceType": "Slot", "id": "s-1", "schedule": {"reference": "Schedule/sch-1"}, "status": "busy",
             "start": "2025-03-03T09:00:00Z", "end": "2025-03-03T09:30:00Z"})
    assert slot_ids(api.ok("views/slots", date="2025-03-03", status="free")) == ["s-4"]


def test_data_source_scoping(api: Api) -> None:
    ehr, other = str(uuid.uuid4()), str(uuid.uuid4())
    api.put(patient("ds-1", "Source", "One"), data_source_id=ehr)
    api.put(patient("ds-2", "Source", "Two"), data_source_id=other)
    api.put(patient("ds-3", "Source", "Three"))
    api.put({"resourceType": "Organization", "id": "ds-org", "name": "EHR Org"}, data_source_id=ehr)
    api.put({"resourceType": "Organization", "id": "api-org", "name": "API Org"})
    scoped = api.ok("views/patients", data_source_id=ehr)
    assert [p["name"] for p in scoped["patients"]] == ["One Source"] and scoped["total"] == 1
    assert [p["name"] for p in api.ok("views/patients", q="source", data_source_id=other)["patients"]] == ["Two Source"]
    assert [o["name"] for o in api.ok("views/organizations", data_source_id=ehr)["organizations"]] == ["EHR Org"]
    assert api.ok("views/organizations")["total"] == 2
    # the scope is the current version's source: re-written through the API without one, it leaves
    api.put({"resourceType": "Organization", "id": "ds-org", "name": "EHR Org renamed"})
    assert api.ok("views/organizations", data_source_id=ehr)["total"] == 0
    # ... and a new version from another source moves it (lists and counted totals); identical
    # content is no new version, so it would stay where it is
    api.put(patient("ds-1", "Source", "One"), data_source_id=other)
    assert api.ok("views/patients", data_source_id=ehr)["total"] == 1
    api.put({**patient("ds-1", "Source", "One"), "gender": "female"}, data_source_id=other)
    assert api.ok("views/patients", data_source_id=ehr) == {"patients": [], "total": 0, "has_more": False, "next_offset": None}
    moved = api.ok("views/patients", data_source_id=other, limit=1)
    assert [p["name"] for p in moved["patients"]] == ["One Source"] and moved["total"] == 2 and moved["has_more"]
    # a compartment write moves the patient to the top of its source's list
    api.put({"resourceType": "Observation", "id": "ds-obs", "status": "final", "code": {"text": "x"},
             "subject": {"reference": "Patient/ds-2"}})
    assert [p["name"] for p in api.ok("views/patients", data_source_id=other)["patients"]] == ["Two Source", "One Source"]


def test_workspace_isolation(gateway: Gateway, people: Api) -> None:
    other = new_workspace(gateway)
    intruder = Api(gateway, {"id": other["id"], "key": new_key(gateway, other["id"])})
    intruder.put(patient("p-ana", "Álvarez", "Ana"))  # same id, other workspace
    assert intruder.search("Patient", name="alv") == ["p-ana"] and intruder.ok("patients")["total"] == 1
    assert intruder.search("Observation") == [] and intruder.ok("views/patients")["total"] == 1
    for path in ("resources/Patient", "patients", "views/patients", "views/slots", "views/practitioners"):
        reply = gateway.call("GET", f"/v1/{people.ws}/fhir/{path}", token=intruder.key)
        assert reply.status == 403 and "Álvarez" not in str(reply.body), path
    viewer = Api(gateway, {"id": people.ws, "key": new_key(gateway, people.ws, role="viewer")})
    assert viewer.ok("patients")["total"] == 5  # read permission is enough
    unconfigured = new_workspace(gateway, fhir=False)
    gate = gateway.call("GET", f"/v1/{unconfigured['id']}/fhir/patients", token=new_key(gateway, unconfigured["id"]))
    assert gate.status == 409
