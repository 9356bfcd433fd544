"""``coldstart.init``: the cyclic GC is paused inside the block, and afterwards what the block built is
frozen (never scanned again) and the GC resumed as it was — also when the block raises."""

from __future__ import annotations

import gc

import pytest

from fhir_platform import coldstart


@pytest.fixture(autouse=True)
def _restore_gc():
    enabled, threshold = gc.isenabled(), gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    (gc.enable if enabled else gc.disable)()


def test_paused_inside_then_frozen_and_resumed() -> None:
    gc.enable()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    with coldstart.init():
        assert not gc.isenabled()
        built = [object() for _ in range(10)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(built)
    assert gc.get_count()[0] < 700  # the young generation emptied: no deferred pass left for the first request
    assert gc.get_threshold() == (coldstart.YOUNG_THRESHOLD, 10, 10)  # young passes 14x rarer, older ones as they were


def test_a_failing_block_still_resumes() -> None:
    gc.enable()
    with pytest.raises(RuntimeError), coldstart.init():
        raise RuntimeError("init failed")
    assert gc.isenabled()


def test_a_collector_already_off_stays_off() -> None:
    gc.disable()
    with coldstart.init():
        pass
    assert not gc.isenabled()
