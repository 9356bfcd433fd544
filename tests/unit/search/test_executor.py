"""The executor against moto's DynamoDB: writes go through the same diff + transaction the write
path will use, searches page through real Query/BatchGetItem responses."""

import json

import pytest
from botocore.exceptions import ClientError
from fhir_platform.search import executor
from fhir_platform.search.executor import SearchTooBroad, search_patients, search_resources
from fhir_platform.search.indexing import compartment_touch, index_items, touch_key
from fhir_platform.search.query import parse_patient_search, parse_search
from fhir_platform.storage.keys import CURRENT_SK, resource_pk

from .search_testdata import SYNTHEA_SMALL, WS, bulk_load, bundle_resources, current_item, hl7, obs, write


def ids(page) -> list[str]:
    return [e["resource"]["id"] for e in page.entries]


def search(table, resource_type, params, **kw):
    return search_resources(table, WS, parse_search(resource_type, params), **kw)


# --- read-your-writes, updates ---------------------------------------------------------------


def test_search_sees_writes_and_updates_move_index_entries(table):
    write(table, obs(1, status="preliminary"), "2024-02-01T10:00:00Z")
    assert ids(search(table, "Observation", {"status": "preliminary"})) == ["obs-0001"]
    write(table, obs(1, status="final", code="29463-7"), "2024-02-01T10:05:00Z")
    assert ids(search(table, "Observation", {"status": "preliminary"})) == []
    assert ids(search(table, "Observation", {"status": "final"})) == ["obs-0001"]
    assert ids(search(table, "Observation", {"code": "8302-2"})) == []
    assert ids(search(table, "Observation", {"patient": "p1", "code": "http://loinc.org|29463-7"})) == ["obs-0001"]
    assert ids(search(table, "Observation", {"_lastUpdated": "2024-02-01T10:05"})) == ["obs-0001"]
    assert ids(search(table, "Observation", {"_lastUpdated": "2024-02-01T10:00"})) == []
    # no stale index items left behind: every IX item for this resource is one the new version needs
    current = json.loads(
        table.get_item(Key={"PK": resource_pk(WS, "Observation", "obs-0001"), "SK": CURRENT_SK})["Item"]["data"]
    )
    wanted = {
        (i["PK"], i["SK"])
        for i in index_items(
            WS,
            "Observation",
            "obs-0001",
            current,
            entity_id="e-1",
            last_updated="2024-02-01T10:05:00Z",
            created_at="2024-02-01T10:00:00Z",
        )
        if "#IX#Observation#" in i["PK"]  # (the patient's timeline items are checked in test_timeline.py)
    }
    stored = {(i["PK"], i["SK"]) for i in table.scan()["Items"] if "#IX#Observation#" in i["PK"]}
    assert stored == wanted


def test_fhir_examples_round_trip(table):
    for name in [
        "Patient-example",
        "Observation-example",
        "Condition-example",
        "AllergyIntolerance-example",
        "Appointment-example",
        "Coverage-9876B1",
        "Encounter-example",
    ]:
        r = hl7(name)
        write(table, r, "2024-03-01T00:00:00Z")
    assert ids(search(table, "Patient", {"name": "chalm", "birthdate": "1974"})) == ["example"]
    assert ids(search(table, "Patient", {"phone": "(03) 5555 6473"})) == ["example"]
    assert ids(search(table, "Observation", {"subject:Patient": "example", "date": "ge2016-03"})) == ["example"]
    assert ids(search(table, "Condition", {"status": "active", "code": "39065001"})) == ["example"]
    assert ids(search(table, "AllergyIntolerance", {"patient": "Patient/example", "q": "cashew"})) == ["example"]
    assert ids(search(table, "Appointment", {"practitioner": "example", "date": "2013-12-10"})) == ["example"]
    assert ids(search(table, "Coverage", {"patient": "4", "status": "active"})) == ["9876B1"]
    assert ids(search(table, "Encounter", {"class": "http://terminology.hl7.org/CodeSystem/v3-ActCode|IMP"})) == [
        "example"
    ]
    assert ids(search(table, "Patient", {"_id": "example,missing"})) == ["example"]
    # patient view facts for the example patient: active condition + allergy, under one partition
    facts = table.query(
        KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": f"WS#{WS}#IX#@patient#example"}
    )
    assert sorted((i["SK"], i.get("d")) for i in facts["Items"]) == [
        ("F#allergy#AllergyIntolerance#example", "Cashew nuts"),
        ("F#condition#Condition#example", "Burnt Ear"),
        ("LAST_EVENT", None),
    ]


