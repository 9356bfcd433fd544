import json

from fhir_platform.search.listing import patient_view_page
from fhir_platform.search.indexing import index_items
from fhir_platform.search.query import parse_patient_search
from fhir_platform.storage.resources import ResourceStore
from fhir_platform.search.views import (
    appointment_row,
    location_row,
    organization_row,
    patient_row,
    practitioner_row,
    slot_row,
)

from .search_testdata import WS, hl7, write


def item(resource: dict, **extra) -> dict:
    return {
        "resource": resource,
        "entity_id": "0e0c6a1e-5f0b-4c2e-9a51-7c0d6f1f0001",
        "last_updated": "2024-01-01T00:00:00Z",
        **extra,
    }


def facts_for(*resources: dict) -> list[dict]:
    out = []
    for r in resources:
        out += [
            i
            for i in index_items(
                WS,
                r["resourceType"],
                r["id"],
                r,
                entity_id=None,
                last_updated="2024-01-01T00:00:00Z",
                created_at="2024-01-01T00:00:00Z",
            )
            if "#@patient#" in i["PK"]
        ]
    return out


def test_patient_row_flattens_demographics_and_active_facts():
    patient = hl7("Patient-example")
    cond, allergy, cov = hl7("Condition-example"), hl7("AllergyIntolerance-example"), hl7("Coverage-9876B1")
    cov["beneficiary"] = {"reference": "Patient/example"}
    partition = facts_for(cond, allergy, cov) + [
        {"PK": "x", "SK": "LAST_EVENT", "last_event_at": "2024-02-02T00:00:00Z", "event_count": 7}
    ]
    row = patient_row(item(patient, created_at="2023-01-01T00:00:00Z"), partition)
    assert (row["name"], row["first_name"], row["last_name"]) == ("Peter James Chalmers", "Peter James", "Chalmers")
    assert (row["birth_date"], row["gender"], row["mrn"]) == ("1974-12-25", "male", "12345")
    # rank 1 work phone, not the old one; Australian, written without +61: no NANP number, so as written
    assert row["phone"] == "(03) 5555 6473"
    assert (row["address_city"], row["address_state"], row["address_postal_code"]) == ("PleasantVille", "Vic", "3999")
    assert row["active_conditions"] == ["Burnt Ear"] and row["allergies"] == ["Cashew nuts"]
    assert row["active_medications"] == []
    assert row["member_id"] == "12345" and row["policyholder_relationship"] == "self"
    assert row["primary_payer_name"] is None  # Organization/2 has no display in the example
    cov["payor"][0]["display"] = "Benefits Inc"
    assert patient_row(item(patient), facts_for(cov))["primary_payer_name"] == "Benefits Inc"
    assert (row["last_event_at"], row["event_count"], row["created_at"]) == (
        "2024-02-02T00:00:00Z",
        7,
        "2023-01-01T00:00:00Z",
    )
    assert row["canonical_id"] == "Patient/example" and row["confidence"] == 1.0


def test_directory_rows():
    prac = practitioner_row(item(hl7("Practitioner-example")))
    assert (prac["name"], prac["specialty"], prac["scheduling_eligible"]) == (
        "Adam Careful",
        "Bachelor of Science",
        True,
    )
    role = hl7("PractitionerRole-example")
    assert practitioner_row(item(hl7("Practitioner-example")), role)["specialty"] == "General medical practice"
    assert practitioner_row(item(hl7("Practitioner-example")), role)["email"] == "adam.southern@example.org"
    loc = location_row(item(hl7("Location-1")))
    assert (loc["name"], loc["city"], loc["postal_code"], loc["phone"]) == (
        "South Wing, second floor",
        "Den Burg",
        "9105 PZ",
        "2328",
    )
    assert (loc["latitude"], loc["longitude"], loc["address_line"]) == (
        42.25475478,
        -83.6945691,
        "Galapagosweg 91, Building A",
    )
    org = organization_row(item(hl7("Organization-hl7")))
    assert (org["name"], org["phone"], org["domain"]) == (
        "Health Level Seven International",
        "(+1) 734-677-7777",
        "hl7.org",
    )
    assert org["address"]["city"] == "Ann Arbor"


def test_scheduling_rows():
    appt = appointment_row(item(hl7("Appointment-example")))
    assert (appt["status"], appt["patient_name"], appt["practitioner_name"]) == (
        "booked",
        "Peter James Chalmers",
        "Dr Adam Careful",
    )
    assert appt["location_name"] == "South Wing, second floor" and appt["duration_minutes"] == 120
    assert appt["appointment_type"] == "A follow up visit from a previous appointment"
    assert appt["reason"] == "Severe burn of left ear"
    slot = slot_row(item(hl7("Slot-1")), hl7("Schedule-example"))
    assert (slot["status"], slot["schedule_ref"], slot["facility_id"]) == ("busy", "Schedule/example", "1")
    assert slot["start"] == "2013-12-25T09:00:00Z" and slot["provider_name"] is None


def test_patient_view_stays_correct_as_resources_change(table):
    patient = hl7("Patient-example")
    write(table, patient, "2024-01-01T00:00:00Z", entity="0e0c6a1e-5f0b-4c2e-9a51-7c0d6f1f0001")
    write(table, hl7("Condition-example"), "2024-01-02T00:00:00Z")
    med = hl7("MedicationRequest-medrx0302")
    med["subject"] = {"reference": "Patient/example"}
    write(table, med, "2024-01-03T00:00:00Z")
    page = patient_view_page(ResourceStore(table), WS, parse_patient_search({"q": "chalmers"}))
    rows = page.rows
    assert page.total == 1
    assert rows[0]["active_conditions"] == ["Burnt Ear"]
    assert rows[0]["active_medications"] == ["Azithromycin 250mg capsule (product)"]
    assert rows[0]["event_count"] == 3 and rows[0]["last_event_at"] == "2024-01-03T00:00:00.000Z"
    resolved = json.loads(json.dumps(hl7("Condition-example")))
    resolved["clinicalStatus"]["coding"][0]["code"] = "resolved"
    write(table, resolved, "2024-01-04T00:00:00Z")
    rows = patient_view_page(ResourceStore(table), WS, parse_patient_search({})).rows
    assert rows[0]["active_conditions"] == [] and rows[0]["active_medications"] == [
        "Azithromycin 250mg capsule (product)"
    ]
    assert rows[0]["last_event_at"] == "2024-01-04T00:00:00.000Z"
    assert rows[0]["entity_id"] == "0e0c6a1e-5f0b-4c2e-9a51-7c0d6f1f0001"
