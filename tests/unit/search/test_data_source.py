"""``data_source_id`` is indexed: a source's own lists (``src.{source}``, and for Patients
``sort.last_event_at.src.{source}``) and a ``src`` attribute on every family item, so scoping a
list to a source never reads events and follows the current version's source."""

from collections import Counter

from fhir_platform.search.executor import search_patients, search_resources
from fhir_platform.search.indexing import KEEP, compartment_touch, index_items, source_sort_family
from fhir_platform.search.query import SearchQuery, parse_patient_search, parse_search

from .search_testdata import WS, obs, write

EHR, LAB = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"


def patient(pid: str, family: str) -> dict:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": family, "given": ["Ann"]}],
            "identifier": [{"type": {"coding": [{"code": "MR"}]}, "system": "urn:mrn", "value": f"mrn-{pid}"}]}


def ids(page) -> list[str]:
    return [e["resource"]["id"] for e in page.entries]


def test_index_items_carry_the_source():
    kwargs = dict(entity_id="e1", last_updated="2024-01-01T00:00:00Z", created_at="2024-01-01T00:00:00Z")
    scoped = index_items(WS, "Patient", "p1", patient("p1", "Lee"), data_source_id=EHR, **kwargs)
    plain = index_items(WS, "Patient", "p1", patient("p1", "Lee"), **kwargs)
    assert [it for it in scoped if f"#src.{EHR}#" in it["PK"]] != []
    assert not any("src" in it or "#src." in it["PK"] for it in plain)
    family_items = [it for it in scoped if "#IX#Patient#" in it["PK"] and "_lastUpdated" not in it["PK"]
                    and "#sort." not in it["PK"]]
    assert family_items and all(it["src"] == EHR for it in family_items)
    assert len(scoped) == len(plain) + 1  # the one src.{source} item


def test_source_lists_follow_the_current_version(table):
    write(table, {"resourceType": "Organization", "id": "o1", "name": "Acme Clinic"}, "2024-01-01T00:00:00Z", source=EHR)
    write(table, {"resourceType": "Organization", "id": "o2", "name": "Acme Labs"}, "2024-01-02T00:00:00Z", source=LAB)
    write(table, {"resourceType": "Organization", "id": "o3", "name": "Acme Home"}, "2024-01-03T00:00:00Z", source=EHR)
    write(table, {"resourceType": "Organization", "id": "o4", "name": "Acme API"}, "2024-01-04T00:00:00Z")

    def scoped(params: dict, source: str) -> list[str]:
        return ids(search_resources(table, WS, parse_search("Organization", params), source=source, exact_total=True))

    assert scoped({}, EHR) == ["o3", "o1"]  # newest first, like the unscoped list
    assert scoped({}, LAB) == ["o2"]
    assert scoped({"q": "acme"}, EHR) == ["o1", "o3"]  # q + source: decided on the q items
    assert scoped({"_id": "o1,o2"}, LAB) == ["o2"]  # _id + source: the current version's attribute
    assert scoped({"name": "acme", "_count": "1"}, EHR) == ["o1"]
    # o1 rewritten from the lab: it leaves the EHR's lists and joins the lab's
    write(table, {"resourceType": "Organization", "id": "o1", "name": "Acme Clinic"}, "2024-01-05T00:00:00Z", source=LAB)
    assert scoped({}, EHR) == ["o3"] and scoped({}, LAB) == ["o1", "o2"]
    assert scoped({"q": "clinic"}, EHR) == [] and scoped({"q": "clinic"}, LAB) == ["o1"]
    page = search_resources(table, WS, SearchQuery("Organization", (), 20), source=EHR)
    assert Counter(page.calls) == Counter({"Query": 8, "BatchGetItem": 1})  # no event reads


def test_patient_touch_keeps_a_per_source_last_event_list():
    ops = compartment_touch(WS, "p1", event_time="2024-01-01T00:00:00Z", previous=None, source=EHR)
    touch = ops[0]["Put"]["Item"]
    assert touch["src"] == EHR
    src_puts = [op["Put"]["Item"] for op in ops if "Put" in op and source_sort_family(EHR) in op["Put"]["Item"]["PK"]]
    assert [it["SK"] for it in src_puts] == ["2024-01-01T00:00:00.000Z#p1"]
    # another resource of the patient: the source stays, the entry moves with the time
    later = compartment_touch(WS, "p1", event_time="2024-01-02T00:00:00Z", previous=touch, source=KEEP)
    assert later[0]["Put"]["Item"]["src"] == EHR
    moved = [op for op in later if source_sort_family(EHR) in str(op)]
    assert [next(iter(op)) for op in moved] == ["Delete", "Put"]
    # the Patient rewritten without a source: it leaves the source's list, and nothing else joins
    gone = compartment_touch(WS, "p1", event_time="2024-01-02T00:00:00Z", previous=later[0]["Put"]["Item"], source=None)
    assert "src" not in gone[0]["Put"]["Item"]
    assert [next(iter(op)) for op in gone if ".src." in str(op)] == ["Delete"]


def test_patient_lists_scoped_to_a_source(table):
    write(table, patient("p1", "Lee"), "2024-01-01T00:00:00Z", source=EHR)
    write(table, patient("p2", "Lee"), "2024-01-02T00:00:00Z", source=LAB)
    write(table, patient("p3", "Lee"), "2024-01-03T00:00:00Z", source=EHR)
    write(table, patient("p4", "Kim"), "2024-01-04T00:00:00Z")
    write(table, obs(1, patient="p1"), "2024-01-05T00:00:00Z")  # p1 becomes the most recent

    def listed(params: dict, source: str | None, total: int | None = None) -> tuple[list[str], int]:
        page = search_patients(table, WS, parse_patient_search(params), source=source, total_patients=total)
        return [r["resource"]["id"] for r in page.rows], page.total

    assert listed({}, EHR, total=2) == (["p1", "p3"], 2)  # -last_event_at by default
    assert listed({"q": "lee"}, LAB) == (["p2"], 1)
    assert listed({"q": "lee", "sort_by": "name"}, EHR) == (["p1", "p3"], 2)
    assert listed({"mrn": "mrn-p3"}, EHR) == (["p3"], 1) and listed({"mrn": "mrn-p3"}, LAB) == ([], 0)
    assert listed({"sort_by": "+created_at"}, EHR) == (["p1", "p3"], 2)
    write(table, patient("p3", "Lee"), "2024-01-06T00:00:00Z", source=LAB)  # now the lab's
    assert listed({}, EHR, total=1) == (["p1"], 1)
    assert listed({}, LAB, total=2) == (["p3", "p2"], 2)
    assert listed({"q": "lee"}, None)[1] == 3