def test_synthea_patient_bundle(table):
    resources = bundle_resources(SYNTHEA_SMALL)
    bulk_load(table, resources)
    pid = resources[0]["id"]
    everything = search(table, "Observation", {"patient": pid, "_count": "100"})
    assert len(everything.entries) == 33 and everything.total == 33 and not everything.has_more
    heights = search(table, "Observation", {"patient": f"Patient/{pid}", "code": "http://loinc.org|8302-2"})
    expected = sorted(
        r["id"] for r in resources if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "8302-2"
    )
    assert ids(heights) == expected and len(expected) == 3
    assert heights.calls == {"Query": 1, "BatchGetItem": 1}  # the patient+code partition
    assert ids(search(table, "Patient", {"family": "HOEG", "gender": "male"})) == [pid]
    assert search(table, "Encounter", {"date": "ge2010", "patient": pid}).total == 5
    sinus = sorted(
        r["id"] for r in resources if r["resourceType"] == "Condition" and "sinusitis" in r["code"]["text"].lower()
    )
    assert sorted(ids(search(table, "Condition", {"q": "sinus"}))) == sinus and len(sinus) == 3


def test_a_typed_reference_reads_the_untyped_family_and_keeps_only_its_types(table):
    """``patient`` has no index items of its own (index version 5): it reads ``subject``'s, whose
    ``rt`` says which types referenced the id; ids only a typed parameter would index (beyond the
    untyped family's per-resource cap) are indexed too."""
    group = dict(obs(1), subject={"reference": "Group/x1"})
    patient = dict(obs(2), subject={"reference": "Patient/x1"})
    untyped = dict(obs(3), subject={"reference": "urn:uuid:x1"})
    many = {  # 12 Group performers first: a typed ``practitioner`` id is the 13th value of ``performer``
        **obs(4),
        "performer": [{"reference": f"Group/g{i}"} for i in range(12)] + [{"reference": "Practitioner/dr1"}],
    }
    for r in (group, patient, untyped, many):
        write(table, r, "2024-02-01T10:00:00Z")
    assert sorted(ids(search(table, "Observation", {"subject": "x1"}))) == ["obs-0001", "obs-0002", "obs-0003"]
    assert sorted(ids(search(table, "Observation", {"patient": "x1"}))) == ["obs-0002", "obs-0003"]
    assert sorted(ids(search(table, "Observation", {"patient": "Patient/x1"}))) == ["obs-0002", "obs-0003"]
    # an untyped reference (urn) matches any type, as before
    assert sorted(ids(search(table, "Observation", {"subject": "Group/x1"}))) == ["obs-0001", "obs-0003"]
    assert ids(search(table, "Observation", {"practitioner": "dr1"})) == ["obs-0004"]
    assert ids(search(table, "Observation", {"performer": "dr1"})) == ["obs-0004"]  # the same item (before: beyond the cap)
    assert not any("#IX#Observation#patient#" in i["PK"] for i in table.scan()["Items"])


# --- paging ----------------------------------------------------------------------------------


def test_offset_paging_walks_past_one_megabyte_query_pages(table, monkeypatch):
    monkeypatch.setattr(executor, "NEXT_PAGE_LIMIT", 100_000)  # let DynamoDB's 1 MB cap end the pages
    n, long_id = 5000, "x" * 58  # 64-character ids: ~250-byte index items, > 1 MB in one partition
    resources = [dict(obs(i), id=f"{long_id}-{i:05d}") for i in range(n)]
    with table.batch_writer() as bw:  # the index for all, the resources only for the page we ask for
        for r in resources:
            for it in index_items(
                WS,
                "Observation",
                r["id"],
                r,
                entity_id=None,
                last_updated="2024-01-01T00:00:00Z",
                created_at="2024-01-01T00:00:00Z",
            ):
                if "#subject#" in it["PK"]:  # ``patient`` reads the ``subject`` family's items
                    bw.put_item(Item=it)
        for r in resources[-20:]:
            bw.put_item(Item=current_item(r, "2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z", None))
    part = table.query(
        KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": f"WS#{WS}#IX#Observation#subject#0#p1"}
    )
    assert "LastEvaluatedKey" in part and part["Count"] < n  # one Query page cannot hold the partition
    page = search(table, "Observation", {"patient": "p1", "_offset": str(n - 10), "_count": "20"})
    assert ids(page) == [f"{long_id}-{i:05d}" for i in range(n - 10, n)]
    assert page.total == n and not page.has_more and page.next_offset is None
    assert page.calls["Query"] >= 3 and page.calls["BatchGetItem"] == 1  # skipped ids are never fetched
    page = search(table, "Observation", {"patient": "p1", "_offset": str(n - 20), "_count": "10"})
    assert len(page.entries) == 10 and page.has_more and page.next_offset == n - 10 and page.total is None


