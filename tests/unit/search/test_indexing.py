import heapq
import json
from collections import defaultdict
from decimal import Decimal

import pytest
from fhir_platform.search.indexing import (
    MAX_INDEX_ITEMS,
    compartment_forget,
    compartment_touch,
    diff_index_items,
    index_items,
    plan,
    touch_key,
    view_fact,
)
from fhir_platform.search.query import matches, parse_search

from .search_testdata import SYNTHEA_HIV, SYNTHEA_SMALL, all_hl7_resources, bundle_resources, hl7

WS = "ws-1"


def items_for(
    resource: dict, *, last_updated="2024-05-01T12:00:00Z", created_at="2024-01-01T00:00:00Z", entity_id="ent-1"
):
    return index_items(
        WS,
        resource["resourceType"],
        resource["id"],
        resource,
        entity_id=entity_id,
        last_updated=last_updated,
        created_at=created_at,
    )


# --- item shape ------------------------------------------------------------------------------


def test_items_are_small_tenant_scoped_and_plain():
    for resource in all_hl7_resources() + bundle_resources(SYNTHEA_SMALL):
        items = items_for(resource)
        assert 1 <= len(items) <= MAX_INDEX_ITEMS
        keys = {(it["PK"], it["SK"]) for it in items}
        assert len(keys) == len(items), resource["id"]  # no duplicate keys in one transaction
        for it in items:
            assert it["PK"].startswith(f"WS#{WS}#IX#")
            assert len(json.dumps(it)) < 1500
            assert "data" not in it
            for value in it.values():
                assert isinstance(value, (str, int, Decimal, list))
                if isinstance(value, list):
                    assert all(isinstance(v, str) for v in value)


def test_index_items_are_deterministic():
    p = hl7("Patient-example")
    assert items_for(p) == items_for(json.loads(json.dumps(p)))


def test_patient_items_cover_every_patient_query():
    p = hl7("Patient-example")
    pks = {it["PK"].removeprefix(f"WS#{WS}#IX#Patient#") for it in items_for(p)}
    families = {pk.split("#")[0] for pk in pks}
    assert {
        "_lastUpdated",
        "sort.created_at",
        "sort.name",
        "entity",
        "identifier",
        "mrn",
        "gender",
        "phone",
        "birthdate",
        "name",
        "family",
        "given",
        "q",
        "organization",
    } <= families
    assert any(pk.startswith("phone#0#0355556473") for pk in pks)
    sort_name = next(it for it in items_for(p) if "sort.name" in it["PK"])
    assert sort_name["SK"] == "chalmers peter james#example"


def test_cap_drops_q_words_first():
    obs = {
        "resourceType": "Observation",
        "id": "big",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "s", "code": f"c{i}", "display": f"word{i} other{i}"} for i in range(30)]},
        "identifier": [{"system": "s", "value": f"id{i}"} for i in range(30)],
    }
    items = items_for(obs)
    assert len(items) == MAX_INDEX_ITEMS
    families = [it["PK"].split("#")[4] for it in items]
    assert families.count("identifier") == 12 and families.count("code") == 12  # per-family cap
    assert families.count("patient+code") == 4
    assert "subject" in families and "status" in families and "_lastUpdated" in families
    assert "patient" not in families  # ``patient`` reads the ``subject`` items (their ``rt`` says Patient)
    assert families.count("p1") == 2  # the timeline items (patient + domain partition) are never dropped
    assert "sort.date.none" in families and "sort._id" not in families  # _sort items are core too (_id: the TypeIndex)
    assert families.count("q") == MAX_INDEX_ITEMS - 34  # q words are what the cap drops
    assert families[-1] == "q"


# --- diff / write path -----------------------------------------------------------------------


def test_diff_removes_vanished_values_and_puts_changed_ones():
    cond = hl7("Condition-example")
    old = items_for(cond)
    cond2 = json.loads(json.dumps(cond))
    cond2["clinicalStatus"]["coding"][0]["code"] = "resolved"
    new = items_for(cond2, last_updated="2024-05-02T00:00:00Z")
    puts, deletes = diff_index_items(old, new)
    deleted_pks = {d["PK"] for d in deletes}
    put_pks = {p["PK"] for p in puts}
    assert any(pk.endswith("#active") and "clinical-status" in pk for pk in deleted_pks)
    assert any(pk.endswith("#resolved") and "clinical-status" in pk for pk in put_pks)
    assert any("@patient" in pk for pk in deleted_pks)  # no longer an active condition in the patient view
    assert any("_lastUpdated" in pk for pk in put_pks) and any("_lastUpdated" in pk for pk in deleted_pks)
    # unchanged values are not rewritten
    assert not any("#code#" in pk for pk in put_pks | deleted_pks)
    assert len(puts) + len(deletes) <= 2 * MAX_INDEX_ITEMS
    assert diff_index_items(new, new) == ([], [])


