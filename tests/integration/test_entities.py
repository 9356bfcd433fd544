"""World-model entity endpoints through the real handlers and moto: read, history, merge, split,
candidates, and every read path showing the current entity after a merge or a split."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest

from fhir_platform.world.entities import anchor_entity_id
from tests.integration.conftest import ADMIN_KEY, new_key, new_workspace
from tests.support.gateway import Gateway, Reply

LOINC = "http://loinc.org"


def patient(pid: str, family: str, given: str, birth: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": family, "given": [given]}], "birthDate": birth, "gender": "female"}


class Api:
    def __init__(self, gateway: Gateway, ws: str, key: str) -> None:
        self.gw, self.ws, self.key = gateway, ws, key

    def call(self, method: str, path: str, body: Any = None, key: str | None = None, **query: Any) -> Reply:
        return self.gw.call(method, f"/v1/{self.ws}/{path}", token=key or self.key, body=body, query={k: str(v) for k, v in query.items()} or None)

    def ok(self, method: str, path: str, body: Any = None, expect: int = 200, **query: Any) -> Any:
        reply = self.call(method, path, body, **query)
        assert reply.status == expect, (method, path, reply.status, reply.body)
        return reply.body

    def put(self, data: dict[str, Any]) -> dict[str, Any]:
        reply = self.call("PUT", f"fhir/resources/{data['resourceType']}/{data['id']}", {"data": data})
        assert reply.status in (200, 201), reply.body
        return reply.body

    def status(self) -> dict[str, Any]:
        return self.ok("GET", "fhir/status")


@pytest.fixture
def api(gateway: Gateway, workspace: dict) -> Api:
    return Api(gateway, workspace["id"], workspace["key"])


@pytest.fixture
def records(api: Api) -> dict[str, str]:
    """Two patients (two entities), the second with an Encounter and an Observation."""
    api.put(patient("p1", "Okafor", "Ngozi", "1988-02-29"))
    api.put(patient("p2", "Lindqvist", "Astrid", "1951-11-03"))
    api.put({"resourceType": "Encounter", "id": "e2", "status": "finished", "class": {"code": "AMB"}, "subject": {"reference": "Patient/p2"}, "period": {"start": "2024-03-01T10:00:00Z"}})
    api.put(
        {
            "resourceType": "Observation",
            "id": "o2",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": "Patient/p2"},
            "effectiveDateTime": "2024-03-01T10:05:00Z",
            "valueQuantity": {"value": 72, "unit": "/min"},
        }
    )
    api.put({"resourceType": "Encounter", "id": "e1", "status": "finished", "class": {"code": "AMB"}, "subject": {"reference": "Patient/p1"}, "period": {"start": "2024-01-01T10:00:00Z"}})
    e1 = api.ok("GET", "fhir/resources/Patient/p1")["entity_id"]
    e2 = api.ok("GET", "fhir/resources/Patient/p2")["entity_id"]
    assert e1 != e2
    return {"e1": e1, "e2": e2}


def shown_entities(api: Api, pid: str) -> dict[str, Any]:
    """The entity id every read path shows for patient ``pid`` and its compartment resources."""
    out: dict[str, Any] = {}
    out["read Patient"] = api.ok("GET", f"fhir/resources/Patient/{pid}")["entity_id"]
    out["history Patient"] = {e["entity_id"] for e in api.ok("GET", f"fhir/resources/Patient/{pid}/history")["entries"]}
    enc, obs = ("e2", "o2") if pid == "p2" else ("e1", None)
    out["read Encounter"] = api.ok("GET", f"fhir/resources/Encounter/{enc}")["entity_id"]
    out["history Encounter"] = {e["entity_id"] for e in api.ok("GET", f"fhir/resources/Encounter/{enc}/history")["entries"]}
    if obs:
        out["read Observation"] = api.ok("GET", f"fhir/resources/Observation/{obs}")["entity_id"]
        out["search Observation"] = {e["entity_id"] for e in api.ok("GET", "fhir/resources/Observation", patient=pid)["entries"]}
    out["search Encounter"] = {e["entity_id"] for e in api.ok("GET", "fhir/resources/Encounter", patient=pid)["entries"]}
    out["search Patient"] = {e["entity_id"] for e in api.ok("GET", "fhir/resources/Patient", _id=pid)["entries"]}
    name = {"p1": "Ngozi Okafor", "p2": "Astrid Lindqvist"}[pid]
    out["patients list"] = next(p["entity_id"] for p in api.ok("GET", "fhir/patients", limit=100)["patients"] if p["name"] == name)
    out["patients search"] = {p["entity_id"] for p in api.ok("GET", "fhir/patients", q=name.split()[1])["patients"]}
    out["patients view"] = next(p["entity_id"] for p in api.ok("GET", "fhir/views/patients", limit=100)["patients"] if p["name"] == name)
    timeline = api.ok("GET", f"fhir/patients/{pid}/timeline")
    out["timeline"] = {timeline["entity_id"], *(e["entity_id"] for e in timeline["events"])}
    out["summary"] = api.ok("GET", f"fhir/patients/{pid}/summary")["entity_id"]
    return out


def all_show(shown: dict[str, Any], entity_id: str) -> list[str]:
    """The read paths that do NOT show ``entity_id`` (empty when every one does)."""
    return [name for name, value in shown.items() if value not in (entity_id, {entity_id})]


def test_merge_moves_every_read_path_to_the_target_and_split_undoes_it(api: Api, records: dict[str, str]) -> None:
    e1, e2 = records["e1"], records["e2"]
    assert all_show(shown_entities(api, "p2"), e2) == []
    before = api.status()
    assert before["entity_count"] == 2 and before["entity_type_counts"] == {"patient": 2}

    merged = api.ok("POST", f"entities/{e1}/merge", {"from_entity_id": e2, "reason": "same person, confirmed by phone"})
    assert merged["entity_id"] == e1 and merged["status"] == "active" and merged["member_count"] == 2
    links = {(link["resource_type"], link["resource_id"]): link for link in merged["links"]}
    assert set(links) == {("Patient", "p1"), ("Patient", "p2")}
    assert links[("Patient", "p2")]["method"] == "manual" and links[("Patient", "p2")]["pinned"] is True
    assert links[("Patient", "p2")]["confidence"] == 1.0 and links[("Patient", "p2")]["linked_by"]

    gone = api.ok("GET", f"entities/{e2}")
    assert gone["status"] == "merged" and gone["merged_into"] == e1 and gone["links"] == [] and gone["member_count"] == 0
    assert all_show(shown_entities(api, "p2"), e1) == []
    assert all_show(shown_entities(api, "p1"), e1) == []
    after = api.status()
    assert after["entity_count"] == 1 and after["entity_type_counts"] == {"patient": 1}

    # the merged entity's timeline: both patients' compartments, newest first; the old id answers it too
    merged_timeline = api.ok("GET", f"fhir/patients/{e1}/timeline")
    assert {e["resource_id"] for e in merged_timeline["events"]} == {"e1", "e2", "o2"} and merged_timeline["total"] == 3
    times = [e["occurred_at"] for e in merged_timeline["events"]]
    assert times == sorted(times, reverse=True)
    via_old_id = api.ok("GET", f"fhir/patients/{e2}/timeline")
    assert via_old_id["entity_id"] == e1 and via_old_id["total"] == 3
    paged = api.ok("GET", f"fhir/patients/{e1}/timeline", limit=2, offset=1)
    assert [e["resource_id"] for e in paged["events"]] == [e["resource_id"] for e in merged_timeline["events"][1:3]]
    assert api.ok("GET", f"fhir/patients/{e2}/summary")["entity_id"] == e1

    split = api.ok("POST", f"entities/{e1}/split", {"resources": [{"resource_type": "Patient", "resource_id": "p2"}]}, expect=201)
    assert split["new_entity"]["entity_id"] == e2  # the moved Patient's own anchor was free (merged away): reused
    assert split["new_entity"]["status"] == "active" and [l["resource_id"] for l in split["new_entity"]["links"]] == ["p2"]
    assert split["new_entity"]["links"][0]["pinned"] is True and split["new_entity"]["links"][0]["method"] == "manual"
    assert [l["resource_id"] for l in split["entity"]["links"]] == ["p1"]
    assert all_show(shown_entities(api, "p2"), e2) == []
    assert all_show(shown_entities(api, "p1"), e1) == []
    final = api.status()
    assert final["entity_count"] == 2 and final["entity_type_counts"] == {"patient": 2}

    # the split pinned them apart: never together again (NOT items both ways)
    table = boto3.resource("dynamodb").Table("fhir-data")
    assert table.get_item(Key={"PK": f"WS#{api.ws}#E#{e1}", "SK": f"NOT#{e2}"}).get("Item")
    assert table.get_item(Key={"PK": f"WS#{api.ws}#E#{e2}", "SK": f"NOT#{e1}"}).get("Item")
    # and a person may still merge them again explicitly (undo of the split)
    again = api.ok("POST", f"entities/{e1}/merge", {"from_entity_id": e2})
    assert again["member_count"] == 2 and api.status()["entity_count"] == 1
    assert not table.get_item(Key={"PK": f"WS#{api.ws}#E#{e1}", "SK": f"NOT#{e2}"}).get("Item")


def test_split_to_a_new_entity_when_the_anchor_is_taken(api: Api, records: dict[str, str]) -> None:
    e1, e2 = records["e1"], records["e2"]
    api.ok("POST", f"entities/{e1}/merge", {"from_entity_id": e2})
    # splitting p1 (whose anchor is e1, the entity being split) needs a new id
    split = api.ok("POST", f"entities/{e1}/split", {"resources": [{"resource_type": "Patient", "resource_id": "p1"}]}, expect=201)
    new = split["new_entity"]["entity_id"]
    assert new not in (e1, e2) and uuid.UUID(new)
    assert split["entity"]["entity_id"] == e1 and [l["resource_id"] for l in split["entity"]["links"]] == ["p2"]
    assert all_show(shown_entities(api, "p1"), new) == []
    assert all_show(shown_entities(api, "p2"), e1) == []
    assert api.status()["entity_count"] == 2


def test_history_records_actor_and_reason_newest_first_and_pages(gateway: Gateway, api: Api, records: dict[str, str]) -> None:
    e1, e2 = records["e1"], records["e2"]
    key_id = next(k["key_id"] for k in gateway.call("GET", f"/v1/{api.ws}/api-keys", token=ADMIN_KEY).body["items"])
    api.ok("POST", f"entities/{e1}/merge", {"from_entity_id": e2, "reason": "same person, confirmed by phone"})
    api.ok("POST", f"entities/{e1}/split", {"resources": [{"resource_type": "Patient", "resource_id": "p2"}], "reason": "twins"}, expect=201)
    history = api.ok("GET", f"entities/{e1}/history")
    kinds = [(e["event_type"], e.get("direction")) for e in history["entries"] if e["event_type"] in ("merged", "split")]
    assert kinds == [("split", "from"), ("merged", "into")]
    split_event, merge_event = [e for e in history["entries"] if e["event_type"] in ("merged", "split")]
    assert merge_event["actor"] == key_id and merge_event["reason"] == "same person, confirmed by phone"
    assert merge_event["other_entity_id"] == e2 and merge_event["resources"] == [{"resource_type": "Patient", "resource_id": "p2"}]
    assert split_event["actor"] == key_id and split_event["reason"] == "twins" and split_event["other_entity_id"] == e2
    assert history["total"] == len(history["entries"]) >= 2
    first = api.ok("GET", f"entities/{e1}/history", limit=1)
    assert first["has_more"] is True and first["next_offset"] == 1 and first["total"] == history["total"]
    assert first["entries"][0]["event_type"] == "split"
    created = history["entries"][-1]  # the resolver's event: who (system) and why (its decision, evidence)
    assert created["event_type"] == "created" and created["actor"] == "system" and created["reason"]
    assert created["confidence"] is not None and created["resources"] == [{"resource_type": "Patient", "resource_id": "p1"}]
    other = api.ok("GET", f"entities/{e2}/history")
    assert [e["event_type"] for e in other["entries"] if e["event_type"] in ("merged", "split")] == ["split", "merged"]


def test_merge_refusals(gateway: Gateway, api: Api, records: dict[str, str]) -> None:
    e1, e2 = records["e1"], records["e2"]
    same = api.call("POST", f"entities/{e1}/merge", {"from_entity_id": e1})
    assert same.status == 422 and same.body["detail"][0]["loc"] == ["body", "from_entity_id"]
    unknown = str(uuid.uuid4())
    assert api.call("POST", f"entities/{e1}/merge", {"from_entity_id": unknown}).status == 404
    assert api.call("POST", f"entities/{unknown}/merge", {"from_entity_id": e1}).status == 404
    assert api.call("GET", f"entities/{unknown}").status == 404
    assert api.call("GET", f"entities/{unknown}/history").status == 404
    assert api.call("GET", "entities/not-a-uuid").status == 422
    # another type
    table = boto3.resource("dynamodb").Table("fhir-data")
    prac = str(uuid.uuid4())
    table.put_item(Item={"PK": f"WS#{api.ws}#E#{prac}", "SK": "META", "entity_id": prac, "entity_type": "practitioner", "status": "active", "version": 1, "member_count": 0})
    other_type = api.call("POST", f"entities/{e1}/merge", {"from_entity_id": prac})
    assert other_type.status == 409 and "types" in other_type.body["message"]
    api.ok("POST", f"entities/{e1}/merge", {"from_entity_id": e2})
    again = api.call("POST", f"entities/{e1}/merge", {"from_entity_id": e2})
    assert again.status == 409 and e1 in again.body["message"]
    into_merged = api.call("POST", f"entities/{e2}/merge", {"from_entity_id": e1})
    assert into_merged.status == 409
    # split refusals
    not_member = api.call("POST", f"entities/{e1}/split", {"resources": [{"resource_type": "Patient", "resource_id": "nobody"}]})
    assert not_member.status == 422 and not_member.body["detail"][0]["loc"] == ["body", "resources", 0]
    everyone = api.call("POST", f"entities/{e1}/split", {"resources": [{"resource_type": "Patient", "resource_id": "p1"}, {"resource_type": "Patient", "resource_id": "p2"}]})
    assert everyone.status == 422
    twice = api.call("POST", f"entities/{e1}/split", {"resources": [{"resource_type": "Patient", "resource_id": "p2"}] * 2})
    assert twice.status == 422 and twice.body["detail"][0]["loc"] == ["body", "resources", 1]
    assert api.status()["entity_count"] == 1  # nothing half-written by the refusals


def test_merge_refuses_a_source_with_more_members_than_one_transaction_moves(api: Api, records: dict[str, str]) -> None:
    from fhir_platform.storage.entity_decisions import MAX_DECISION_MEMBERS

    table = boto3.resource("dynamodb").Table("fhir-data")
    big = str(uuid.uuid4())
    table.put_item(Item={"PK": f"WS#{api.ws}#E#{big}", "SK": "META", "entity_id": big, "entity_type": "patient", "status": "active", "version": 1, "member_count": MAX_DECISION_MEMBERS + 1})
    for i in range(MAX_DECISION_MEMBERS + 1):
        table.put_item(Item={"PK": f"WS#{api.ws}#E#{big}", "SK": f"LINK#Patient#m{i}", "resource_type": "Patient", "resource_id": f"m{i}", "method": "probabilistic"})
    reply = api.call("POST", f"entities/{records['e1']}/merge", {"from_entity_id": big})
    assert reply.status == 409 and str(MAX_DECISION_MEMBERS) in reply.body["message"]
    assert reply.body["detail"][0]["type"] == "too_many_members"
    assert api.ok("GET", f"entities/{big}")["member_count"] == MAX_DECISION_MEMBERS + 1


def test_permissions_and_workspace_isolation(gateway: Gateway, api: Api, records: dict[str, str]) -> None:
    e1, e2 = records["e1"], records["e2"]
    viewer = new_key(gateway, api.ws, role="viewer")
    assert api.call("GET", f"entities/{e1}", key=viewer).status == 200
    assert api.call("GET", "entity-candidates", key=viewer).status == 200
    for path, body in ((f"entities/{e1}/merge", {"from_entity_id": e2}), (f"entities/{e1}/split", {"resources": [{"resource_type": "Patient", "resource_id": "p1"}]})):
        denied = api.call("POST", path, body, key=viewer)
        assert denied.status == 403, denied.body
    assert api.call("POST", "entity-candidates/c1/accept", key=viewer).status == 403
    assert api.call("POST", "entity-candidates/c1/reject", key=viewer).status == 403

    other = new_workspace(gateway)
    other_key = new_key(gateway, other["id"])
    assert api.call("GET", f"entities/{e1}", key=other_key).status == 403  # a key reaches only its own workspace
    assert api.call("POST", f"entities/{e1}/merge", {"from_entity_id": e2}, key=other_key).status == 403
    theirs = Api(gateway, other["id"], other_key)
    assert theirs.call("GET", f"entities/{e1}").status == 404  # ws1's entity does not exist in ws2
    assert theirs.call("POST", f"entities/{e1}/merge", {"from_entity_id": e2}).status == 404
    theirs.put(patient("p1", "Okafor", "Ngozi", "1988-02-29"))
    t1 = theirs.ok("GET", "fhir/resources/Patient/p1")["entity_id"]
    assert t1 == anchor_entity_id(other["id"], "Patient", "p1") != e1
    assert theirs.call("POST", f"entities/{t1}/merge", {"from_entity_id": e2}).status == 404  # e2 is ws1's
    assert api.status()["entity_count"] == 2 and theirs.status()["entity_count"] == 1


# ---- candidates ---------------------------------------------------------------------------------


def seed_candidate(ws: str, cid: str, entity_id: str, other_entity_id: str, at: str) -> None:
    """An open candidate as the write path stores it (``storage.entities.EntityOps.open_candidate``)."""
    from fhir_platform.storage.entities import EntityOps

    ops = EntityOps("fhir-data").open_candidate(
        ws,
        cid,
        at,
        entity_id=entity_id,
        other_entity_id=other_entity_id,
        resources=[{"resource_type": "Patient", "resource_id": "p2"}, {"resource_type": "Patient", "resource_id": "p1"}],
        confidence=0.72,
        grade="probable",
        evidence=[{"field": "family_name", "level": "jaro_winkler_92", "weight": 2.81}],
    )
    boto3.resource("dynamodb").meta.client.transact_write_items(TransactItems=ops)


def test_candidates_list_accept_reject_and_409(api: Api, records: dict[str, str]) -> None:
    e1, e2 = records["e1"], records["e2"]
    api.put(patient("p3", "Haddad", "Omar", "1970-07-07"))
    e3 = api.ok("GET", "fhir/resources/Patient/p3")["entity_id"]
    seed_candidate(api.ws, "c-accept", e2, e1, "2025-01-01T00:00:00.000Z")
    seed_candidate(api.ws, "c-reject", e3, e1, "2025-01-02T00:00:00.000Z")

    listed = api.ok("GET", "entity-candidates", status="open")
    assert listed["total"] == 2 and [c["candidate_id"] for c in listed["candidates"]] == ["c-reject", "c-accept"]
    first = listed["candidates"][1]
    assert first["confidence"] == 0.72 and first["grade"] == "probable" and first["evidence"][0]["field"] == "family_name"
    assert first["resources"][0] == {"resource_type": "Patient", "resource_id": "p2"}
    page = api.ok("GET", "entity-candidates", limit=1)
    assert page["has_more"] is True and page["next_offset"] == 1 and page["total"] == 2

    accepted = api.ok("POST", "entity-candidates/c-accept/accept")
    assert accepted["candidate"]["status"] == "accepted" and accepted["candidate"]["decided_by"]
    assert accepted["entity"]["entity_id"] == e1 and accepted["entity"]["member_count"] == 2
    assert api.ok("GET", f"entities/{e2}")["merged_into"] == e1
    assert api.ok("GET", "fhir/resources/Encounter/e2")["entity_id"] == e1
    assert api.status()["entity_count"] == 2  # e1 (p1 + p2) and e3

    rejected = api.ok("POST", "entity-candidates/c-reject/reject")
    assert rejected["candidate"]["status"] == "rejected" and rejected["entity"] is None
    table = boto3.resource("dynamodb").Table("fhir-data")
    assert table.get_item(Key={"PK": f"WS#{api.ws}#E#{e1}", "SK": f"NOT#{e3}"}).get("Item")
    assert table.get_item(Key={"PK": f"WS#{api.ws}#E#{e3}", "SK": f"NOT#{e1}"}).get("Item")
    assert api.ok("GET", "fhir/resources/Patient/p3")["entity_id"] == e3

    for cid, verb in (("c-accept", "accept"), ("c-accept", "reject"), ("c-reject", "accept"), ("c-reject", "reject")):
        again = api.call("POST", f"entity-candidates/{cid}/{verb}")
        assert again.status == 409 and again.body["detail"][0]["loc"] == ["path", "candidate_id"], (cid, verb, again.body)
    assert api.call("POST", "entity-candidates/nope/accept").status == 404

    counts = {s: api.ok("GET", "entity-candidates", status=s)["total"] for s in ("open", "accepted", "rejected")}
    assert counts == {"open": 0, "accepted": 1, "rejected": 1}
    assert [c["candidate_id"] for c in api.ok("GET", "entity-candidates", status="accepted")["candidates"]] == ["c-accept"]
    assert api.call("GET", "entity-candidates", status="maybe").status == 422
    assert api.ok("GET", f"entities/{e1}/history")["entries"][0]["request"]["candidate_id"] == "c-accept"


def test_a_merge_carries_the_sources_never_together_pairs_to_the_target(api: Api, records: dict[str, str]) -> None:
    """e1 was ruled apart from e3 (a rejected candidate); after e1 merges into e2, e2 is apart from e3
    too: a record of e3 that becomes identical to e2's Patient is not linked into e2."""
    e1, e2 = records["e1"], records["e2"]
    api.put(patient("p3", "Haddad", "Omar", "1970-07-07"))
    e3 = api.ok("GET", "fhir/resources/Patient/p3")["entity_id"]
    seed_candidate(api.ws, "c-reject", e3, e1, "2025-01-02T00:00:00.000Z")
    api.ok("POST", "entity-candidates/c-reject/reject")

    api.ok("POST", f"entities/{e2}/merge", {"from_entity_id": e1})
    table = boto3.resource("dynamodb").Table("fhir-data")
    carried = table.get_item(Key={"PK": f"WS#{api.ws}#E#{e2}", "SK": f"NOT#{e3}"}).get("Item")
    assert carried and e1 in carried["reason"]
    assert table.get_item(Key={"PK": f"WS#{api.ws}#E#{e3}", "SK": f"NOT#{e2}"}).get("Item")

    twin_of_p2 = {**patient("p3", "Lindqvist", "Astrid", "1951-11-03"), "telecom": [{"system": "phone", "value": "+1 555 0100"}]}
    api.put(twin_of_p2)
    assert api.ok("GET", "fhir/resources/Patient/p3")["entity_id"] != e2
    assert {link["resource_id"] for link in api.ok("GET", f"entities/{e2}")["links"]} == {"p1", "p2"}

    # a split bringing e1 back keeps e1's own rejection
    api.ok("POST", f"entities/{e2}/split", {"resources": [{"resource_type": "Patient", "resource_id": "p1"}]}, expect=201)
    assert table.get_item(Key={"PK": f"WS#{api.ws}#E#{e1}", "SK": f"NOT#{e3}"}).get("Item")