def test_hot_value_is_write_sharded_and_pages_merge_in_order(table):
    resources = [obs(i, patient=f"p{i % 7}") for i in range(400)]
    bulk_load(table, resources)
    per_shard = [
        table.query(
            KeyConditionExpression="PK = :pk",
            Select="COUNT",
            ExpressionAttributeValues={":pk": f"WS#{WS}#IX#Observation#status#{s}#final"},
        )["Count"]
        for s in range(8)
    ]
    assert sum(per_shard) == 400 and max(per_shard) < 80 and min(per_shard) > 20  # one hot value, 8 partitions
    seen = []
    offset = 0
    while True:
        page = search(table, "Observation", {"status": "final", "_count": "100", "_offset": str(offset)})
        assert page.calls["Query"] >= 8
        seen += ids(page)
        if not page.has_more:
            break
        offset = page.next_offset
    assert seen == sorted(r["id"] for r in resources)  # merged by SK across shards, no duplicates or gaps
    assert page.total == 400


def test_type_list_is_newest_first_with_counter_total(table):
    bulk_load(table, [obs(i) for i in range(30)])
    page = search(table, "Observation", {"_count": "5"}, known_total=30)
    assert ids(page) == ["obs-0029", "obs-0028", "obs-0027", "obs-0026", "obs-0025"]
    assert page.total == 30 and page.has_more


def test_residual_filters_and_budget(table, monkeypatch):
    bulk_load(table, [obs(i, status="final" if i % 10 else "amended") for i in range(300)])
    page = search(table, "Observation", {"patient": "p1", "status": "amended", "_count": "100"})
    assert ids(page) == [f"obs-{i:04d}" for i in range(0, 300, 10)] and page.total == 30
    monkeypatch.setattr(executor, "MAX_EXAMINED", 150)
    with pytest.raises(SearchTooBroad):
        search(table, "Observation", {"patient": "p1", "status": "amended", "_count": "100"})


def test_calls_per_search_do_not_grow_with_the_workspace(table):
    def calls():
        return dict(search(table, "Observation", {"identifier": "needle"}).calls)

    target = dict(obs(9999), identifier=[{"system": "s", "value": "needle"}])
    bulk_load(table, [target])
    small = calls()
    bulk_load(table, [obs(i) for i in range(500)])
    assert calls() == small == {"Query": 1, "BatchGetItem": 1}


# --- GET /fhir/patients ----------------------------------------------------------------------

PEOPLE = [
    ("p-alvarez", "Álvarez", ["José"], "(555) 010-0012", "MRN-001", "2024-01-03T00:00:00Z"),
    ("p-smith", "Smith", ["Ann", "Marie"], "+1 555-010-0013", "MRN-002", "2024-01-01T00:00:00Z"),
    ("p-smythe", "Smythe", ["Bob"], "555.010.0014", "MRN-003", "2024-01-05T00:00:00Z"),
    ("p-annan", "Annan", ["Kofi"], "5550100015", "MRN-004", "2024-01-02T00:00:00Z"),
    ("p-oh", "O'Hara", ["Ann"], "1-555-010-0016", "MRN-005", "2024-01-04T00:00:00Z"),
]


def person(pid, family, given, phone, mrn):
    return {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"use": "official", "family": family, "given": given}],
        "telecom": [{"system": "phone", "value": phone}],
        "identifier": [
            {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                "system": "urn:mrn",
                "value": mrn,
            }
        ],
    }


@pytest.fixture
def people(table):
    for pid, family, given, phone, mrn, created in PEOPLE:
        write(table, person(pid, family, given, phone, mrn), created, entity=f"ent-{pid}")
    return table


def patients(table, **params):
    return search_patients(table, WS, parse_patient_search({k: str(v) for k, v in params.items()}))


def pids(page) -> list[str]:
    return [r["resource"]["id"] for r in page.rows]


def test_patient_list_sorts(people):
    assert pids(patients(people, sort_by="name")) == ["p-alvarez", "p-annan", "p-oh", "p-smith", "p-smythe"]
    assert pids(patients(people, sort_by="-name"))[0] == "p-smythe"
    assert pids(patients(people, sort_by="+created_at")) == ["p-smith", "p-annan", "p-alvarez", "p-oh", "p-smythe"]
    assert pids(patients(people, sort_by="-created_at"))[0] == "p-smythe"
    page = patients(people)  # default -last_event_at: the patients' own writes so far
    assert pids(page)[0] == "p-smythe" and page.total == 5


