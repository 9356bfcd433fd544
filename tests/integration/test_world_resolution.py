"""World-model resolution wired into the write paths (API writes, imports), against moto.

A resource's stored ``entity_id`` stays its anchor; its current entity is read through the alias
(``EntityStore.current_link``), as every read does (docs/entities.md)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_platform.resources.service import ResourceService, WriteContext
from fhir_platform.storage import keys
from fhir_platform.storage.entities import EntityStore
from fhir_platform.world.entities import anchor_entity_id
from tests.support.gateway import Gateway

from bench.aws_calls import counting, dynamodb

MRN = {"system": "urn:oid:1.2.36.146.595.217.0.1", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}}


def patient(pid: str, given: str = "Annabel", family: str = "Kowalczyk", birth: str = "1981-04-17", **extra: Any) -> dict[str, Any]:
    out = {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": "female",
        "birthDate": birth,
        "telecom": [{"system": "phone", "value": "555-301-7788"}, {"system": "email", "value": "annabel.k@example.org"}],
        "address": [{"use": "home", "line": ["12 Orchard Street"], "city": "Springfield", "postalCode": "01103"}],
    }
    out.update(extra)
    return out


def current(ws: str, rt: str, rid: str) -> str:
    return EntityStore().current_link(ws, rt, rid, anchor_entity_id(ws, rt, rid)).entity_id


def link(ws: str, rt: str, rid: str) -> dict[str, Any]:
    found = EntityStore().current_link(ws, rt, rid, anchor_entity_id(ws, rt, rid))
    assert found.link is not None
    return found.link


def events(ws: str, eid: str) -> list[str]:
    items = EntityStore().table.query(
        KeyConditionExpression="PK = :pk AND begins_with(SK, :ev)", ExpressionAttributeValues={":pk": keys.entity_pk(ws, eid), ":ev": "EV#"}
    )["Items"]
    return [i["event_type"] for i in items]


def test_api_writes_link_the_same_person_and_keep_the_anchor_on_the_resource(gateway: Gateway, workspace: dict) -> None:
    ws, token = workspace["id"], workspace["key"]
    first = gateway.call("PUT", f"/v1/{ws}/fhir/resources/Patient/a1", token=token, body={"data": patient("a1")})
    assert first.status == 201, first.body
    # the same person from another registration: typo in the given name, new id
    second = gateway.call("PUT", f"/v1/{ws}/fhir/resources/Patient/b1", token=token, body={"data": patient("b1", given="Anabel")})
    assert second.status == 201, second.body
    a_anchor, b_anchor = anchor_entity_id(ws, "Patient", "a1"), anchor_entity_id(ws, "Patient", "b1")
    # stored on the resource: its anchor; every response shows the current entity (the first record's)
    assert EntityStore().table.get_item(Key={"PK": keys.resource_pk(ws, "Patient", "b1"), "SK": keys.CURRENT_SK})["Item"]["entity_id"] == b_anchor
    assert second.body["entity_id"] == a_anchor
    assert current(ws, "Patient", "b1") == a_anchor == current(ws, "Patient", "a1")
    lk = link(ws, "Patient", "b1")
    assert lk["method"] == "probabilistic" and lk["confidence"] >= 0.95 and lk["entity_id"] == a_anchor
    assert {e["field"] for e in lk["evidence"]} >= {"given_name", "birth_date", "phone"}
    assert sorted(events(ws, a_anchor)) == ["created", "linked"]
    meta = EntityStore().entity(ws, a_anchor)
    assert meta["member_count"] == 2 and meta["entity_type"] == "patient" and meta["display_name"] == "Annabel Kowalczyk"
    status = gateway.call("GET", f"/v1/{ws}/fhir/status", token=token).body
    assert status["entity_count"] == 1 and status["entity_type_counts"] == {"patient": 1}
    # a compartment resource keeps its patient's anchor
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/b1"}}
    reply = gateway.call("POST", f"/v1/{ws}/fhir/resources/Observation", token=token, body={"data": obs})
    assert reply.body["entity_id"] == a_anchor  # its patient's current entity (stored: the patient's anchor)
    stored = EntityStore().table.get_item(Key={"PK": keys.resource_pk(ws, "Observation", reply.body["resource_id"]), "SK": keys.CURRENT_SK})["Item"]
    assert stored["entity_id"] == b_anchor


def _bundle(resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": r} for r in resources]}


def test_import_two_bundles_same_person_one_entity_sibling_another(gateway: Gateway, workspace: dict) -> None:
    ws, token = workspace["id"], workspace["key"]
    sister = patient("s1", given="Beatrix", birth="1985-09-02")  # same household: family, phone, address, email
    one = gateway.call("POST", f"/v1/{ws}/fhir/import", token=token, body={"bundle": _bundle([patient("x1"), sister])})
    assert one.status == 200, one.body
    moved = patient("x2", given="Annabel", address=[{"use": "home", "line": ["99 Elm Road"], "city": "Boston", "postalCode": "02110"}])
    two = gateway.call("POST", f"/v1/{ws}/fhir/import", token=token, body={"bundle": _bundle([moved])})
    assert two.status == 200, two.body
    assert current(ws, "Patient", "x2") == current(ws, "Patient", "x1")
    assert current(ws, "Patient", "s1") != current(ws, "Patient", "x1")
    status = gateway.call("GET", f"/v1/{ws}/fhir/status", token=token).body
    assert status["entity_count"] == 2 and status["resource_type_counts"]["Patient"] == 3


def test_records_of_one_batch_see_each_other(aws: dict) -> None:
    svc = ResourceService(indexer=lambda *a, **k: [])
    entries = [("Patient", "p1", patient("p1")), ("Patient", "p2", patient("p2", given="Anabel")), ("Patient", "p3", patient("p3"))]
    results = svc.write_many("wsb", entries, WriteContext(source="fhir_import"))
    assert [r.entity_created for r in results] == [True, False, False]
    assert {current("wsb", "Patient", p) for p in ("p1", "p2", "p3")} == {anchor_entity_id("wsb", "Patient", "p1")}
    assert EntityStore().entity("wsb", anchor_entity_id("wsb", "Patient", "p1"))["member_count"] == 3
    assert svc.store.counters("wsb")["entity_count"] == 1


def test_identifier_link_even_with_weak_demographics(aws: dict) -> None:
    svc = ResourceService(indexer=lambda *a, **k: [])
    ident = [{**MRN, "value": "MRN-4471"}]
    svc.upsert("wsi", "Patient", "i1", patient("i1", identifier=ident))
    # moved, new phone, no email, married name: the MRN carries it
    other = patient("i2", family="Whitaker", identifier=ident, telecom=[{"system": "phone", "value": "555-999-0001"}])
    other["address"] = [{"use": "home", "line": ["3 Hill Rd"], "city": "Salem", "postalCode": "01970"}]
    svc.upsert("wsi", "Patient", "i2", other)
    assert current("wsi", "Patient", "i2") == current("wsi", "Patient", "i1")
    assert link("wsi", "Patient", "i2")["method"] == "identifier"


def test_review_band_makes_an_entity_and_an_open_candidate(aws: dict) -> None:
    svc = ResourceService(indexer=lambda *a, **k: [])
    svc.upsert("wsr", "Patient", "r1", patient("r1"))
    # same family, phone, address and email, different given name: the identity guard caps it at review
    svc.upsert("wsr", "Patient", "r2", patient("r2", given="Annette", birth="1981-04-17"))
    assert current("wsr", "Patient", "r2") == anchor_entity_id("wsr", "Patient", "r2")
    table = EntityStore().table
    cands = table.query(KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": keys.candidate_pk("wsr")})["Items"]
    assert len(cands) == 1
    c = cands[0]
    assert c["status"] == "open" and c["entity_id"] == anchor_entity_id("wsr", "Patient", "r2")
    assert c["other_entity_id"] == anchor_entity_id("wsr", "Patient", "r1") and c["grade"] in ("certain", "probable")
    assert c["resources"] == [{"resource_type": "Patient", "resource_id": "r2"}]
    listed = table.query(KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": keys.candidate_status_pk("wsr", "open")})["Items"]
    assert [i["candidate_id"] for i in listed] == [c["candidate_id"]]
    assert table.get_item(Key={"PK": keys.candidate_count_pk("wsr"), "SK": keys.CANDIDATE_COUNT_SK})["Item"]["open"] == 1
    assert svc.store.counters("wsr")["entity_count"] == 2
    # the same record re-resolved into the same band is not proposed twice
    svc.upsert("wsr", "Patient", "r2", {**patient("r2", given="Annette"), "active": True})
    assert len(table.query(KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": keys.candidate_pk("wsr")})["Items"]) == 1


def test_update_re_resolves_moves_the_link_and_keeps_counts_exact(aws: dict) -> None:
    svc = ResourceService(indexer=lambda *a, **k: [])
    svc.upsert("wsu", "Patient", "u1", patient("u1"))
    stranger = patient("u2", given="Zygmunt", family="Oyelaran", birth="1950-01-30", telecom=[], address=[])
    svc.upsert("wsu", "Patient", "u2", stranger)
    assert svc.store.counters("wsu")["entity_count"] == 2
    u2_anchor, u1_anchor = anchor_entity_id("wsu", "Patient", "u2"), anchor_entity_id("wsu", "Patient", "u1")
    old_keys = link("wsu", "Patient", "u2")["blocking_keys"]
    # the registration is corrected: it was the same person all along
    svc.upsert("wsu", "Patient", "u2", patient("u2", given="Annabel"))
    assert current("wsu", "Patient", "u2") == u1_anchor
    assert sorted(events("wsu", u2_anchor)) == ["created", "unlinked"] and sorted(events("wsu", u1_anchor)) == ["created", "linked"]
    old = EntityStore().entity("wsu", u2_anchor)
    assert (old["status"], old["merged_into"], old["member_count"]) == ("merged", u1_anchor, 0)
    assert svc.store.counters("wsu")["entity_count"] == 1 and svc.store.counters("wsu")["entity_type_counts"] == {"patient": 1}
    # the keys it no longer has are gone, the new ones hold it
    table = EntityStore().table
    for key in old_keys:
        assert "Item" not in table.get_item(Key={"PK": keys.blocking_pk("wsu", "patient", key), "SK": "Patient#u2"})
    for key in link("wsu", "Patient", "u2")["blocking_keys"]:
        assert table.get_item(Key={"PK": keys.blocking_pk("wsu", "patient", key), "SK": "Patient#u2"})["Item"]["anchor_id"] == u2_anchor
    # and corrected back: it leaves the entity for a new one (its anchor id is taken by the merged META)
    svc.upsert("wsu", "Patient", "u2", stranger)
    now = current("wsu", "Patient", "u2")
    assert now not in (u1_anchor, u2_anchor)
    assert EntityStore().entity("wsu", u1_anchor)["member_count"] == 1
    assert svc.store.counters("wsu")["entity_count"] == 2


def test_pinned_link_is_not_moved_by_an_update(aws: dict) -> None:
    svc = ResourceService(indexer=lambda *a, **k: [])
    svc.upsert("wsp", "Patient", "q1", patient("q1"))
    svc.upsert("wsp", "Patient", "q2", patient("q2", given="Zygmunt", family="Oyelaran", birth="1950-01-30", telecom=[], address=[]))
    store = EntityStore()
    q2_anchor = anchor_entity_id("wsp", "Patient", "q2")
    pinned = {**link("wsp", "Patient", "q2"), "pinned": True, "method": "manual"}
    store.table.put_item(Item=pinned | {"PK": keys.entity_pk("wsp", q2_anchor), "SK": keys.entity_link_sk("Patient", "q2")})
    svc.upsert("wsp", "Patient", "q2", patient("q2", given="Annabel"))  # now matches q1, but a person decided
    assert current("wsp", "Patient", "q2") == q2_anchor
    after = link("wsp", "Patient", "q2")
    assert after["pinned"] is True and after["method"] == "manual" and "Annabel" in after["features"].replace("annabel", "Annabel")
    assert svc.store.counters("wsp")["entity_count"] == 2


def test_workspaces_are_isolated(aws: dict) -> None:
    svc = ResourceService(indexer=lambda *a, **k: [])
    svc.upsert("ws-one", "Patient", "same", patient("same"))
    svc.upsert("ws-two", "Patient", "other", patient("other"))
    assert current("ws-two", "Patient", "other") == anchor_entity_id("ws-two", "Patient", "other")
    table = EntityStore().table
    assert table.query(KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": keys.candidate_pk("ws-two")})["Items"] == []
    assert svc.store.counters("ws-one")["entity_count"] == 1 and svc.store.counters("ws-two")["entity_count"] == 1


NPI = "http://hl7.org/fhir/sid/us-npi"


def test_practitioner_by_npi_from_two_sources_is_one_entity(aws: dict) -> None:
    svc = ResourceService(indexer=lambda *a, **k: [])
    a = {"resourceType": "Practitioner", "identifier": [{"system": NPI, "value": "1234567893"}], "name": [{"family": "Okafor", "given": ["Chidi"], "prefix": ["Dr."]}]}
    b = {"resourceType": "Practitioner", "identifier": [{"system": "urn:ehr-b:staff", "value": "77"}, {"system": NPI, "value": "1234567893"}], "name": [{"family": "Okafor", "given": ["C."]}]}
    svc.write_many("wsd", [("Practitioner", "pa", a)], WriteContext(source="fhir_import", source_system="ehr-a"))
    svc.write_many("wsd", [("Practitioner", "pb", b)], WriteContext(source="ehr_sync", source_system="ehr-b"))
    assert current("wsd", "Practitioner", "pb") == current("wsd", "Practitioner", "pa") == anchor_entity_id("wsd", "Practitioner", "pa")
    assert link("wsd", "Practitioner", "pb")["method"] == "identifier"
    # an Organization by exact normalised name + address; another at another address stays apart
    org = {"resourceType": "Organization", "name": "St. Mary's Hospital", "address": [{"line": ["1 Main Street"], "postalCode": "01103"}]}
    svc.upsert("wsd", "Organization", "o1", org)
    svc.upsert("wsd", "Organization", "o2", {**org, "name": "ST MARYS HOSPITAL", "address": [{"line": ["1 Main St"], "postalCode": "01103"}]})
    svc.upsert("wsd", "Organization", "o3", {**org, "address": [{"line": ["200 Pine St"], "postalCode": "01103"}]})
    assert current("wsd", "Organization", "o2") == current("wsd", "Organization", "o1") != current("wsd", "Organization", "o3")
    assert link("wsd", "Organization", "o2")["method"] == "name_address"
    assert svc.store.counters("wsd")["entity_type_counts"] == {"practitioner": 1, "organization": 2}


def test_dynamodb_calls_per_resolved_patient_do_not_grow(aws: dict) -> None:
    from tests.support.perturb import population

    svc = ResourceService(indexer=lambda *a, **k: [])
    records = population(300, seed=7)

    def one_more(ws: str, rec: dict) -> int:
        svc.resolver.settings(ws)  # cached per execution environment (60 s): not a per-record call
        with counting() as calls:
            svc.upsert(ws, "Patient", rec["id"], rec)
        return dynamodb(calls)

    # the probe is a second record of a person whose first record both workspaces hold
    by_person: dict[str, list] = {}
    for r in records:
        by_person.setdefault(r.person, []).append(r)
    first, second = next(rs for rs in by_person.values() if len(rs) == 2)
    probe = copy.deepcopy(second.patient)
    rest = [r for r in records if r.person != first.person]
    for r in [first, *rest[:19]]:
        svc.upsert("small", "Patient", r.record_id, r.patient)
    svc.write_many("large", [("Patient", r.record_id, r.patient) for r in [first, *rest]], WriteContext(source="fhir_import"))
    at_small = one_more("small", {**probe, "id": "probe"})
    at_large = one_more("large", {**probe, "id": "probe"})
    # GetItem current + ≤ 14 key Queries + alias BatchGetItem + touches + the transaction
    assert at_small == at_large <= 20, (at_small, at_large)


def test_patient_match_ranks_candidates_and_writes_nothing(gateway: Gateway, workspace: dict) -> None:
    ws, token = workspace["id"], workspace["key"]
    for pid, p in (("m1", patient("m1")), ("m2", patient("m2", given="Beatrix", birth="1985-09-02"))):
        assert gateway.call("PUT", f"/v1/{ws}/fhir/resources/Patient/{pid}", token=token, body={"data": p}).status == 201
    before = gateway.call("GET", f"/v1/{ws}/fhir/status", token=token).body
    probe = patient("ignored", given="Anabel")
    del probe["id"]
    reply = gateway.call("POST", f"/v1/{ws}/fhir/patients/match", token=token, body={"resource": probe, "count": 5})
    assert reply.status == 200, reply.body
    cands = reply.body["candidates"]
    assert cands[0]["entity_id"] == anchor_entity_id(ws, "Patient", "m1") and cands[0]["grade"] == "certain"
    assert cands[0]["confidence"] >= 0.95 and {e["field"] for e in cands[0]["evidence"]} >= {"given_name", "birth_date"}
    assert [c["confidence"] for c in cands] == sorted((c["confidence"] for c in cands), reverse=True)
    assert len(cands) == 2 and cands[1]["grade"] != "certain"  # the sister: same household, other person
    one = gateway.call("POST", f"/v1/{ws}/fhir/patients/match", token=token, body={"resource": probe, "count": 1})
    assert [c["entity_id"] for c in one.body["candidates"]] == [cands[0]["entity_id"]]
    after = gateway.call("GET", f"/v1/{ws}/fhir/status", token=token).body
    assert after["event_count"] == before["event_count"] and after["entity_count"] == before["entity_count"] == 2
    # errors: a bad Patient names the field; count out of range; another type; a read-only key may match
    bad = gateway.call("POST", f"/v1/{ws}/fhir/patients/match", token=token, body={"resource": {**probe, "birthDate": "17/04/1981"}})
    assert bad.status == 422 and bad.body["detail"][0]["loc"] == ["body", "resource", "birthDate"]
    assert gateway.call("POST", f"/v1/{ws}/fhir/patients/match", token=token, body={"resource": probe, "count": 51}).status == 422
    wrong = gateway.call("POST", f"/v1/{ws}/fhir/patients/match", token=token, body={"resource": {"resourceType": "Observation"}})
    assert wrong.status == 422 and wrong.body["detail"][0]["loc"][:3] == ["body", "resource", "resourceType"]
    from tests.integration.conftest import new_key

    reader = new_key(gateway, ws, role="member")
    assert gateway.call("POST", f"/v1/{ws}/fhir/patients/match", token=reader, body={"resource": probe}).status == 200


def test_a_deleted_patient_is_no_longer_a_candidate(aws: dict) -> None:
    svc = ResourceService(indexer=lambda *a, **k: [])
    svc.upsert("wsx", "Patient", "d1", patient("d1"))
    keys_before = link("wsx", "Patient", "d1")["blocking_keys"]
    assert keys_before
    svc.delete("wsx", "Patient", "d1")
    table = EntityStore().table
    for key in keys_before:
        assert "Item" not in table.get_item(Key={"PK": keys.blocking_pk("wsx", "patient", key), "SK": "Patient#d1"})
    assert not link("wsx", "Patient", "d1").get("blocking_keys")
    svc.upsert("wsx", "Patient", "d2", patient("d2"))
    assert current("wsx", "Patient", "d2") == anchor_entity_id("wsx", "Patient", "d2")
    # re-created: resolved again, its keys back, and now it joins d2's entity
    svc.upsert("wsx", "Patient", "d1", patient("d1", given="Annabel"))
    assert set(link("wsx", "Patient", "d1")["blocking_keys"]) == set(keys_before)
    assert current("wsx", "Patient", "d1") == anchor_entity_id("wsx", "Patient", "d2")
    assert svc.store.counters("wsx")["entity_count"] == 1


@pytest.mark.parametrize("presence", [False, True], ids=["patient-keys-queried", "patient-keys-presence"])
def test_stored_resolution_partitions_records_like_the_measured_in_memory_reference(aws: dict, presence: bool) -> None:
    """The DynamoDB path (blocking items, aliases, batch sessions) decides exactly what
    ``world.online.InMemoryWorld`` — the reference the accuracy bench measures — decides, on a
    perturbed population with households and twins (priors, no refresh on either side); in a
    workspace created with ``WORLD#PATIENT_KEYS`` too, where Patients Query only keys whose
    presence item exists (and fewer Queries are made)."""
    from fhir_platform.storage.workspaces import WorkspaceRepository
    from fhir_platform.world.online import InMemoryWorld
    from tests.support.perturb import population

    if presence:
        WorkspaceRepository().create({"id": "wsref", "slug": "wsref", "name": "ref", "created_at": "2026-01-01T00:00:00.000Z"})

    records = population(120, seed=3)
    reference = InMemoryWorld(refresh_first=0)
    for r in records:
        reference.add(r.record_id, r.patient)
    from fhir_platform.world.model import default_parameters

    # the workspace's stored parameters: the priors, next estimation far away (as the reference)
    EntityStore().put_parameters("wsref", default_parameters().to_json(), 0, 10**9, "2026-01-01T00:00:00.000Z")
    svc = ResourceService(indexer=lambda *a, **k: [])
    half = len(records) // 2
    for r in records[:half]:  # API writes, one at a time
        svc.upsert("wsref", "Patient", r.record_id, r.patient)
    with counting() as calls:
        for start in range(half, len(records), 25):  # then import batches (records see their batch)
            svc.write_many("wsref", [("Patient", r.record_id, r.patient) for r in records[start : start + 25]], WriteContext(source="fhir_import"))
    assert svc.resolver.settings("wsref").patient_presence is presence
    # without presence items every key of every record is Queried (~8 per record); with them, only keys in use
    assert (calls["dynamodb:Query"] < 4 * (len(records) - half)) is presence

    def partition(entity_of: dict[str, str]) -> set[frozenset[str]]:
        groups: dict[str, set[str]] = {}
        for rid, eid in entity_of.items():
            groups.setdefault(eid, set()).add(rid)
        return {frozenset(g) for g in groups.values()}

    stored = EntityStore().current_entities("wsref", [anchor_entity_id("wsref", "Patient", r.record_id) for r in records])
    mine = {r.record_id: stored[anchor_entity_id("wsref", "Patient", r.record_id)] for r in records}
    assert partition(mine) == partition(reference.entity_of)
    assert any(len(g) > 1 for g in partition(mine))  # some records were linked
    assert svc.store.counters("wsref")["entity_count"] == len(partition(mine))


def test_parameters_are_re_estimated_by_import_batches_as_the_workspace_grows(aws: dict) -> None:
    from fhir_platform.world.model import Parameters
    from tests.support.perturb import population

    records = population(90, seed=5)[:120]
    svc = ResourceService()  # the real indexer: the estimation samples the _lastUpdated index
    ctx = WriteContext(source="fhir_import")
    svc.write_many("wsem", [("Patient", r.record_id, r.patient) for r in records[:60]], ctx)
    assert EntityStore().world_settings("wsem")[1] is None  # 60 < 100: still the priors
    for r in records[60:70]:
        svc.upsert("wsem", "Patient", r.record_id, r.patient)  # API writes never estimate
    assert EntityStore().world_settings("wsem")[1] is None
    svc.write_many("wsem", [("Patient", r.record_id, r.patient) for r in records[70:]], ctx)
    item = EntityStore().world_settings("wsem")[1]
    assert item["records"] == 120 and item["next_refresh_at"] == 360
    params = Parameters.from_json(item["params"])
    assert params.trained_on["records"] == 120 and params.tf  # term frequencies from the workspace's names
    assert svc.resolver.settings("wsem").estimated_records == 120  # the cache was dropped


def test_workspace_thresholds_are_set_by_patch_and_used_by_resolution(gateway: Gateway, workspace: dict) -> None:
    from tests.integration.conftest import ADMIN_KEY

    ws = workspace["id"]
    reply = gateway.call("PATCH", f"/v1/workspaces/{ws}", token=ADMIN_KEY, body={"world_thresholds": {"link": 0.999, "review": 0.7}})
    assert reply.status == 200, reply.body
    assert reply.body["world_thresholds"] == {"link": 0.999, "review": 0.7}
    settings = ResourceService().resolver.settings(ws)
    assert (settings.thresholds.link, settings.thresholds.review, settings.thresholds.identity_guard) == (0.999, 0.7, True)
    bad = gateway.call("PATCH", f"/v1/workspaces/{ws}", token=ADMIN_KEY, body={"world_thresholds": {"link": 0.6, "review": 0.8}})
    assert bad.status == 422 and bad.body["detail"][0]["loc"][:2] == ["body", "world_thresholds"]
    out_of_range = gateway.call("PATCH", f"/v1/workspaces/{ws}", token=ADMIN_KEY, body={"world_thresholds": {"link": 1.5}})
    assert out_of_range.status == 422 and out_of_range.body["detail"][0]["loc"][:3] == ["body", "world_thresholds", "link"]
    reset = gateway.call("PATCH", f"/v1/workspaces/{ws}", token=ADMIN_KEY, body={"world_thresholds": {}})
    assert reset.status == 200 and reset.body.get("world_thresholds") is None
    assert ResourceService().resolver.settings(ws).thresholds.link == 0.95


def test_directory_records_read_their_keys_by_item_not_by_query(aws: dict) -> None:
    """A batch of new directory records costs one BatchGetItem of key presence items per 100 keys
    and no Query; a later record sharing a stored key still finds (Queries) and links to it; an
    update that changes no identifier, name or address writes no entity item."""
    svc = ResourceService(indexer=lambda *a, **k: [])
    ctx = WriteContext(source="fhir_import")
    orgs = [
        ("Organization", f"o{i}", {"resourceType": "Organization", "identifier": [{"system": "urn:x:org", "value": f"O{i}"}], "name": f"Clinic {i}", "address": [{"line": [f"{i} Main St"], "postalCode": "01103"}]})
        for i in range(60)
    ]  # 120 keys: identifier + name/address each
    with counting() as calls:
        svc.write_many("wsk", orgs, ctx)
    assert calls["dynamodb:Query"] == 0, calls  # nothing is queried (was one Query per key: 120)
    # current versions (1) + presence items of 120 keys (2); directory rules need no settings
    assert calls["dynamodb:BatchGetItem"] == 3, calls
    assert current("wsk", "Organization", "o5") == anchor_entity_id("wsk", "Organization", "o5")

    # another source's record of o5 (same identifier, other id): found through the stored key
    dup = {"resourceType": "Organization", "identifier": [{"system": "urn:x:org", "value": "o5"}], "name": "Clinic Five"}
    with counting() as calls:
        svc.write_many("wsk", [("Organization", "other-5", dup)], ctx)
    assert calls["dynamodb:Query"] == 1  # its one key in use
    assert current("wsk", "Organization", "other-5") == current("wsk", "Organization", "o5")
    assert link("wsk", "Organization", "other-5")["method"] == "identifier"

    # o7 again with another telecom only: re-resolution would decide the same; nothing moves
    changed = {**orgs[7][2], "telecom": [{"system": "phone", "value": "555-0100"}]}
    before = link("wsk", "Organization", "o7")
    with counting() as calls:
        [result] = svc.write_many("wsk", [("Organization", "o7", changed)], ctx)
    assert result.outcome == "updated" and calls["dynamodb:Query"] == 0
    assert link("wsk", "Organization", "o7") == before
    assert events("wsk", anchor_entity_id("wsk", "Organization", "o7")) == ["created"]
    assert svc.store.counters("wsk")["entity_type_counts"] == {"organization": 60}