def test_a_candidate_whose_records_were_merged_meanwhile_is_accepted_without_a_second_merge(api: Api, records: dict[str, str]) -> None:
    e1, e2 = records["e1"], records["e2"]
    seed_candidate(api.ws, "c1", e2, e1, "2025-01-01T00:00:00.000Z")
    api.ok("POST", f"entities/{e1}/merge", {"from_entity_id": e2})
    assert api.call("POST", "entity-candidates/c1/reject").status == 409  # already one entity: split instead
    accepted = api.ok("POST", "entity-candidates/c1/accept")
    assert accepted["candidate"]["status"] == "accepted" and accepted["entity"]["entity_id"] == e1
    assert api.status()["entity_count"] == 1


def test_decisions_are_pinned_an_update_does_not_undo_them(api: Api, records: dict[str, str]) -> None:
    """Re-resolution on update (the write path) respects the links a merge or a split pinned."""
    e1, e2 = records["e1"], records["e2"]
    api.ok("POST", f"entities/{e1}/merge", {"from_entity_id": e2})
    api.put({**patient("p2", "Lindqvist", "Astrid", "1951-11-03"), "gender": "other", "telecom": [{"system": "phone", "value": "+15550100"}]})
    assert api.ok("GET", "fhir/resources/Patient/p2")["entity_id"] == e1
    link = next(l for l in api.ok("GET", f"entities/{e1}")["links"] if l["resource_id"] == "p2")
    assert link["pinned"] is True and link["method"] == "manual"

    # twins: the same name and birth date, so the resolver links them; a reviewer splits them apart
    api.put(patient("t1", "Moreau", "Camille", "2001-04-12"))
    api.put({**patient("t2", "Moreau", "Camille", "2001-04-12"), "telecom": [{"system": "phone", "value": "+15550111"}]})
    twins = api.ok("GET", "fhir/resources/Patient/t1")["entity_id"]
    if api.ok("GET", "fhir/resources/Patient/t2")["entity_id"] != twins:  # the resolver kept them apart: merge them first
        api.ok("POST", f"entities/{twins}/merge", {"from_entity_id": api.ok("GET", "fhir/resources/Patient/t2")["entity_id"]})
    split = api.ok("POST", f"entities/{twins}/split", {"resources": [{"resource_type": "Patient", "resource_id": "t2"}]}, expect=201)
    apart = split["new_entity"]["entity_id"]
    api.put({**patient("t2", "Moreau", "Camille", "2001-04-12"), "telecom": [{"system": "phone", "value": "+15550112"}]})
    assert api.ok("GET", "fhir/resources/Patient/t2")["entity_id"] == apart
    assert api.ok("GET", "fhir/resources/Patient/t1")["entity_id"] == twins
    # a third record like them may join one twin, never bring the two back together
    api.put(patient("t3", "Moreau", "Camille", "2001-04-12"))
    assert api.ok("GET", f"entities/{twins}")["member_count"] + api.ok("GET", f"entities/{apart}")["member_count"] <= 3
    assert {l["resource_id"] for l in api.ok("GET", f"entities/{apart}")["links"]} & {"t1"} == set()