def test_last_event_at_moves_with_the_compartment(people):
    write(people, obs(1, patient="p-annan"), "2024-02-01T00:00:00Z")
    page = patients(people, sort_by="-last_event_at", limit=2)
    assert pids(page) == ["p-annan", "p-smythe"]
    assert page.rows[0]["last_event_at"] == "2024-02-01T00:00:00.000Z" and page.rows[0]["event_count"] == 2
    assert page.has_more and page.next_offset == 2 and page.total == 5
    write(people, obs(2, patient="p-alvarez"), "2024-02-02T00:00:00Z")
    assert pids(patients(people, sort_by="-last_event_at", limit=2)) == ["p-alvarez", "p-annan"]
    assert pids(patients(people, sort_by="last_event_at"))[-2:] == ["p-annan", "p-alvarez"]
    # exactly one sort entry per patient
    entries = [i for i in people.scan()["Items"] if "#sort.last_event_at#" in i["PK"]]
    assert sorted(i["id"] for i in entries) == sorted(p[0] for p in PEOPLE)


def test_patient_q_mrn_and_phone(people):
    assert pids(patients(people, q="alva")) == ["p-alvarez"]
    assert pids(patients(people, q="JOSE ÁLV")) == ["p-alvarez"]
    assert pids(patients(people, q="ann", sort_by="name")) == ["p-annan", "p-oh", "p-smith"]  # any part of the name
    assert pids(patients(people, q="ann smi")) == ["p-smith"]
    assert pids(patients(people, q="ohara")) == ["p-oh"]
    assert pids(patients(people, q="sm", sort_by="-name")) == ["p-smythe", "p-smith"]
    assert pids(patients(people, q="MRN-003")) == ["p-smythe"]
    assert pids(patients(people, q="ent-p-annan")) == ["p-annan"]
    assert pids(patients(people, q="(555) 010-0016")) == ["p-oh"]
    assert pids(patients(people, mrn="mrn-002")) == ["p-smith"]
    assert pids(patients(people, mrn="MRN-00")) == []  # exact
    for fmt in ["(555) 010-0012", "+1 555-010-0012", "5550100012", "1-555-010-0012"]:
        assert pids(patients(people, phone=fmt)) == ["p-alvarez"], fmt
    both = patients(people, q="smith", phone="555 010 0013")
    assert pids(both) == ["p-smith"] and both.total == 1
    assert pids(patients(people, q="smith", phone="5550100012")) == []
    # one partition serving two filters (q by phone digits and phone) counts for both
    assert pids(patients(people, q="5550100016", phone="(555) 010-0016")) == ["p-oh"]
    paged = patients(people, q="a", sort_by="name", limit=2, offset=1)  # alvarez, annan, ohara ann, smith ann
    assert pids(paged) == ["p-annan", "p-oh"] and paged.total == 4 and paged.has_more and paged.next_offset == 3


def test_patient_name_change_updates_every_family(people):
    write(
        people,
        person("p-smith", "Jones", ["Ann"], "555-010-0013", "MRN-002"),
        "2024-03-01T00:00:00Z",
        entity="ent-p-smith",
    )
    assert pids(patients(people, q="smith")) == []
    assert pids(patients(people, q="jones")) == ["p-smith"]
    assert pids(patients(people, sort_by="name"))[:2] == ["p-alvarez", "p-annan"]
    assert pids(patients(people, sort_by="name"))[2] == "p-smith"  # "jones ann" sorts before "ohara"
    assert ids(search(people, "Patient", {"family": "smith"})) == []


def test_concurrent_compartment_writes_serialise_on_the_touch_item(table):
    write(table, obs(1, patient="p9"), "2024-01-01T00:00:00Z")
    stale = table.get_item(Key=touch_key(WS, "p9"), ConsistentRead=True)["Item"]
    write(table, obs(2, patient="p9"), "2024-01-02T00:00:00Z")  # another writer got there first
    ops = compartment_touch(WS, "p9", event_time="2024-01-03T00:00:00Z", previous=stale)
    for op in ops:
        next(iter(op.values()))["TableName"] = table.name
    with pytest.raises(ClientError) as info:
        table.meta.client.transact_write_items(TransactItems=ops)
    assert info.value.response["Error"]["Code"] == "TransactionCanceledException"
    touch = table.get_item(Key=touch_key(WS, "p9"), ConsistentRead=True)["Item"]
    assert (touch["last_event_at"], touch["event_count"]) == ("2024-01-02T00:00:00.000Z", 2)
