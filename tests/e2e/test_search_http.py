"""Search, the patient list and the views end to end: real HTTP to the local stack, with Synthea
resources written through the API (references rewritten from ``urn:uuid:`` to ``Type/id`` as an
import resolves them)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import Client, make_workspace
from tests.support.contract import assert_matches
from tests.support.shared import FIXTURES

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

SYNTHEA = FIXTURES / "synthea" / "smart-on-fhir_generated-sample-data"
BUSTER = "Buster_Hoeger_ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423.json"
LIZ = "Liz_Conn_27c911c6-f045-4ffa-af5d-6eba57ac94b2.json"
KEEP = {"Patient", "Organization", "Practitioner", "Encounter", "Observation", "Condition", "Immunization"}


def bundle(name: str) -> list[dict]:
    path = SYNTHEA / name
    if not path.exists():
        pytest.skip("Synthea fixtures not present")
    entries = json.loads(path.read_text())["entry"]
    urls = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries if e.get("fullUrl")}
    text = json.dumps([e["resource"] for e in entries if e["resource"]["resourceType"] in KEEP])
    for url, ref in urls.items():
        text = text.replace(f'"{url}"', f'"{ref}"')
    return json.loads(text)


@pytest.fixture(scope="session")  # session: other e2e modules may interleave on the worker
def loaded(admin: Client) -> tuple[str, Client, dict]:
    ws, c = make_workspace(admin)
    resources = bundle(BUSTER) + [r for r in bundle(LIZ) if r["resourceType"] == "Patient"]
    extra = [
        {"resourceType": "Location", "id": "loc-1", "name": "Northampton Clinic", "address": {"city": "Northampton", "state": "MA"}},
        {"resourceType": "Schedule", "id": "sch-1", "actor": [{"reference": "Practitioner/34ef92a2-f1a5-4324-b274-4ccf96f9f2d1", "display": "Dr. Antonia Stark"},
                                                              {"reference": "Location/loc-1"}]},
        *[
            {"resourceType": "Slot", "id": f"slot-{d}", "schedule": {"reference": "Schedule/sch-1"}, "status": "free" if d % 2 else "busy",
             "start": f"2025-05-{d:02d}T09:00:00Z", "end": f"2025-05-{d:02d}T09:30:00Z", "specialty": [{"text": "Family medicine"}]}
            for d in range(1, 6)
        ],
        {"resourceType": "Appointment", "id": "ap-1", "status": "booked", "start": "2025-05-01T09:00:00Z", "end": "2025-05-01T09:30:00Z",
         "participant": [{"actor": {"reference": "Patient/e4531916-b162-4f4b-90c2-ce37e132b8d4", "display": "Buster Hoeger"}, "status": "accepted"}]},
    ]
    for r in resources + extra:
        reply = c.put(f"/v1/{ws}/fhir/resources/{r['resourceType']}/{r['id']}", json={"data": r})
        assert reply.status_code in (200, 201), reply.text
    return ws, c, {"buster": resources[0]["id"], "count": len(resources)}


def ok(c: Client, path: str, params: Any = None) -> dict:
    reply = c.get(path, params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_resource_search_over_http(loaded) -> None:
    ws, c, ids = loaded
    base = f"/v1/{ws}/fhir/resources"
    body = ok(c, f"{base}/Observation", {"patient": f"Patient/{ids['buster']}", "code": "http://loinc.org|8302-2"})
    assert_matches("FhirSearchResponse", body)
    assert body["total"] == 3 and {e["data"]["code"]["coding"][0]["code"] for e in body["entries"]} == {"8302-2"}
    # paging by next_url over real HTTP collects every Observation exactly once
    page, seen = ok(c, f"{base}/Observation", {"_count": 10}), []
    assert page["total"] == 33
    while True:
        seen += [e["resource_id"] for e in page["entries"]]
        if not page["next_url"]:
            break
        page = ok(c, page["next_url"])
    assert len(seen) == len(set(seen)) == 33
    # repeated parameters AND; modifiers; prefixes
    window = ok(c, f"{base}/Observation", [("date", "ge2016"), ("date", "lt2018"), ("_count", "100")])
    assert window["total"] > 0 and all("2016" <= e["data"]["effectiveDateTime"][:4] < "2018" for e in window["entries"])
    assert [e["resource_id"] for e in ok(c, f"{base}/Patient", {"name:exact": "Hoeger"})["entries"]] == [ids["buster"]]
    assert ok(c, f"{base}/Patient", {"name:exact": "hoeger"})["entries"] == []
    active = ok(c, f"{base}/Condition", {"patient": ids["buster"], "clinical-status": "active"})
    assert [e["data"]["code"]["text"] for e in active["entries"]] == ["Chronic sinusitis (disorder)"]
    bad = c.get(f"{base}/Observation", params={"date": "yesterday"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "date"]
    assert c.get(f"{base}/Observation", params={"_count": 101}).status_code == 422


def test_patient_search_and_list_over_http(loaded) -> None:
    ws, c, ids = loaded
    by_name = ok(c, f"/v1/{ws}/fhir/patients", {"sort_by": "+name"})
    assert_matches("PatientSearchResponse", by_name)
    assert [p["name"] for p in by_name["patients"]] == ["Liz Conn", "Buster Hoeger"] and by_name["total"] == 2
    newest = ok(c, f"/v1/{ws}/fhir/patients", {"sort_by": "-last_event_at", "limit": 1})
    assert newest["has_more"] is True and newest["next_offset"] == 1 and newest["total"] == 2
    oldest = ok(c, f"/v1/{ws}/fhir/patients", {"sort_by": "+last_event_at", "limit": 1, "offset": 1})
    assert oldest["patients"] == newest["patients"] and oldest["has_more"] is False
    assert [p["name"] for p in ok(c, f"/v1/{ws}/fhir/patients", {"sort_by": "-created_at"})["patients"]] == ["Liz Conn", "Buster Hoeger"]
    buster = ok(c, f"/v1/{ws}/fhir/patients", {"phone": "(555) 866-2259"})["patients"]
    assert [p["name"] for p in buster] == ["Buster Hoeger"] and buster[0]["event_count"] > 40
    assert buster[0]["phone"] == "+15558662259"  # Synthea's 555-866-2259 in E.164 (a 555 number: not valid, still shown)
    assert ok(c, f"/v1/{ws}/fhir/patients", {"phone": buster[0]["phone"]})["patients"] == buster  # what is shown is found
    assert ok(c, f"/v1/{ws}/fhir/views/patients", {"q": "hoeger"})["patients"][0]["phone"] == "+15558662259"
    assert ok(c, f"/v1/{ws}/fhir/patients", {"mrn": "ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423"})["total"] == 1
    bad = c.get(f"/v1/{ws}/fhir/patients", params={"sort_by": "-age"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "sort_by"]


def test_views_over_http(loaded) -> None:
    ws, c, ids = loaded
    views = f"/v1/{ws}/fhir/views"
    patients = ok(c, f"{views}/patients", {"q": "hoeger"})
    assert_matches("FhirPatientListResponse", patients)
    row = patients["patients"][0]
    assert row["active_conditions"] == ["Chronic sinusitis (disorder)"] and row["mrn"] == "ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423"
    for view, schema, key, expected in [
        ("practitioners", "FhirPractitionerListResponse", "practitioners", 1),
        ("organizations", "FhirOrganizationListResponse", "organizations", 1),
        ("locations", "FhirLocationListResponse", "locations", 1),
        ("appointments", "FhirAppointmentListResponse", "appointments", 1),
        ("slots", "FhirSlotListResponse", "slots", 5),
    ]:
        body = ok(c, f"{views}/{view}")
        assert_matches(schema, body)
        assert body["total"] == expected and len(body[key]) == expected, view
    assert ok(c, f"{views}/practitioners")["practitioners"][0]["npi"] == "60"
    free = ok(c, f"{views}/slots", {"date": "2025-05-01", "days": 3, "status": "free", "provider": "stark", "specialty": "family"})
    assert [s["start"] for s in free["slots"]] == ["2025-05-01T09:00:00Z", "2025-05-03T09:00:00Z"]
    assert free["slots"][0]["provider_name"] == "Dr. Antonia Stark" and free["slots"][0]["facility_id"] == "loc-1"
    paged = ok(c, f"{views}/slots", {"date": "2025-05-01", "limit": 2, "offset": 2})
    assert paged["total"] == 5 and paged["has_more"] is True and paged["next_offset"] == 4
    bad = c.get(f"{views}/slots", params={"days": 0})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "days"]


def test_search_isolation_over_http(loaded, admin: Client) -> None:
    ws, _, ids = loaded
    other_ws, other = make_workspace(admin)
    for path in (f"/v1/{ws}/fhir/resources/Patient", f"/v1/{ws}/fhir/patients", f"/v1/{ws}/fhir/views/patients"):
        reply = other.get(path)
        assert reply.status_code == 403 and "Hoeger" not in reply.text, path
    assert ok(other, f"/v1/{other_ws}/fhir/resources/Patient", {"_id": ids["buster"]})["entries"] == []
    assert ok(other, f"/v1/{other_ws}/fhir/patients")["total"] == 0


def test_views_scoped_to_the_data_source_of_an_import_over_http(admin: Client) -> None:
    """A Bundle imported with a data_source_id: the views scoped to that source list exactly its
    resources, with totals, and a later write from another source moves a resource out."""
    ws, c = make_workspace(admin)
    ehr, lab = str(uuid.uuid4()), str(uuid.uuid4())
    entries = [{"resource": {"resourceType": "Patient", "id": f"dsp-{i}", "name": [{"family": "Scoped", "given": [f"P{i}"]}]},
                "request": {"method": "PUT", "url": f"Patient/dsp-{i}"}} for i in range(3)]
    entries.append({"resource": {"resourceType": "Organization", "id": "ds-org", "name": "Scoped Org"},
                    "request": {"method": "PUT", "url": "Organization/ds-org"}})
    reply = c.post(f"/v1/{ws}/fhir/import", json={"bundle": {"resourceType": "Bundle", "type": "transaction", "entry": entries},
                                                  "data_source_id": ehr})
    assert reply.status_code == 200, reply.text
    c.put(f"/v1/{ws}/fhir/resources/Patient/other", json={"data": {"resourceType": "Patient", "name": [{"family": "Scoped"}]}})
    scoped = ok(c, f"/v1/{ws}/fhir/views/patients", {"data_source_id": ehr, "limit": 2})
    assert_matches("FhirPatientListResponse", scoped)
    assert scoped["total"] == 3 and scoped["has_more"] and len(scoped["patients"]) == 2
    rest = ok(c, f"/v1/{ws}/fhir/views/patients", {"data_source_id": ehr, "limit": 2, "offset": scoped["next_offset"]})
    assert len(rest["patients"]) == 1 and rest["has_more"] is False
    assert {p["canonical_id"] for p in scoped["patients"] + rest["patients"]} == {f"Patient/dsp-{i}" for i in range(3)}
    assert ok(c, f"/v1/{ws}/fhir/views/patients", {"q": "scoped"})["total"] == 4
    assert ok(c, f"/v1/{ws}/fhir/views/organizations", {"data_source_id": ehr})["total"] == 1
    moved = {"resourceType": "Patient", "name": [{"family": "Scoped", "given": ["Moved"]}]}
    assert c.put(f"/v1/{ws}/fhir/resources/Patient/dsp-0", json={"data": moved, "data_source_id": lab}).status_code == 200
    assert ok(c, f"/v1/{ws}/fhir/views/patients", {"data_source_id": ehr, "q": "scoped"})["total"] == 2
    lab_view = ok(c, f"/v1/{ws}/fhir/views/patients", {"data_source_id": lab})
    assert [p["canonical_id"] for p in lab_view["patients"]] == ["Patient/dsp-0"] and lab_view["total"] == 1


def test_patient_lists_keep_creation_order_within_one_second_over_http(admin: Client) -> None:
    """Patients imported in one request are created within one second; the lists follow their
    millisecond timestamps, not their ids (created here in reverse id order)."""
    ws, c = make_workspace(admin)
    created = [f"ms-{letter}" for letter in "hgfedcba"]
    entries = [{"resource": {"resourceType": "Patient", "id": pid, "name": [{"family": "Msorder", "given": [pid[-1].upper()]}]},
                "request": {"method": "PUT", "url": f"Patient/{pid}"}} for pid in created]
    reply = c.post(f"/v1/{ws}/fhir/import", json={"bundle": {"resourceType": "Bundle", "type": "transaction", "entry": entries}})
    assert reply.status_code == 200, reply.text
    rows = ok(c, f"/v1/{ws}/fhir/views/patients", {"limit": 100})["patients"]
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert all(re.fullmatch(stamp, r["created_at"]) and re.fullmatch(stamp, r["last_event_at"]) for r in rows)
    name = {r["canonical_id"]: r["name"] for r in rows}
    by_created = [name[r["canonical_id"]] for r in sorted(rows, key=lambda r: (r["created_at"], r["canonical_id"]))]
    by_event = [name[r["canonical_id"]] for r in sorted(rows, key=lambda r: (r["last_event_at"], r["canonical_id"]))]
    assert [r["name"] for r in rows] == by_event[::-1]  # the view: newest activity first
    for q in ({}, {"q": "msorder"}):
        assert [p["name"] for p in ok(c, f"/v1/{ws}/fhir/patients", {"sort_by": "+created_at", **q})["patients"]] == by_created
        assert [p["name"] for p in ok(c, f"/v1/{ws}/fhir/patients", {"sort_by": "-created_at", **q})["patients"]] == by_created[::-1]
        assert [p["name"] for p in ok(c, f"/v1/{ws}/fhir/patients", {"sort_by": "+last_event_at", **q})["patients"]] == by_event
        assert [p["name"] for p in ok(c, f"/v1/{ws}/fhir/patients", {"sort_by": "-last_event_at", **q})["patients"]] == by_event[::-1]
    stamps = {r["canonical_id"]: r["created_at"] for r in rows}  # the import wrote them in bundle order
    assert [stamps[f"Patient/{pid}"] for pid in created] == sorted(stamps.values())