# --- patient view facts ----------------------------------------------------------------------


def test_view_facts_follow_active_state():
    cond = hl7("Condition-example")
    kind, attrs = view_fact("Condition", cond)
    assert (kind, attrs["d"]) == ("condition", "Burnt Ear")
    cond["clinicalStatus"]["coding"][0]["code"] = "resolved"
    assert view_fact("Condition", cond) is None
    med = hl7("MedicationRequest-medrx0302")
    assert view_fact("MedicationRequest", med) == ("medication", {"d": "Azithromycin 250mg capsule (product)"})
    med["status"] = "completed"
    assert view_fact("MedicationRequest", med) is None
    allergy = hl7("AllergyIntolerance-example")
    assert view_fact("AllergyIntolerance", allergy) == ("allergy", {"d": "Cashew nuts"})
    cov = hl7("Coverage-9876B1")
    kind, attrs = view_fact("Coverage", cov)
    assert kind == "insurance" and attrs["member_id"] == "12345" and attrs["relationship"] == "self"
    fact_item = next(it for it in items_for(hl7("AllergyIntolerance-example")) if "@patient" in it["PK"])
    assert fact_item["PK"] == f"WS#{WS}#IX#@patient#example"
    assert fact_item["SK"] == "F#allergy#AllergyIntolerance#example"


# --- compartment touch -----------------------------------------------------------------------


def test_first_touch_creates_touch_item_and_sort_entry():
    ops = compartment_touch(WS, "p1", event_time="2024-05-01T10:00:00Z", previous=None, entity_id="e1")
    touch = ops[0]["Put"]
    assert touch["Item"]["PK"] == touch_key(WS, "p1")["PK"] and touch["Item"]["event_count"] == 1
    assert touch["ConditionExpression"] == "attribute_not_exists(PK)"
    assert ops[1]["Put"]["Item"]["SK"] == "2024-05-01T10:00:00.000Z#p1"
    assert "sort.last_event_at" in ops[1]["Put"]["Item"]["PK"]


def test_later_touch_moves_the_sort_entry_and_earlier_one_does_not():
    previous = {**touch_key(WS, "p1"), "last_event_at": "2024-05-01T10:00:00.000Z", "event_count": 3, "e": "e1"}
    ops = compartment_touch(WS, "p1", event_time="2024-05-02T00:00:00+02:00", previous=previous)
    assert ops[0]["Put"]["Item"]["last_event_at"] == "2024-05-01T22:00:00.000Z"
    assert ops[0]["Put"]["Item"]["event_count"] == 4
    assert ops[0]["Put"]["ExpressionAttributeValues"] == {":prev_count": 3}
    assert ops[1]["Delete"]["Key"]["SK"] == "2024-05-01T10:00:00.000Z#p1"
    assert ops[2]["Put"]["Item"]["SK"] == "2024-05-01T22:00:00.000Z#p1"
    late = compartment_touch(WS, "p1", event_time="2024-04-01T00:00:00Z", previous=previous)
    assert len(late) == 1 and late[0]["Put"]["Item"]["last_event_at"] == "2024-05-01T10:00:00.000Z"
    forget = compartment_forget(WS, "p1", previous)
    assert forget[0] == touch_key(WS, "p1") and forget[1]["SK"] == "2024-05-01T10:00:00.000Z#p1"


def test_touches_within_one_second_keep_their_order():
    first = compartment_touch(WS, "p1", event_time="2024-05-01T10:00:00.100Z", previous=None)
    previous = first[0]["Put"]["Item"]
    later = compartment_touch(WS, "p1", event_time="2024-05-01T10:00:00.900Z", previous=previous)
    assert later[0]["Put"]["Item"]["last_event_at"] == "2024-05-01T10:00:00.900Z"
    assert later[1]["Delete"]["Key"]["SK"] == "2024-05-01T10:00:00.100Z#p1"
    assert later[2]["Put"]["Item"]["SK"] == "2024-05-01T10:00:00.900Z#p1"
    earlier = compartment_touch(WS, "p1", event_time="2024-05-01T10:00:00.050Z", previous=previous)
    assert len(earlier) == 1 and earlier[0]["Put"]["Item"]["last_event_at"] == "2024-05-01T10:00:00.100Z"


