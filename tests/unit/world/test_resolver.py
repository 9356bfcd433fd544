"""Resolver decisions: identifier link, contradiction, the link / review / new bands, exclusions."""

from __future__ import annotations

import pytest

from fhir_platform.world.model import default_parameters
from fhir_platform.world.resolver import IDENTIFIER_CONFIDENCE, Candidate, Thresholds, contradicts, decide

from .conftest import features

MRN = "http://hospital.example/mrn"
PARAMS = default_parameters()


def cand(rid: str, entity: str, **kwargs) -> Candidate:
    return Candidate(rid, entity, features(**kwargs))


def test_no_candidates_is_a_new_entity() -> None:
    d = decide(features(), [], PARAMS)
    assert (d.outcome, d.entity_id, d.confidence, d.method) == ("new", None, 0.0, None)


def test_same_identifier_links_deterministically_even_with_weak_demographics() -> None:
    incoming = features(family="Smith", given="Jon", birth=None, gender=None, identifiers=[(MRN, "123", "MR")])
    stored = cand("Patient/a", "E1", family="Smith", given="John", birth="1980-04-12", identifiers=[(MRN, "123", "MR")])
    other = cand("Patient/b", "E2", family="Smith", given="John", birth="1980-04-12")
    d = decide(incoming, [other, stored], PARAMS)
    assert (d.outcome, d.entity_id, d.method, d.matched_record_id) == ("link", "E1", "identifier", "Patient/a")
    assert d.confidence >= IDENTIFIER_CONFIDENCE
    assert {e.comparison: e.level for e in d.evidence}["identifier"] == "exact"


def test_identifier_contradicted_by_demographics_is_not_linked_on_the_identifier() -> None:
    incoming = features(family="Nguyen", given="Mai", birth="1992-07-01", gender="female", identifiers=[(MRN, "123", "MR")])
    stored = cand("Patient/a", "E1", family="Smith", given="John", birth="1950-01-30", gender="male", identifiers=[(MRN, "123", "MR")])
    d = decide(incoming, [stored], PARAMS)
    assert d.outcome == "review"  # a human looks at two people sharing one MRN
    assert d.entity_id == "E1"
    assert d.method is None
    assert "contradict" in d.reason
    assert contradicts(d.evidence)


def test_contradiction_needs_two_demographic_fields_fully_disagreeing() -> None:
    incoming = features(family="Jones", given="Mary", birth="1980-04-12", gender="female", identifiers=[(MRN, "9", "MR")])
    married = cand("Patient/a", "E1", family="Smith", given="Mary", birth="1980-04-12", gender="female", identifiers=[(MRN, "9", "MR")])
    d = decide(incoming, [married], PARAMS)
    assert (d.outcome, d.method) == ("link", "identifier")  # a family name change alone does not contradict


def test_strong_demographic_match_links_probabilistically() -> None:
    incoming = features(family="Smith", given="Jon", birth="1980-04-12", phone="555-010-0012", postal="2119")
    stored = cand("Patient/a", "E1", family="Smith", given="John", birth="1980-04-12", phone="(555) 010-0012", postal="2119")
    d = decide(incoming, [stored], PARAMS)
    assert (d.outcome, d.entity_id, d.method) == ("link", "E1", "probabilistic")
    assert d.confidence >= 0.95
    explained = d.explain()
    assert explained["outcome"] == "link"
    assert {e["field"]: e["level"] for e in explained["evidence"]}["given_name"] == "jaro_winkler_92"


def test_review_band_and_below() -> None:
    incoming = features(family="Smith", given="John", birth="1980-04-12", gender="male")
    stored = cand("Patient/a", "E1", family="Smith", given="John", birth="1980-04-12", gender="male")
    p = decide(incoming, [stored], PARAMS).confidence
    # the same pair, three threshold settings
    assert decide(incoming, [stored], PARAMS, Thresholds(link=min(1.0, p + 1e-9), review=p - 0.01)).outcome == "review"
    assert decide(incoming, [stored], PARAMS, Thresholds(link=1.0, review=min(1.0, p + 1e-9))).outcome == "new"
    assert decide(incoming, [stored], PARAMS, Thresholds(link=p, review=0.5)).outcome == "link"
    d = decide(incoming, [stored], PARAMS, Thresholds(link=1.0, review=min(1.0, p + 1e-9)))
    assert d.entity_id is None and d.confidence == pytest.approx(p)


def test_weak_match_is_a_new_entity_with_default_thresholds() -> None:
    incoming = features(family="Smith", given="John", birth="1980-04-12")
    stranger = cand("Patient/a", "E1", family="Smith", given="Peter", birth="1962-11-03")
    d = decide(incoming, [stranger], PARAMS)
    assert d.outcome == "new" and d.confidence < 0.5


