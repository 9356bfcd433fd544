"""The in-memory reference store: record-at-a-time resolution and re-estimation as it grows."""

from __future__ import annotations

from fhir_platform.world.online import InMemoryWorld

from .conftest import make_patient


def test_a_duplicate_joins_the_entity_of_its_match_and_a_stranger_gets_its_own() -> None:
    world = InMemoryWorld(refresh_first=0)
    first = world.add("Patient/1", make_patient(family="Smith", given="John", birth="1980-04-12", phone="555-010-0012"))
    dup = world.add("Patient/2", make_patient(family="Smyth", given="John", birth="1980-04-12", phone="(555) 010-0012"))
    stranger = world.add("Patient/3", make_patient(family="Nguyen", given="Mai", birth="1992-07-01", gender="female"))
    assert first.outcome == "new" and stranger.outcome == "new"
    assert dup.outcome == "link" and dup.matched_record_id == "Patient/1"
    assert world.entity_of["Patient/2"] == world.entity_of["Patient/1"] != world.entity_of["Patient/3"]
    assert world.candidates_seen == [0, 1, 0]


def test_parameters_are_re_estimated_on_a_growing_schedule() -> None:
    world = InMemoryWorld(refresh_first=10, refresh_growth=3)
    for i in range(35):
        world.add(f"Patient/{i}", make_patient(family=f"Fam{i % 7}", given=f"Given{i}", birth=f"19{50 + i}-01-01"))
    assert world.refreshes == [10, 30]
    assert world.params.trained_on["records"] == 30
    assert world.params.tf["family_name"].total == 30
