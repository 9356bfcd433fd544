"""Timeline rules (domain, clinical time, display, event fields), their index items, vitals items and
the touch item's per-domain counts."""

import pytest
from fhir_platform.search.indexing import compartment_touch, index_items, touch_key, view_fact
from fhir_platform.search.timeline import (
    DOMAINS,
    display,
    domain_of,
    event_uuid,
    occurred_at,
    timeline_items,
    timeline_patients,
    timeline_pk,
    vital_items,
    vitals_pk,
)

from .search_testdata import SYNTHEA_SMALL, bundle_resources

WS = "ws-1"
LU = "2025-01-02T03:04:05.678Z"
P = {"reference": "Patient/p1"}


@pytest.mark.parametrize(
    "rtype, domain",
    [
        ("Encounter", "encounter"), ("Condition", "condition"), ("Observation", "observation"), ("Procedure", "procedure"),
        ("MedicationRequest", "medication"), ("MedicationStatement", "medication"), ("Immunization", "immunization"),
        ("AllergyIntolerance", "allergy"), ("DiagnosticReport", "diagnostic_report"), ("DocumentReference", "document"),
        ("Appointment", "appointment"), ("Claim", "claim"), ("ExplanationOfBenefit", "claim"), ("CarePlan", "care_plan"),
        ("Device", "other"), ("ImagingStudy", "other"),
    ],
)
def test_domain_per_type(rtype: str, domain: str) -> None:
    assert domain_of(rtype) == domain and domain in DOMAINS


@pytest.mark.parametrize(
    "resource, expected",
    [
        ({"resourceType": "Encounter", "period": {"start": "2024-01-10T09:00:00+02:00", "end": "2024-01-10T10:00:00Z"}}, "2024-01-10T07:00:00.000Z"),
        ({"resourceType": "Condition", "onsetPeriod": {"start": "2020-05"}, "recordedDate": "2021-01-01"}, "2020-05-01T00:00:00.000Z"),
        ({"resourceType": "Condition", "recordedDate": "2021-01-01"}, "2021-01-01T00:00:00.000Z"),
        ({"resourceType": "Observation", "effectiveDateTime": "2024-02-01T08:00:00.5Z", "issued": "2024-02-02T00:00:00Z"}, "2024-02-01T08:00:00.500Z"),
        ({"resourceType": "Observation", "issued": "2024-02-02T00:00:00Z"}, "2024-02-02T00:00:00.000Z"),
        ({"resourceType": "Procedure", "performedPeriod": {"start": "2019-03-04T05:06:07Z"}}, "2019-03-04T05:06:07.000Z"),
        ({"resourceType": "MedicationRequest", "authoredOn": "2022-03-02"}, "2022-03-02T00:00:00.000Z"),
        ({"resourceType": "Immunization", "occurrenceDateTime": "2023-10-01"}, "2023-10-01T00:00:00.000Z"),
        ({"resourceType": "DocumentReference", "date": "2023-01-01T00:00:00Z", "context": {"period": {"start": "2022-12-31"}}}, "2022-12-31T00:00:00.000Z"),
        ({"resourceType": "Appointment", "start": "2026-01-01T09:00:00Z"}, "2026-01-01T09:00:00.000Z"),
        ({"resourceType": "Claim", "billablePeriod": {"start": "2024-01-10"}, "created": "2024-02-01"}, "2024-01-10T00:00:00.000Z"),
        # no clinical time, or an unreadable one: lastUpdated
        ({"resourceType": "Observation"}, "2025-01-02T03:04:05.678Z"),
        ({"resourceType": "Observation", "effectiveDateTime": "not a date"}, "2025-01-02T03:04:05.678Z"),
    ],
)
def test_occurred_at_is_the_clinical_time_else_last_updated(resource: dict, expected: str) -> None:
    assert occurred_at(resource["resourceType"], resource, LU) == expected


def test_display_lines() -> None:
    enc = {"status": "finished", "type": [{"coding": [{"code": "162673000", "display": "General examination"}]}]}
    assert display("Encounter", enc) == "Encounter · General examination · finished"
    bp = {"status": "final", "code": {"text": "Blood pressure"}, "component": [
        {"code": {"coding": [{"code": "8480-6"}]}, "valueQuantity": {"value": 120, "unit": "mm[Hg]"}},
        {"code": {"coding": [{"code": "8462-4"}]}, "valueQuantity": {"value": 80.5, "unit": "mm[Hg]"}},
    ]}
    assert display("Observation", bp) == "Observation · Blood pressure · 120/80.5 mm[Hg]"
    assert display("Observation", {"status": "final", "code": {"text": "Smoking"}}) == "Observation · Smoking · final"
    med = {"status": "active", "medicationReference": {"reference": "#m1"}, "contained": [{"id": "m1", "code": {"text": "Aspirin"}}]}
    assert display("MedicationRequest", med) == "Medication request · Aspirin · active"
    assert display("AllergyIntolerance", {"code": {"text": "Peanut"}, "clinicalStatus": {"coding": [{"code": "active"}]}}) == "Allergy · Peanut · active"
    assert display("Immunization", {"status": "completed", "vaccineCode": {"coding": [{"code": "140"}]}}) == "Immunization · 140 · completed"
    assert display("Goal", {"lifecycleStatus": "active", "description": {"text": "Lose weight"}}) == "Goal · Lose weight · active"
    assert display("DiagnosticReport", {}) == "Diagnostic report"


def _items(resource: dict, **kw) -> list[dict]:
    args = {"entity_id": "ent-1", "last_updated": LU, "created_at": LU, "data_source_id": None} | kw
    return timeline_items(WS, resource["resourceType"], resource["id"], resource, **args)