def test_an_automatic_link_is_explained_and_a_split_undoes_it(api: Api) -> None:
    phone = [{"system": "phone", "value": "+15550111"}]
    api.put({**patient("t1", "Moreau", "Camille", "2001-04-12"), "telecom": phone})
    api.put({**patient("t2", "Moreau", "Camille", "2001-04-12"), "telecom": phone})
    entity_id = api.ok("GET", "fhir/resources/Patient/t2")["entity_id"]
    entity = api.ok("GET", f"entities/{entity_id}")
    assert entity["member_count"] == 2 and entity["display_name"] == "Camille Moreau"
    t2 = next(l for l in entity["links"] if l["resource_id"] == "t2")
    assert t2["method"] == "probabilistic" and t2["pinned"] is False and 0 < t2["confidence"] <= 1
    by_field = {e["field"]: e for e in t2["evidence"]}
    assert by_field["birth_date"]["level"] == "exact" and by_field["birth_date"]["weight"] > 0
    linked = next(e for e in api.ok("GET", f"entities/{entity_id}/history")["entries"] if e["event_type"] == "linked")
    assert linked["actor"] == "system" and linked["method"] == "probabilistic" and linked["evidence"]
    assert linked["resources"] == [{"resource_type": "Patient", "resource_id": "t2"}]
    before = api.status()["entity_count"]

    split = api.ok("POST", f"entities/{entity_id}/split", {"resources": [{"resource_type": "Patient", "resource_id": "t2"}], "reason": "twins"}, expect=201)
    new = split["new_entity"]
    assert new["entity_id"] == anchor_entity_id(api.ws, "Patient", "t2") != entity_id  # t2's own anchor id was free
    assert new["display_name"] == "Camille Moreau" and new["links"][0]["pinned"] is True
    assert api.ok("GET", "fhir/resources/Patient/t2")["entity_id"] == new["entity_id"]
    assert api.status()["entity_count"] == before + 1


