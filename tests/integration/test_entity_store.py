"""storage/entities.py against moto: the entity items as transaction operations, and the bounded
reads the resolver uses (blocking members with the saturation cap, aliases, links, NOT items)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from fhir_platform.storage import keys
from fhir_platform.storage.entities import EntityStore, op_key
from fhir_platform.world.blocking import MAX_MEMBERS_PER_KEY


def _commit(store: EntityStore, ops: list[dict[str, Any]]) -> None:
    store.table.meta.client.transact_write_items(TransactItems=ops)


def test_blocking_members_skip_saturated_keys_and_read_one_query_per_key(aws: dict[str, str]) -> None:
    store = EntityStore()
    ops = store.ops
    # key "common" gets cap + 1 members (saturated), key "rare" two
    batch = [ops.put_member("ws1", "patient", "fy:SM|1970", "Patient", f"p{i}", f"a{i}", {"family": "smith"}) for i in range(MAX_MEMBERS_PER_KEY + 1)]
    for start in range(0, len(batch), 25):
        _commit(store, batch[start : start + 25])
    _commit(store, [ops.put_member("ws1", "patient", "ph:5550100", "Patient", pid, f"a-{pid}", {"phones": ["5550100"]}) for pid in ("p1", "x9")])
    # another workspace's member under the same key is not seen
    _commit(store, [ops.put_member("ws2", "patient", "ph:5550100", "Patient", "other", "a-other", {})])

    read = store.blocking_members("ws1", "patient", ["fy:SM|1970", "ph:5550100", "em:none@example.org"])
    assert read.saturated == ["fy:SM|1970"]
    assert read.calls == 3
    assert [m.record_id for m in read.members] == ["Patient/p1", "Patient/x9"]
    assert read.members[1].anchor_id == "a-x9" and read.members[1].features == {"phones": ["5550100"]}
    assert read.per_key == {"ph:5550100": ["Patient/p1", "Patient/x9"], "em:none@example.org": []}


def test_new_entity_link_alias_and_current_link(aws: dict[str, str]) -> None:
    store = EntityStore()
    ops = store.ops
    at = "2026-01-01T00:00:00.000Z"
    # Patient/a founds entity A (its anchor); Patient/b (anchor B) links to A via an alias
    _commit(
        store,
        [
            ops.create_entity("ws", "A", "patient", "Ann Lee", at),
            ops.put_link("ws", "A", "Patient", "a", anchor_id="A", confidence=1.0, method="probabilistic", evidence=[], linked_at=at, features={"family": "lee"}, blocking_keys=["k1"]),
            ops.event("ws", "A", "created", at, resources=[{"resource_type": "Patient", "resource_id": "a"}]),
        ],
    )
    _commit(
        store,
        [
            ops.add_member("ws", "A", at),
            ops.put_link("ws", "A", "Patient", "b", anchor_id="B", confidence=0.97, method="probabilistic", evidence=[{"field": "family_name", "level": "exact", "weight": 3.2}], linked_at=at),
            ops.event("ws", "A", "linked", at, reason={"confidence": 0.97}),
            ops.put_alias("ws", "B", "A"),
        ],
    )
    assert store.current_entities("ws", ["A", "B", "C"]) == {"A": "A", "B": "A", "C": "C"}
    mine = store.current_link("ws", "Patient", "a", "A")
    assert (mine.entity_id, mine.alias, mine.member_count, mine.anchor_entity_exists) == ("A", None, 2, True)
    assert mine.link["blocking_keys"] == ["k1"] and mine.link["method"] == "probabilistic"
    theirs = store.current_link("ws", "Patient", "b", "B")
    assert (theirs.entity_id, theirs.alias, theirs.anchor_entity_exists) == ("A", "A", False)
    assert theirs.link["confidence"] == 0.97 and theirs.link["evidence"][0]["weight"] == 3.2
    fresh = store.current_link("ws", "Patient", "new", "N")
    assert (fresh.entity_id, fresh.link, fresh.entity, fresh.anchor_entity_exists) == ("N", None, None, False)
    meta = store.entity("ws", "A")
    assert (meta["member_count"], meta["version"], meta["status"]) == (2, 2, "active")


def test_conditions_refuse_reused_ids_merged_targets_stale_counts_and_pinned_links(aws: dict[str, str]) -> None:
    store = EntityStore()
    ops = store.ops
    at = "2026-01-01T00:00:00.000Z"
    _commit(store, [ops.create_entity("ws", "A", "patient", None, at), ops.put_link("ws", "A", "Patient", "a", anchor_id="A", confidence=1.0, method="manual", evidence=[], linked_at=at, pinned=True)])

    def refused(op_list: list[dict[str, Any]]) -> bool:
        with pytest.raises(ClientError) as exc:
            _commit(store, op_list)
        return exc.value.response["Error"]["Code"] == "TransactionCanceledException"

    assert refused([ops.create_entity("ws", "A", "patient", None, at)])  # ids are never reused
    assert refused([ops.add_member("ws", "missing", at)])  # joining an entity that is not there
    assert refused([ops.remove_member("ws", "A", at, member_count=2)])  # stale member count
    assert refused([ops.delete_link("ws", "A", "Patient", "a")])  # pinned links are not moved
    # the last member leaving for B: A is merged into B
    _commit(store, [ops.remove_member("ws", "A", at, member_count=1, merged_into="B")])
    meta = store.entity("ws", "A")
    assert (meta["status"], meta["merged_into"], meta["member_count"]) == ("merged", "B", 0)
    assert refused([ops.add_member("ws", "A", at)])  # a merged entity takes no members


def test_open_candidate_items_and_not_together(aws: dict[str, str]) -> None:
    store = EntityStore()
    ops = store.ops
    at = "2026-01-01T00:00:00.000Z"
    cand = ops.open_candidate(
        "ws", "c1", at, entity_id="N", other_entity_id="A", resources=[{"resource_type": "Patient", "resource_id": "n"}],
        confidence=0.7, grade="probable", evidence=[{"field": "given_name", "level": "else", "weight": -4.0}],
    )
    assert [op_key(o) for o in cand] == [
        (keys.candidate_pk("ws"), keys.candidate_sk("c1")),
        (keys.candidate_status_pk("ws", "open"), f"{at}#c1"),
        (keys.candidate_count_pk("ws"), keys.CANDIDATE_COUNT_SK),
    ]
    _commit(store, cand)
    item = store.table.get_item(Key={"PK": keys.candidate_pk("ws"), "SK": keys.candidate_sk("c1")})["Item"]
    assert item["status"] == "open" and item["other_entity_id"] == "A" and float(item["confidence"]) == 0.7
    count = store.table.get_item(Key={"PK": keys.candidate_count_pk("ws"), "SK": keys.CANDIDATE_COUNT_SK})["Item"]
    assert count["open"] == 1
    store.table.put_item(Item={"PK": keys.entity_pk("ws", "N"), "SK": keys.entity_not_sk("A")})
    assert store.not_together("ws", "N") == {"A"} and store.not_together("ws", "A") == set()