def test_best_entity_wins_and_an_entity_scores_its_best_record() -> None:
    incoming = features(family="Smith", given="John", birth="1980-04-12", postal="2119")
    weak = cand("Patient/a", "E1", family="Smith", given="Peter", birth="1980-04-12")
    strong_other_record = cand("Patient/c", "E2", family="Smith", given="John", birth="1980-04-12", postal="2119")
    weak_same_entity = cand("Patient/b", "E2", family="Smyth", given="J", birth="1980")
    d = decide(incoming, [weak, weak_same_entity, strong_other_record], PARAMS)
    assert (d.entity_id, d.matched_record_id) == ("E2", "Patient/c")
    assert [s.entity_id for s in d.ranked] == ["E2", "E1"]


def test_excluded_entities_are_never_linked_or_proposed() -> None:
    incoming = features(family="Smith", given="John", birth="1980-04-12", identifiers=[(MRN, "1", "MR")])
    stored = cand("Patient/a", "E1", family="Smith", given="John", birth="1980-04-12", identifiers=[(MRN, "1", "MR")])
    d = decide(incoming, [stored], PARAMS, exclude_entities={"E1"})
    assert (d.outcome, d.entity_id) == ("new", None)


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError):
        Thresholds(link=0.5, review=0.9)


# --- household guards --------------------------------------------------------------------------

HOME = dict(phone="555-010-0012", line="12 Wallaby Street", city="Easton", postal="02334")


def test_a_spouse_sharing_the_household_is_never_linked_or_proposed() -> None:
    head = cand("Patient/a", "E1", family="Smith", given="John", birth="1970-02-03", gender="male", **HOME)
    spouse = features(family="Smith", given="Mary", birth="1972-09-30", gender="female", **HOME)
    d = decide(spouse, [head], PARAMS)
    assert d.outcome == "new" and d.entity_id is None
    assert "contradict" in d.reason


def test_a_twin_is_held_for_review_not_linked() -> None:
    twin_a = cand("Patient/a", "E1", family="Smith", given="John", birth="1990-05-06", gender="male", **HOME)
    twin_b = features(family="Smith", given="Peter", birth="1990-05-06", gender="male", **HOME)
    d = decide(twin_b, [twin_a], PARAMS)
    assert d.confidence >= 0.95  # the model alone would link: household fields add up
    assert d.outcome == "review" and d.method is None
    assert "given names differ" in d.reason
    # the guard is a per-workspace setting
    assert decide(twin_b, [twin_a], PARAMS, Thresholds(identity_guard=False)).outcome == "link"


def test_father_and_son_of_one_name_are_held_for_review() -> None:
    senior = cand("Patient/a", "E1", family="Smith", given="John", birth="1950-01-30", gender="male", **HOME)
    junior = features(family="Smith", given="John", birth="1981-11-12", gender="male", **HOME)
    d = decide(junior, [senior], PARAMS)
    assert d.outcome == "review" and "birth dates differ" in d.reason


def test_an_identifier_one_edit_apart_vouches_over_a_different_given_name() -> None:
    a = cand("Patient/a", "E1", family="Smith", given="John", birth="1990-05-06", identifiers=[(MRN, "1804974", "MR")], **HOME)
    b = features(family="Smith", given="Jack", birth="1990-05-06", identifiers=[(MRN, "1804947", "MR")], **HOME)
    d = decide(b, [a], PARAMS)
    assert (d.outcome, d.method) == ("link", "probabilistic")


def test_a_contradicted_stranger_does_not_hide_the_real_match() -> None:
    spouse = cand("Patient/a", "E1", family="Smith", given="Mary", birth="1972-09-30", gender="female", **HOME)
    own_record = cand("Patient/b", "E2", family="Smith", given="Jon", birth="1970-02-03", gender="male")
    d = decide(features(family="Smith", given="John", birth="1970-02-03", gender="male", **HOME), [spouse, own_record], PARAMS)
    assert (d.outcome, d.entity_id) == ("link", "E2")


def test_a_name_alone_is_never_enough_to_link() -> None:
    """Two records that share only a name (and gender) — nothing else is known on both sides, or it
    differs — wait for a reviewer, however rare the name: the model alone would link them."""
    known = cand("Patient/a", "E1", family="Quillfeather", given="Ottoline", gender="female", birth=None)
    incoming = features(family="Quillfeather", given="Ottoline", gender="female", birth=None)
    d = decide(incoming, [known], PARAMS)
    assert d.confidence >= 0.95  # a rare full name outweighs the prior
    assert d.outcome == "review" and "only the name agrees" in d.reason
    # one more agreeing field (a birth date) is evidence enough
    born = cand("Patient/a", "E1", family="Quillfeather", given="Ottoline", gender="female", birth="1971-03-04")
    assert decide(features(family="Quillfeather", given="Ottoline", gender="female", birth="1971-03-04"), [born], PARAMS).outcome == "link"
    assert decide(incoming, [known], PARAMS, Thresholds(identity_guard=False)).outcome == "link"