def test_a_deleted_patient_leaves_the_last_event_lists_until_it_is_written_again():
    previous = {**touch_key(WS, "p1"), "last_event_at": "2024-05-01T10:00:00.000Z", "event_count": 3, "e": "e1", "src": "ehr"}
    gone = compartment_touch(WS, "p1", event_time="2024-05-02T00:00:00Z", previous=previous, source="ehr", deleted=True)
    touch = gone[0]["Put"]["Item"]
    assert touch["deleted"] is True and touch["event_count"] == 4 and gone[0]["Put"]["ExpressionAttributeValues"] == {":prev_count": 3}
    assert not any("Put" in op for op in gone[1:])
    removed = {(op["Delete"]["Key"]["PK"].split("#")[4], op["Delete"]["Key"]["SK"]) for op in gone[1:]}
    assert removed == {("sort.last_event_at", "2024-05-01T10:00:00.000Z#p1"), ("sort.last_event_at.src.ehr", "2024-05-01T10:00:00.000Z#p1")}
    # another resource of the deleted patient: counted on the touch item, listed nowhere
    later = compartment_touch(WS, "p1", event_time="2024-05-03T00:00:00Z", previous=touch)
    assert len(later) == 1 and later[0]["Put"]["Item"]["deleted"] is True and later[0]["Put"]["Item"]["event_count"] == 5
    # the Patient written again: listed again, nothing left to delete
    back = compartment_touch(WS, "p1", event_time="2024-05-04T00:00:00Z", previous=later[0]["Put"]["Item"], source="ehr")
    assert "deleted" not in back[0]["Put"]["Item"] and not any("Delete" in op for op in back)
    put = {(op["Put"]["Item"]["PK"].split("#")[4], op["Put"]["Item"]["SK"]) for op in back[1:]}
    assert put == {("sort.last_event_at", "2024-05-04T00:00:00.000Z#p1"), ("sort.last_event_at.src.ehr", "2024-05-04T00:00:00.000Z#p1")}


def test_a_touch_item_from_before_milliseconds_moves_to_the_new_key_format():
    """Touch items written by index version 2 hold ``…:SSZ``: the next touch deletes that sort
    entry by its stored key and writes the millisecond one, even when the time does not move."""
    previous = {**touch_key(WS, "p1"), "last_event_at": "2024-05-01T10:00:00Z", "event_count": 3, "src": "ehr"}
    ops = compartment_touch(WS, "p1", event_time="2024-04-01T00:00:00Z", previous=previous)
    assert ops[0]["Put"]["Item"]["last_event_at"] == "2024-05-01T10:00:00.000Z"
    deleted = {(op["Delete"]["Key"]["PK"].split("#")[4], op["Delete"]["Key"]["SK"]) for op in ops[1:] if "Delete" in op}
    put = {(op["Put"]["Item"]["PK"].split("#")[4], op["Put"]["Item"]["SK"]) for op in ops[1:] if "Put" in op}
    assert deleted == {("sort.last_event_at", "2024-05-01T10:00:00Z#p1"), ("sort.last_event_at.src.ehr", "2024-05-01T10:00:00Z#p1")}
    assert put == {("sort.last_event_at", "2024-05-01T10:00:00.000Z#p1"), ("sort.last_event_at.src.ehr", "2024-05-01T10:00:00.000Z#p1")}
    # within the old item's second, a later event wins (compared as times, not as "Z" > ".")
    ops = compartment_touch(WS, "p1", event_time="2024-05-01T10:00:00.500Z", previous=previous)
    assert ops[0]["Put"]["Item"]["last_event_at"] == "2024-05-01T10:00:00.500Z"
    forget = compartment_forget(WS, "p1", previous)
    assert forget[1]["SK"] == "2024-05-01T10:00:00Z#p1"  # deleted by the key it was stored under


# --- planning --------------------------------------------------------------------------------