def test_timeline_items_carry_the_whole_event_in_two_partitions() -> None:
    enc = {"resourceType": "Encounter", "id": "e1", "meta": {"versionId": "1"}, "status": "finished", "subject": P,
           "type": [{"text": "Checkup"}], "period": {"start": "2024-01-10T09:00:00Z"}}
    items = _items(enc)
    assert [(i["PK"], i["SK"]) for i in items] == [
        (timeline_pk(WS, "p1"), "2024-01-10T09:00:00.000Z#Encounter#e1"),
        (timeline_pk(WS, "p1", "encounter"), "2024-01-10T09:00:00.000Z#Encounter#e1"),
    ]
    assert items[0] | {} == {**items[0], "id": "e1", "rt": "Encounter", "dm": "encounter", "at": "2024-01-10T09:00:00.000Z",
                            "d": "Encounter · Checkup · finished", "w": "Checkup", "et": "created", "st": "finished",
                            "ev": event_uuid(WS, "Encounter", "e1", "1"), "v": "1", "e": "ent-1"}
    assert "src" not in items[0]
    later = _items({**enc, "meta": {"versionId": "2"}}, created_at="2024-12-01T00:00:00Z", data_source_id="ds-1")
    assert later[0]["et"] == "updated" and later[0]["src"] == "ds-1" and later[0]["ev"] == event_uuid(WS, "Encounter", "e1", "2")
    assert later[0]["ev"] != items[0]["ev"] and event_uuid("ws-2", "Encounter", "e1", "2") != later[0]["ev"]
    # deterministic: the write path recomputes the stored version's items to diff against
    assert _items(enc) == items


def test_patients_are_not_on_their_own_timeline_and_references_pick_the_partition() -> None:
    assert timeline_patients("Patient", {"id": "p1"}) == [] and _items({"resourceType": "Patient", "id": "p1"}) == []
    appt = {"resourceType": "Appointment", "id": "a1", "status": "booked",
            "participant": [{"actor": {"reference": "Patient/p1"}}, {"actor": {"reference": "Patient/p2"}}, {"actor": {"reference": "Patient/p3"}}]}
    assert timeline_patients("Appointment", appt) == ["p1", "p2"]  # at most two, as the view facts
    assert {i["PK"] for i in _items(appt)} == {timeline_pk(WS, p, d) for p in ("p1", "p2") for d in (None, "appointment")}
    assert _items({"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"}}) == []


def test_vital_items_latest_per_kind_sort_key() -> None:
    hr = {"resourceType": "Observation", "id": "o1", "status": "final", "subject": P, "effectiveDateTime": "2024-02-01T08:00:00Z",
          "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}, "valueQuantity": {"value": 72.0, "unit": "/min"}}
    (item,) = vital_items(WS, "Observation", "o1", hr, last_updated=LU)
    assert (item["PK"], item["SK"]) == (vitals_pk(WS, "p1"), "heart_rate#2024-02-01T08:00:00.000Z#o1")
    assert item["val"] == "72.0" and item["u"] == "/min" and item["kind"] == "heart_rate"
    assert vital_items(WS, "Observation", "o1", {**hr, "status": "entered-in-error"}, last_updated=LU) == []
    assert vital_items(WS, "Observation", "o1", {**hr, "valueQuantity": None}, last_updated=LU) == []
    other = {**hr, "code": {"coding": [{"code": "2339-0"}]}}
    assert vital_items(WS, "Observation", "o1", other, last_updated=LU) == []


def test_index_items_include_the_timeline_vitals_and_care_team_facts() -> None:
    resources = bundle_resources(SYNTHEA_SMALL)
    for r in resources:
        items = index_items(WS, r["resourceType"], r["id"], r, entity_id=None, last_updated=LU, created_at=LU)
        on_timeline = [i for i in items if "#IX#@timeline#" in i["PK"]]
        assert len(on_timeline) == 2 * len(timeline_patients(r["resourceType"], r)), r["resourceType"]
        assert len({(i["PK"], i["SK"]) for i in items}) == len(items)  # a transaction writes each key once
    care = {"resourceType": "CareTeam", "id": "ct", "status": "active", "subject": P, "name": "Diabetes team",
            "participant": [{"member": {"display": "Dr. A"}, "role": [{"text": "Endocrinologist"}]}, {"member": {"display": "Nurse B"}}]}
    assert view_fact("CareTeam", care) == ("care_team", {"d": "Diabetes team", "members": ["Dr. A (Endocrinologist)", "Nurse B"]})
    assert view_fact("CareTeam", {**care, "status": "inactive"}) is None


def test_touch_item_keeps_per_domain_counts() -> None:
    first = compartment_touch(WS, "p1", event_time=LU, previous=None, timeline={"encounter": 1, "observation": 2})
    touch = first[0]["Put"]["Item"]
    assert touch["tl"] == {"encounter": 1, "observation": 2}
    later = compartment_touch(WS, "p1", event_time=LU, previous={**touch, "tl": {"encounter": 1, "observation": 2}}, timeline={"observation": -1, "claim": 1})
    assert later[0]["Put"]["Item"]["tl"] == {"encounter": 1, "observation": 1, "claim": 1}
    same = compartment_touch(WS, "p1", event_time=LU, previous=later[0]["Put"]["Item"])  # an update: counts kept
    assert same[0]["Put"]["Item"]["tl"] == later[0]["Put"]["Item"]["tl"] and same[0]["Put"]["Item"]["PK"] == touch_key(WS, "p1")["PK"]