def test_a_decision_on_a_stale_read_is_refused_whole(api: Api, records: dict[str, str]) -> None:
    """Two reviewers: the second decides on entities read before the first one's merge committed."""
    from fhir_platform.errors import Conflict
    from fhir_platform.storage.entity_decisions import Actor, EntityDecisions

    e1, e2 = records["e1"], records["e2"]
    api.put(patient("p3", "Haddad", "Omar", "1970-07-07"))
    e3 = api.ok("GET", "fhir/resources/Patient/p3")["entity_id"]
    decisions = EntityDecisions()
    stale_target, stale_source = decisions.reader.entity(api.ws, e1), decisions.reader.entity(api.ws, e2)
    api.ok("POST", f"entities/{e1}/merge", {"from_entity_id": e3})  # the first reviewer wins: e1's version moves on
    counts = api.status()
    ops = decisions._merge_ops(api.ws, stale_target, stale_source, Actor("key_second"), {"from_entity_id": e2})
    with pytest.raises(Conflict):
        decisions._transact(ops, "merge")
    assert api.ok("GET", f"entities/{e2}")["status"] == "active"  # nothing of the stale merge was written
    assert {l["resource_id"] for l in api.ok("GET", f"entities/{e1}")["links"]} == {"p1", "p3"}
    assert api.ok("GET", "fhir/resources/Encounter/e2")["entity_id"] == e2
    assert api.status()["entity_count"] == counts["entity_count"] == 2