def test_plan_prefers_exact_unsharded_partitions():
    p = plan(WS, parse_search("Observation", {"status": "final", "subject": "Patient/1", "date": "ge2020"}))
    assert p.driver.param.name == "subject"
    assert [q.pk for q in p.queries] == [f"WS#{WS}#IX#Observation#subject#0#1"]
    assert [c.param.name for c in p.residual] == ["status", "date"]


def test_plan_uses_patient_code_composite():
    p = plan(
        WS, parse_search("Observation", {"patient": "Patient/1", "code": "http://loinc.org|8302-2", "status": "final"})
    )
    assert [q.pk for q in p.queries] == [f"WS#{WS}#IX#Observation#patient+code#0#1|8302-2"]
    assert [c.param.name for c in p.residual] == ["status"]


def test_plan_for_hot_values_queries_every_shard():
    p = plan(WS, parse_search("Observation", {"status": "final"}))
    assert [q.pk for q in p.queries] == [f"WS#{WS}#IX#Observation#status#{s}#final" for s in range(8)]


def test_plan_for_string_prefix_and_truncation():
    p = plan(WS, parse_search("Patient", {"name": "Ál"}))
    assert {(q.op, q.values) for q in p.queries} == {("begins_with", ("al",))}
    assert len(p.queries) == 8 and p.residual == ()
    long = plan(WS, parse_search("Patient", {"name": "x" * 80}))
    assert long.queries[0].values == ("x" * 64,) and long.residual[0].param.name == "name"


def test_plan_for_dates():
    eq = plan(WS, parse_search("Patient", {"birthdate": "1974"}))
    assert {(q.op, q.values) for q in eq.queries} == {("between", ("1974-01-01T00:00:00.000Z", "1975-01-01T00:00:00.000Z"))}
    gt = plan(WS, parse_search("Patient", {"birthdate": "gt1974"}))
    assert {(q.pk.split("#")[4], q.op, q.values) for q in gt.queries} == {
        ("birthdate", ">=", ("1974-12-31T00:00:00.000Z",)),
        ("birthdate.hi", ">=", ("1975-01-01T00:00:00.000Z",)),
    }
    ne = plan(WS, parse_search("Patient", {"birthdate": "ne1974"}))
    assert ne.notes == ("type-list",) and ne.forward is False


def test_plan_without_criteria_lists_the_type_newest_first():
    p = plan(WS, parse_search("Encounter", {}))
    assert [q.pk for q in p.queries] == [f"WS#{WS}#IX#Encounter#_lastUpdated#{s}" for s in range(8)]
    assert p.forward is False and p.driver is None


def test_plan_for_id_reads_resources_directly():
    p = plan(WS, parse_search("Patient", {"_id": "a,b", "gender": "male"}))
    assert p.ids == ("a", "b") and p.queries == () and p.residual[0].param.name == "gender"


# --- the index answers exactly what the matcher says -----------------------------------------


def _sk_ok(op: str, values: tuple, sk: str) -> bool:
    if op == "all":
        return True
    if op == "begins_with":
        return sk.startswith(values[0])
    if op == "between":
        return values[0] <= sk <= values[1]
    if op == "<":
        return sk < values[0]
    if op == ">=":
        return sk >= values[0]
    raise AssertionError(op)


class InMemoryIndex:
    """What DynamoDB would answer for a plan, over index items kept in memory."""

    def __init__(self, resources: list[dict]):
        self.by_pk: dict[str, list[dict]] = defaultdict(list)
        self.resources: dict[tuple[str, str], dict] = {}
        for i, r in enumerate(resources):
            lu = f"2024-05-{1 + i % 28:02d}T{i % 24:02d}:00:00Z"
            r.setdefault("meta", {})["lastUpdated"] = lu
            self.resources[(r["resourceType"], r["id"])] = r
            for it in items_for(r, last_updated=lu):
                self.by_pk[it["PK"]].append(it)

    def search(self, resource_type: str, params: dict) -> list[str]:
        p = plan(WS, parse_search(resource_type, params))
        if p.ids is not None:
            hits = [self.resources.get((resource_type, i)) for i in p.ids]
            return [r["id"] for r in hits if r and matches(p.residual, r)]
        streams = [
            sorted(
                (it for it in self.by_pk.get(q.pk, []) if _sk_ok(q.op, q.values, it["SK"])),
                key=lambda it: it["SK"],
                reverse=not p.forward,
            )
            for q in p.queries
        ]
        out, seen = [], set()
        for it in heapq.merge(*streams, key=lambda it: it["SK"], reverse=not p.forward):
            if it["id"] in seen or not p.accepts(it):
                continue
            seen.add(it["id"])
            r = self.resources[(resource_type, it["id"])]
            if matches(p.residual, r):
                out.append(it["id"])
        return out

    def brute_force(self, resource_type: str, params: dict) -> set[str]:
        criteria = parse_search(resource_type, params).criteria
        return {rid for (t, rid), r in self.resources.items() if t == resource_type and matches(criteria, r)}


