"""The batched write path used by imports: same rules as single writes, fewer calls."""

from __future__ import annotations


from fhir_platform.resources.service import ResourceService, WriteContext

from bench.aws_calls import counting, dynamodb  # noqa: E402


def _entries(n: int) -> list[tuple[str, str, dict]]:
    out = [("Patient", "p1", {"resourceType": "Patient", "id": "p1", "name": [{"family": "Batch"}]})]
    for i in range(n):
        out.append(("Observation", f"o{i}", {"resourceType": "Observation", "id": f"o{i}", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}}))
    return out


def test_write_many_links_dedups_and_versions(aws: dict) -> None:
    svc = ResourceService(indexer=lambda *a, **k: [])
    ctx = WriteContext(source="fhir_import", source_system="synthea")
    first = svc.write_many("ws1", _entries(30), ctx)
    assert [r.outcome for r in first] == ["created"] * 31
    assert first[0].entity_created and {r.entity_id for r in first} == {first[0].entity_id}
    again = svc.write_many("ws1", _entries(30), ctx)
    assert {r.outcome for r in again} == {"skipped"}
    forced = svc.write_many("ws1", _entries(2)[:2], ctx, dedup=False)
    assert [r.outcome for r in forced] == ["updated", "updated"]
    changed = svc.write_many("ws1", [("Patient", "p1", {"resourceType": "Patient", "id": "p1", "name": [{"family": "Changed"}]})], ctx)
    assert changed[0].outcome == "updated"
    history = svc.history("ws1", "Patient", "p1", 10, 0)
    assert history.total == 3 and history.entries[0]["fields_affected"] == ["name.0.family"]
    assert history.entries[0]["source"] == "fhir_import" and history.entries[0]["source_system"] == "synthea"
    counts = svc.store.counters("ws1")
    assert counts["resource_type_counts"] == {"Patient": 1, "Observation": 30} and counts["event_count"] == 34
    assert counts["entity_count"] == 1


def test_write_many_costs_few_calls_per_resource(aws: dict) -> None:
    svc = ResourceService(indexer=lambda *a, **k: [])
    with counting() as calls:
        svc.write_many("ws2", _entries(99), WriteContext(source="fhir_import"))
    # reads per batch: current versions and the compartment touch items (together: one BatchGetItem
    # per 100 keys, here 101), the world model's settings (one BatchGetItem, cached per environment
    # for 60 s) and its refresh check (one Query of the counter shards, a batch with Patients only)
    assert calls["dynamodb:BatchGetItem"] <= 3 and calls["dynamodb:Query"] <= 1
    # 2 items per resource here (CURRENT and the event, which carries its type-history entry as
    # TypeIndex attributes; no index items) and room for the counter update and the patient's
    # touches (3): 96 items, 48 resources per transaction
    assert 2 <= calls["dynamodb:TransactWriteItems"] <= -(-100 * 2 // 96)
    assert dynamodb(calls) <= 8


def test_same_resource_twice_in_one_batch_makes_two_versions(aws: dict) -> None:
    svc = ResourceService(indexer=lambda *a, **k: [])
    entries = [
        ("Patient", "dup", {"resourceType": "Patient", "id": "dup", "gender": "male"}),
        ("Patient", "dup", {"resourceType": "Patient", "id": "dup", "gender": "female"}),
    ]
    assert [r.outcome for r in svc.write_many("ws3", entries, WriteContext())] == ["created", "updated"]
    assert svc.read("ws3", "Patient", "dup").data["gender"] == "female"


def test_a_lost_race_to_identical_content_is_reported_skipped_not_written(aws: dict) -> None:
    """Two imports carrying the same resource at once: the one that loses the race re-reads, finds
    its content already stored and writes nothing, so it must not report a version it did not write
    (the imports' created + updated would exceed the versions stored)."""
    svc, rival = ResourceService(indexer=lambda *a, **k: []), ResourceService(indexer=lambda *a, **k: [])
    data = {"resourceType": "Patient", "id": "raced", "name": [{"family": "Same"}]}
    read_versions = svc.store.batch_read

    def batch_read_then_rival_writes(ws: str, refs: list, item_keys: list) -> tuple:
        found = read_versions(ws, refs, item_keys)  # this import read "no current version" ...
        if ("Patient", "raced") in refs:
            rival.upsert(ws, "Patient", "raced", data, WriteContext(source="fhir_import"))  # ... then the other import wrote it
        return found

    svc.store.batch_read = batch_read_then_rival_writes  # type: ignore[method-assign]
    results = svc.write_many("ws4", [("Patient", "raced", data)], WriteContext(source="fhir_import"))
    assert [(r.outcome, r.entity_created) for r in results] == [("skipped", False)]
    assert svc.history("ws4", "Patient", "raced", 10, 0).total == 1
    assert svc.store.counters("ws4")["event_count"] == 1


def test_the_refresh_check_reads_the_counters_again_only_when_the_threshold_may_be_reached(aws: dict) -> None:
    """The world model's refresh check (end of a batch with Patients) keeps the Patient count it
    read and adds each batch's created Patients: far from ``next_refresh_at`` (100) the counter
    shards are read once, not once per batch; once the estimate reaches it they are read and the
    parameters re-estimated."""
    svc = ResourceService(indexer=lambda *a, **k: [])
    reads = []
    read_counters = svc.store.counters
    svc.store.counters = lambda ws: reads.append(ws) or read_counters(ws)  # type: ignore[method-assign]
    ctx = WriteContext(source="fhir_import")

    def patients(start: int, n: int) -> list[tuple[str, str, dict]]:
        return [("Patient", f"p{i}", {"resourceType": "Patient", "id": f"p{i}", "name": [{"family": f"Fam{i}"}], "gender": "male"}) for i in range(start, start + n)]

    for start in range(0, 60, 20):
        svc.write_many("ws6", patients(start, 20), ctx)
    assert reads == ["ws6"]
    svc.write_many("ws6", patients(60, 45), ctx)  # 60 + 45 ≥ 100: read again, and due
    assert reads == ["ws6", "ws6"]
    assert svc.resolver.settings("ws6").next_refresh_at == 3 * 105  # re-estimated at 105 Patients
