"""How ``ResourceStore.commit_many`` packs a batch's changes into transactions (``_pack``)."""

from __future__ import annotations

from fhir_platform.storage.resources import MAX_TRANSACTION_ITEMS, CompartmentTouches, ResourceChange, _pack
from fhir_platform.world.entities import EntityLink


def change(rid: str, rt: str = "Observation", touches: tuple[str, ...] = (), extra: tuple[tuple[str, str], ...] = (), data_source: str | None = None) -> ResourceChange:
    return ResourceChange(
        workspace_id="ws", resource_type=rt, resource_id=rid, version=1, data={}, content_hash="h",
        created_at="t", last_updated="t", link=EntityLink(None, None), event={"data_source_id": data_source},
        previous_version=None, touches=list(touches),
        extra_ops=[{"Put": {"Item": {"PK": pk, "SK": sk}}} for pk, sk in extra],
    )


def sizes_of(group: list[ResourceChange], all_changes: list[ResourceChange], all_sizes: list[int]) -> list[int]:
    return [all_sizes[next(i for i, c in enumerate(all_changes) if c is x)] for x in group]


def test_first_fit_decreasing_fills_the_room_the_large_changes_leave() -> None:
    sizes = [60, 60, 30, 30, 9, 9]
    changes = [change(f"r{i}") for i in range(len(sizes))]
    groups = _pack(changes, sizes, None)
    # in order, 60 | 60+30 | 30+9+9 would be 3 transactions; packed: 60+30+9 and 60+30+9 (+ counters)
    assert sorted(sum(sizes[int(c.resource_id[1:])] for c in group) for group in groups) == [99, 99]
    for group in groups:  # a transaction keeps the batch's order
        assert [c.resource_id for c in group] == sorted((c.resource_id for c in group), key=lambda r: int(r[1:]))


def test_room_is_kept_for_the_counter_and_each_patients_touches() -> None:
    touches = CompartmentTouches("ws", {"p2": {"src": "ds1"}}, lambda *a: [])
    changes = [change("a", touches=("p1",)), change("b", touches=("p1",)), change("c", touches=("p2",))]
    groups = _pack(changes, [48, 48, 40], touches)
    # 48 + 48 + counter + 3 for p1 = 100; c (p2 listed per source: 5) cannot join
    assert [[c.resource_id for c in g] for g in groups] == [["a", "b"], ["c"]]
    for group in groups:
        patients = {p for c in group for p in c.touches}
        assert sum(sizes_of(group, changes, [48, 48, 40])) + 1 + sum(5 if p == "p2" else 3 for p in patients) <= MAX_TRANSACTION_ITEMS


def test_changes_writing_one_item_commit_in_order_in_separate_transactions() -> None:
    first, again = change("same", rt="Patient"), change("same", rt="Patient")  # two versions of one resource
    joins = [change(f"o{i}", extra=(("E#1", "META"),)) for i in range(3)]  # three changes updating one entity item
    small = [change(f"s{i}") for i in range(5)]
    groups = _pack([first, again, *joins, *small], [5] * 10, None)
    where = {id(c): g for g, group in enumerate(groups) for c in group}
    assert where[id(first)] < where[id(again)]
    assert where[id(joins[0])] < where[id(joins[1])] < where[id(joins[2])]
    assert all(where[id(c)] == 0 for c in small)  # the others fill the first transaction


def test_the_size_packed_is_the_number_of_operations_built() -> None:
    from dataclasses import replace

    from fhir_platform.storage.resources import ResourceStore, _size

    c = change("x", extra=(("E#1", "LINK#x"), ("E#1", "EV#t")))
    c = replace(c, index_put=[{"PK": "a", "SK": "1"}, {"PK": "b", "SK": "1"}], index_delete=[{"PK": "c", "SK": "1"}], new_entity=True, link=EntityLink("e1", 1.0, "patient"))
    assert _size(c) == len(ResourceStore()._items(c)) == 8


def test_a_transaction_stays_under_the_4_mb_request_limit() -> None:
    """DynamoDB refuses a TransactWriteItems request over 4 MB: large resources (inline JSON up to
    300 KB, sent twice: CURRENT and event) are packed fewer per transaction than their item count
    would allow."""
    from dataclasses import replace

    from fhir_platform.storage.resources import MAX_TRANSACTION_BYTES, _weight

    big = [replace(change(f"b{i}"), data={"resourceType": "Binary", "data": "x" * 250_000}) for i in range(6)]
    weights = [_weight(c) for c in big]
    assert all(w >= 2 * 250_000 for w in weights)  # both copies counted
    groups = _pack(big, [3] * 6, None, weights)
    assert len(groups) > 1 and all(sum(_weight(c) for c in g) <= MAX_TRANSACTION_BYTES for g in groups)
    assert len(_pack(big, [3] * 6, None)) == 1  # by item count alone they would share one