@pytest.fixture(scope="module")
def corpus() -> InMemoryIndex:
    return InMemoryIndex(all_hl7_resources() + bundle_resources(SYNTHEA_SMALL) + bundle_resources(SYNTHEA_HIV))


QUERIES = [
    ("Patient", {"name": "pet"}),
    ("Patient", {"name": "chalmers"}),
    ("Patient", {"family": "hoeg"}),
    ("Patient", {"given": "bob"}),
    ("Patient", {"name": "du march"}),
    ("Patient", {"name": "marche"}),
    ("Patient", {"family:exact": "Chalmers"}),
    ("Patient", {"q": "peter chal"}),
    ("Patient", {"q": "keel"}),
    ("Patient", {"gender": "female"}),
    ("Patient", {"gender": "male", "birthdate": "ge1980"}),
    ("Patient", {"birthdate": "1974"}),
    ("Patient", {"birthdate": "1974-12-25"}),
    ("Patient", {"birthdate": "lt1950"}),
    ("Patient", {"birthdate": "le1974"}),
    ("Patient", {"birthdate": "gt2000"}),
    ("Patient", {"birthdate": "sa1988-03-16"}),
    ("Patient", {"birthdate": "eb1988"}),
    ("Patient", {"birthdate": "ne1974"}),
    ("Patient", {"birthdate": "ge1974-12-25"}),
    ("Patient", {"identifier": "12345"}),
    ("Patient", {"identifier": "urn:oid:1.2.36.146.595.217.0.1|12345"}),
    ("Patient", {"identifier": "|12345"}),
    ("Patient", {"mrn": "ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423"}),
    ("Patient", {"phone": "555-866-2259"}),
    ("Patient", {"phone": "+1 (555) 866 2259"}),
    ("Patient", {"organization": "Organization/1"}),
    ("Patient", {"address-city": "amh"}),
    ("Patient", {"_id": "example,pat1"}),
    ("Patient", {"_lastUpdated": "ge2024-05-10"}),
    ("Patient", {"active": "true", "gender": "male"}),
    ("Patient", {"gender:not": "male"}),
    ("Practitioner", {"name": "care"}),
    ("Practitioner", {"identifier": "http://www.acme.org/practitioners|23"}),
    ("Organization", {"name": "health level"}),
    ("Organization", {"phone": "734 677 7777"}),
    ("Location", {"name": "south"}),
    ("Location", {"status": "active"}),
    ("Observation", {"code": "29463-7"}),
    ("Observation", {"code": "http://loinc.org|8302-2"}),
    ("Observation", {"patient": "Patient/example"}),
    ("Observation", {"patient": "example", "status": "final"}),
    ("Observation", {"subject": "Patient/e4531916-b162-4f4b-90c2-ce37e132b8d4", "code": "8302-2"}),
    ("Observation", {"patient": "e4531916-b162-4f4b-90c2-ce37e132b8d4", "code": "8302-2,29463-7", "date": "ge2015"}),
    ("Observation", {"date": "2016"}),
    ("Observation", {"date": "gt2016-06"}),
    ("Observation", {"date": "eb2000"}),
    ("Observation", {"date": "ge2013-12-11", "category": "vital-signs"}),
    ("Observation", {"q": "body"}),
    ("Observation", {"status": "final,amended"}),
    ("Observation", {"category": "laboratory"}),
    ("Observation", {"code": "http://loinc.org|"}),
    ("Observation", {"status:not": "final"}),
    ("Encounter", {"date": "1994-09-02"}),
    ("Encounter", {"date": "ge2010", "class": "AMB"}),
    ("Encounter", {"patient": "Patient/e4531916-b162-4f4b-90c2-ce37e132b8d4"}),
    ("Encounter", {"status": "finished"}),
    ("Encounter", {"practitioner": "34ef92a2-f1a5-4324-b274-4ccf96f9f2d1"}),
    ("Encounter", {"date": "sa2015"}),
    ("Condition", {"status": "active"}),
    ("Condition", {"code": "40055000"}),
    ("Condition", {"date": "lt2000"}),
    ("Condition", {"onset-date": "ge1994-09-02"}),
    ("Condition", {"q": "sinusitis"}),
    ("AllergyIntolerance", {"status": "active", "patient": "example"}),
    ("AllergyIntolerance", {"onset": "2004"}),
    ("Immunization", {"code": "FLUVAX"}),
    ("Immunization", {"date": "2013-01-10"}),
    ("MedicationRequest", {"status": "active"}),
    ("MedicationRequest", {"authoredon": "2015-01"}),
    ("MedicationRequest", {"q": "amox"}),
    ("Procedure", {"date": "gt2016"}),
    ("DiagnosticReport", {"code": "58410-2"}),
    ("Appointment", {"practitioner": "Practitioner/example"}),
    ("Appointment", {"date": "2013-12-10"}),
    ("Slot", {"status": "busy"}),
    ("Slot", {"schedule": "Schedule/example"}),
    ("Schedule", {"location": "1"}),
    ("Coverage", {"patient": "4"}),
    ("Coverage", {"date": "2012"}),
    ("Coverage", {"date": "gt2012-01"}),
    ("Coverage", {"date": "eb2012-06"}),
    ("Coverage", {"date": "ge2011-05-23"}),
    ("Claim", {"patient": "e4531916-b162-4f4b-90c2-ce37e132b8d4", "date": "ge2010"}),
    ("ExplanationOfBenefit", {"date": "lt2000"}),
    ("CarePlan", {"date": "ge2016"}),
    ("Goal", {"status": "on-hold"}),
    ("DocumentReference", {"date": "2005"}),
    ("DocumentReference", {"patient": "xcda"}),
    ("ImagingStudy", {"status": "available"}),
    ("Encounter", {}),
    ("Patient", {"_count": "5"}),
    # search values finer than the stored ones: a stored day straddles the searched minute
    ("Patient", {"birthdate": "gt1974-12-25T10:00"}),
    ("Patient", {"birthdate": "ge1974-12-25T10:00"}),
    ("Patient", {"birthdate": "eb1974-12-26T00:00"}),
    ("Observation", {"date": "ge2016-03-28T12:00"}),
    ("Observation", {"date": "gt2016-03-28T12:00:00Z"}),
    ("Coverage", {"date": "eb2012-05-24T00:00"}),
    ("Coverage", {"date": "gt2012-05-23T12:00"}),
]


