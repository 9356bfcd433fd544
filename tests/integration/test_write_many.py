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
    assert dynamodb(calls) <= 2 + 100 // 20  # batch reads + ~20 resources per transaction
    assert calls["dynamodb:TransactWriteItems"] >= 2


def test_same_resource_twice_in_one_batch_makes_two_versions(aws: dict) -> None:
    svc = ResourceService(indexer=lambda *a, **k: [])
    entries = [
        ("Patient", "dup", {"resourceType": "Patient", "id": "dup", "gender": "male"}),
        ("Patient", "dup", {"resourceType": "Patient", "id": "dup", "gender": "female"}),
    ]
    assert [r.outcome for r in svc.write_many("ws3", entries, WriteContext())] == ["created", "updated"]
    assert svc.read("ws3", "Patient", "dup").data["gender"] == "female"
