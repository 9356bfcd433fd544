"""Calibration on held-out FEBRL data: of the links made at confidence ≥ 0.9, at least 99 % are right.

Each FEBRL data set (2 and 3: the ones with enough duplicates) is split by *person* — every record
of one person on the same side — into a training half and a held-out half. Parameters are
estimated on the training half only (term frequencies, u from random pairs, λ/m/u by EM over its
blocked pairs). The held-out half is then resolved one record at a time in file order with those
parameters frozen, and every link at confidence ≥ 0.9 is checked against the truth (the record it
was matched to is the same person). Also checked: the model is not merely cautious (it makes most
of the links it could), and the mean confidence of the links is within the observed precision's
reach (no link band claims much more than it delivers).
"""

from __future__ import annotations

import zlib

import pytest

from fhir_platform.world.online import InMemoryWorld
from tests.support import febrl


def _split(records: list[febrl.FebrlRecord]) -> tuple[list[febrl.FebrlRecord], list[febrl.FebrlRecord]]:
    train, test = [], []
    for r in records:
        (train if zlib.crc32(r.person.encode()) % 2 == 0 else test).append(r)
    return train, test


@pytest.mark.parametrize("number", [2, 3])
def test_links_at_confidence_0_9_are_99_percent_correct_on_held_out_febrl(number: int) -> None:
    train, test = _split(febrl.load(number))

    trainer = InMemoryWorld(refresh_first=0)
    for r in train:
        trainer.add(r.record_id, r.patient)
    params = trainer.refresh_parameters(seed=number)
    assert params.trained_on.get("em_converged") is True

    world = InMemoryWorld(params=params, refresh_first=0)  # frozen: no re-estimation on test data
    for r in test:
        world.add(r.record_id, r.patient)

    person = {r.record_id: r.person for r in test}
    links = [(rid, d) for rid, d in world.decisions.items() if d.outcome == "link" and d.confidence >= 0.9]
    correct = sum(1 for rid, d in links if person[rid] == person[d.matched_record_id])
    possible = sum(1 for i, r in enumerate(test) if any(x.person == r.person for x in test[:i]))
    assert possible > 300
    assert correct / len(links) >= 0.99, f"{correct}/{len(links)} links at >= 0.9 correct"
    assert len(links) >= 0.9 * possible, f"only {len(links)} links of {possible} possible"
    mean_confidence = sum(d.confidence for _, d in links) / len(links)
    assert mean_confidence <= correct / len(links) + 0.01


def test_links_at_confidence_0_9_are_99_percent_correct_on_a_held_out_perturbed_population() -> None:
    """Realistic FHIR: households, twins, namesakes, phones, emails, two MRN systems (see
    ``tests/support/perturb.py``). Parameters from one population, resolution of another."""
    from tests.support import perturb

    trainer = InMemoryWorld(refresh_first=0)
    for r in perturb.population(800, seed=11):
        trainer.add(r.record_id, r.patient)
    params = trainer.refresh_parameters(seed=1)

    test = perturb.population(800, seed=12)
    world = InMemoryWorld(params=params, refresh_first=0)
    for r in test:
        world.add(r.record_id, r.patient)
    person = {r.record_id: r.person for r in test}
    links = [(rid, d) for rid, d in world.decisions.items() if d.outcome == "link" and d.confidence >= 0.9]
    correct = sum(1 for rid, d in links if person[rid] == person[d.matched_record_id])
    possible = len(test) - len({r.person for r in test})
    assert correct / len(links) >= 0.99, f"{correct}/{len(links)} links at >= 0.9 correct"
    assert len(links) >= 0.8 * possible, f"only {len(links)} links of {possible} possible"