@pytest.mark.parametrize(("resource_type", "params"), QUERIES, ids=[f"{t}?{p}" for t, p in QUERIES])
def test_index_plan_finds_exactly_the_matching_resources(corpus, resource_type, params):
    got = corpus.search(resource_type, params)
    assert len(got) == len(set(got)), "duplicates"
    assert set(got) == corpus.brute_force(resource_type, params)


def test_the_consistency_corpus_is_not_vacuous(corpus):
    non_empty = sum(bool(corpus.brute_force(t, p)) for t, p in QUERIES)
    assert non_empty >= len(QUERIES) - 8
    assert len(corpus.brute_force("Observation", {"patient": "e4531916-b162-4f4b-90c2-ce37e132b8d4"})) == 33


def test_date_values_sharing_a_key_give_one_item() -> None:
    """An Observation whose effective second and issued millisecond start at the same instant: one
    index item per key (a transaction may not write one item twice), with the wider range."""
    from fhir_platform.search.indexing import index_items

    obs = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "x"},
        "effectiveDateTime": "2018-05-23T00:46:35-04:00",
        "issued": "2018-05-23T00:46:35.000-04:00",
        "effectivePeriod": None,
    }
    obs.pop("effectivePeriod")
    items = index_items("ws", "Observation", "o1", obs, entity_id=None, last_updated="2026-01-01T00:00:00.000Z", created_at="2026-01-01T00:00:00.000Z")
    keys = [(i["PK"], i["SK"]) for i in items]
    assert len(keys) == len(set(keys))
    dates = [i for i in items if "#date#" in i["PK"] and not i["PK"].split("#")[-2].endswith(".hi")]
    assert dates and all(i["hi"] == "2018-05-23T04:46:36.000Z" for i in dates if i["lo"] == "2018-05-23T04:46:35.000Z")
