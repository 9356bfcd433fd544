"""Blocking keys written at write time, the cap per key and saturated (too common) keys."""

from __future__ import annotations

from fhir_platform.world.blocking import MAX_KEYS_PER_RECORD, MAX_MEMBERS_PER_KEY, InMemoryBlockingIndex, blocking_keys

from .conftest import features


def test_keys_of_a_full_record() -> None:
    f = features(
        family="Smith", given="John", birth="1980-04-12", phone="(555) 010-0012", email="J@x.org",
        postal="2119", identifiers=[("http://h.example/mrn", "A1", "MR"), ("http://other", "z", None)],
    )
    keys = blocking_keys(f)
    assert keys == [
        "fy:SM0|1980",
        "gd:JN|1980-04-12",
        "nn:JN|SM0",
        "pi:2119|s",
        "bp:1980-04-12|2119",
        "ph:5550100012",
        "em:j@x.org",
        "id:http://h.example/mrn|a1",  # strong identifiers only
    ]


def test_spelling_variants_and_swapped_names_share_keys() -> None:
    a = blocking_keys(features(family="Smith", given="John", birth="1980-04-12"))
    assert set(a) & set(blocking_keys(features(family="Smyth", given="Jon", birth="1980-09-30")))  # fy: SM0|1980
    assert set(a) & set(blocking_keys(features(family="John", given="Smith", birth="1981-04-12")))  # nn: sorted names


def test_missing_fields_give_fewer_keys_and_never_more_than_the_bound() -> None:
    assert blocking_keys(features(family=None, given=None, birth=None)) == []
    assert blocking_keys(features(family="Smith", given=None, birth="1980")) == ["fy:SM0|1980"]
    many = features(
        phone=None,
        identifiers=[(f"http://s{i}", str(i), "MR") for i in range(10)],
        postal="1",
    )
    keys = blocking_keys(many)
    assert len([k for k in keys if k.startswith("id:")]) == 3
    assert len(keys) <= MAX_KEYS_PER_RECORD


def test_candidates_are_members_of_shared_keys_without_duplicates_or_self() -> None:
    index = InMemoryBlockingIndex()
    index.add("P/1", ["a", "b"])
    index.add("P/2", ["b", "c"])
    index.add("P/3", ["z"])
    assert index.candidates(["a", "b", "c"], exclude="P/2") == ["P/1"]
    assert index.candidates(["b", "c"]) == ["P/1", "P/2"]
    index.remove("P/1", ["a", "b"])
    assert index.candidates(["a", "b"]) == ["P/2"]


def test_a_key_over_the_cap_is_saturated_and_skipped() -> None:
    index = InMemoryBlockingIndex(max_members=3)
    for i in range(3):
        index.add(f"P/{i}", ["common", f"own{i}"])
    assert not index.is_saturated("common")
    assert index.candidates(["common"]) == ["P/0", "P/1", "P/2"]
    index.add("P/3", ["common", "own3"])  # one too many
    assert index.is_saturated("common")
    assert index.members("common") == ["P/0", "P/1", "P/2"]  # kept, but no longer used
    assert index.candidates(["common"]) == []
    assert index.candidates(["common", "own1"]) == ["P/1"]  # still found by its other keys
    index.remove("P/0", ["common"])
    assert index.is_saturated("common")  # stays saturated: the value is still common


def test_default_cap_bounds_candidates_per_lookup() -> None:
    index = InMemoryBlockingIndex()
    keys = blocking_keys(features(family="Smith", given="John", birth="1980-04-12", postal="2119"))
    for i in range(MAX_MEMBERS_PER_KEY * 3):
        index.add(f"P/{i}", keys)
    assert index.candidates(keys) == []  # every key saturated: a value shared by 150 records
    assert len(index.members(keys[0])) == MAX_MEMBERS_PER_KEY