def test_read_costs_are_the_same_before_and_after_a_merge_and_entity_reads_do_not_grow(api: Api, records: dict[str, str]) -> None:
    """The alias indirection is one BatchGetItem per page whether or not any alias exists; the
    entity endpoints' calls do not grow with the workspace."""
    from bench.aws_calls import counting

    e1, e2 = records["e1"], records["e2"]

    def calls(path: str, **query: Any) -> dict[str, int]:
        with counting() as c:
            api.ok("GET", path, **query)
        return {k: v for k, v in c.items() if k.startswith("dynamodb:")}

    reads = {
        "read": ("fhir/resources/Encounter/e2", {}),
        "history": ("fhir/resources/Patient/p2/history", {}),
        "search": ("fhir/resources/Encounter", {"patient": "p2"}),
        "patients": ("fhir/patients", {}),
        "view": ("fhir/views/patients", {}),
        "timeline": ("fhir/patients/p2/timeline", {}),
        "summary": ("fhir/patients/p2/summary", {}),
    }
    before = {name: calls(path, **q) for name, (path, q) in reads.items()}
    entity_reads = {"entity": (f"entities/{e1}", {}), "history": (f"entities/{e1}/history", {}), "candidates": ("entity-candidates", {})}
    small = {name: calls(path, **q) for name, (path, q) in entity_reads.items()}
    api.ok("POST", f"entities/{e1}/merge", {"from_entity_id": e2})
    after = {name: calls(path, **q) for name, (path, q) in reads.items()}
    assert before == after
    assert all(c.get("dynamodb:BatchGetItem", 0) >= 1 for name, c in after.items() if name not in ("timeline", "summary"))
    for i in range(40):
        api.put(patient(f"x{i}", f"Family{i}", f"Given{i}", f"19{10 + i}-01-01"))
    large = {name: calls(path, **q) for name, (path, q) in entity_reads.items()}
    assert small == large
    assert sum(large["entity"].values()) <= 3  # authorizer + one Query (+ GetItem of a name when the META has none)
