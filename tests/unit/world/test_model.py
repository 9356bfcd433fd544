"""Fellegi–Sunter scoring, explanation, parameters as data, and estimation (u, EM, term frequencies)."""

from __future__ import annotations

import math
import random

import pytest

from fhir_platform.world.comparators import NULL, PATIENT_COMPARISONS, comparison_by_name
from fhir_platform.world.model import (
    DEFAULT_M,
    DEFAULT_U,
    Parameters,
    TermFrequencies,
    default_parameters,
    estimate_em,
    estimate_parameters,
    estimate_u,
    score_pair,
    score_vector,
    term_frequencies,
)

from .conftest import features


def test_default_parameters_cover_every_level_and_are_distributions() -> None:
    for c in PATIENT_COMPARISONS:
        for table in (DEFAULT_M, DEFAULT_U):
            assert set(table[c.name]) == set(c.level_names), c.name
            assert math.isclose(sum(table[c.name].values()), 1.0, abs_tol=1e-9), c.name


def test_score_is_prior_plus_sum_of_level_weights() -> None:
    params = default_parameters()
    vector = {c.name: NULL for c in PATIENT_COMPARISONS}
    vector.update(family_name="exact", birth_date="exact", gender="else")
    s = score_vector(vector, params)
    expected = (
        math.log2(0.1 / 0.9)
        + math.log2(DEFAULT_M["family_name"]["exact"] / DEFAULT_U["family_name"]["exact"])
        + math.log2(DEFAULT_M["birth_date"]["exact"] / DEFAULT_U["birth_date"]["exact"])
        + math.log2(DEFAULT_M["gender"]["else"] / DEFAULT_U["gender"]["else"])
    )
    assert s.match_weight == pytest.approx(expected)
    assert s.probability == pytest.approx(2**expected / (1 + 2**expected))


def test_missing_field_weighs_zero_and_explanation_names_each_field() -> None:
    params = default_parameters()
    a = features(family="Smith", given="John", birth="1980-04-12", gender=None)
    b = features(family="Smith", given="Jon", birth="1980-04-12", gender="male")
    s = score_pair(a, b, params)
    explained = {e["field"]: e for e in s.explain()}
    assert explained["gender"] == {"field": "gender", "level": "null", "weight": 0.0}
    assert explained["given_name"]["level"] == "jaro_winkler_92"
    assert explained["given_name"]["weight"] > 0
    assert set(explained) == {c.name for c in PATIENT_COMPARISONS}
    assert sum(e.weight for e in s.evidence) + params.prior_weight == pytest.approx(s.match_weight)


def test_agreement_raises_and_disagreement_lowers_the_probability() -> None:
    params = default_parameters()
    base = dict(family="Smith", given="John", birth="1980-04-12")
    same = score_pair(features(**base), features(**base), params).probability
    other_dob = score_pair(features(**base), features(**{**base, "birth": "1955-01-30"}), params).probability
    assert same > 0.99
    assert other_dob < same


def test_term_frequency_adjustment_rare_names_weigh_more_than_common_ones() -> None:
    records = [features(family="Smith", given=f"g{i}") for i in range(50)] + [features(family=f"rare{i}", given="x") for i in range(50)]
    params = default_parameters()
    params.tf = term_frequencies(records)
    smith = score_pair(features(family="Smith"), features(family="Smith"), params)
    rare = score_pair(features(family="rare7"), features(family="rare7"), params)
    w_smith = next(e for e in smith.evidence if e.comparison == "family_name")
    w_rare = next(e for e in rare.evidence if e.comparison == "family_name")
    assert w_smith.tf_adjustment < 0 < w_rare.tf_adjustment
    assert rare.probability > smith.probability
    # no adjustment on levels other than exact
    assert params.tf_adjustment(comparison_by_name("family_name"), "jaro_winkler_92", "smith") == 0.0


def test_term_frequencies_average_value_is_not_adjusted() -> None:
    table = TermFrequencies(4, {"a": 2, "b": 2})  # two equally common values
    params = default_parameters()
    params.tf = {"family_name": table}
    assert params.tf_adjustment(comparison_by_name("family_name"), "exact", "a") == pytest.approx(0.0)


def test_parameters_round_trip_through_json() -> None:
    params = default_parameters()
    params.tf = term_frequencies([features(family="Smith"), features(family="Jones")])
    again = Parameters.from_json(params.to_json())
    assert again.to_dict() == params.to_dict()
    a, b = features(family="Smith", given="Jon"), features(family="Smith", given="John")
    assert score_pair(a, b, again).match_weight == pytest.approx(score_pair(a, b, params).match_weight)


def test_describe_lists_every_level_with_its_weight() -> None:
    rows = default_parameters().describe()
    assert len(rows) == sum(len(c.levels) for c in PATIENT_COMPARISONS)
    row = next(r for r in rows if r["comparison"] == "birth_date" and r["level"] == "exact")
    assert row["weight"] == round(math.log2(0.88 / 0.004), 2)


# --- estimation ----------------------------------------------------------------------------------

_TRUE_M = {
    "family_name": {"exact": 0.8, "jaro_winkler_92": 0.15, "else": 0.05},
    "given_name": {"exact": 0.75, "jaro_winkler_92": 0.15, "else": 0.1},
    "birth_date": {"exact": 0.85, "one_digit": 0.1, "else": 0.05},
    "postal_code": {"exact": 0.9, "else": 0.1},
}
_TRUE_U = {
    "family_name": {"exact": 0.1, "jaro_winkler_92": 0.1, "else": 0.8},
    "given_name": {"exact": 0.05, "jaro_winkler_92": 0.1, "else": 0.85},
    "birth_date": {"exact": 0.02, "one_digit": 0.08, "else": 0.9},
    "postal_code": {"exact": 0.2, "else": 0.8},
}


def _draw(rng: random.Random, dist: dict[str, float]) -> str:
    x, acc = rng.random(), 0.0
    for level, p in dist.items():
        acc += p
        if x < acc:
            return level
    return level


def test_em_recovers_m_u_and_lambda_on_synthetic_pairs() -> None:
    rng = random.Random(7)
    comps = [comparison_by_name(n) for n in _TRUE_M]
    vectors = []
    for _ in range(6000):
        match = rng.random() < 0.3
        table = _TRUE_M if match else _TRUE_U
        vectors.append({c: _draw(rng, table[c]) for c in table})
    start = default_parameters()
    em = estimate_em(vectors, start, comparisons=comps)
    assert em.converged
    assert em.prior == pytest.approx(0.3, abs=0.02)
    for c in _TRUE_M:
        for level, p in _TRUE_M[c].items():
            assert em.m[c][level] == pytest.approx(p, abs=0.04), (c, level)
        for level, p in _TRUE_U[c].items():
            assert em.u[c][level] == pytest.approx(p, abs=0.04), (c, level)
    # levels never observed get a small smoothed probability, never 0
    assert 0 < em.m["family_name"]["phonetic"] < 0.001


def test_estimate_u_from_random_pairs_is_deterministic_for_a_seed() -> None:
    rng = random.Random(1)
    records = [features(family=rng.choice(["Smith", "Jones", "Brown", "Lee"]), given=f"n{i}") for i in range(200)]
    u1 = estimate_u(records, pairs=2000, seed=3)
    u2 = estimate_u(records, pairs=2000, seed=3)
    assert u1 == u2
    # four equally likely family names: about 1 in 4 random pairs agree exactly
    assert u1["family_name"]["exact"] == pytest.approx(0.25, abs=0.04)


def test_estimate_parameters_skips_em_on_too_few_pairs_and_records_how_it_was_trained() -> None:
    records = [features(family=f"f{i}", given="a") for i in range(20)]
    params = estimate_parameters(records, [(0, 1)], seed=1, u_pairs=500)
    assert params.trained_on["em"].startswith("skipped")
    assert params.m == default_parameters().m
    assert params.tf["family_name"].total == 20


def test_a_comparison_the_data_never_reaches_keeps_its_prior() -> None:
    # no phone numbers anywhere: phone m/u stay the documented priors, not a uniform guess
    rng = random.Random(2)
    records = [features(family=rng.choice(["Smith", "Jones"]), given=rng.choice(["Ann", "Bob", "Cy"]), birth=f"19{rng.randint(10, 99)}-01-01") for _ in range(120)]
    pairs = [(i, j) for i in range(120) for j in range(i + 1, 120) if records[i].family == records[j].family][:400]
    params = estimate_parameters(records, pairs, seed=1, u_pairs=2000)
    assert params.trained_on["em_converged"] is True
    for level in ("exact", "one_digit", "else"):
        assert params.m["phone"][level] == pytest.approx(DEFAULT_M["phone"][level], rel=1e-6)
        assert params.u["phone"][level] == pytest.approx(DEFAULT_U["phone"][level], rel=1e-6)


def test_term_frequency_table_keeps_the_most_common_values_within_its_cap() -> None:
    records = [features(family="Smith")] * 5 + [features(family="Jones")] * 3 + [features(family=f"r{i}") for i in range(4)]
    table = term_frequencies(records, max_values=2)["family_name"]
    assert table.counts == {"smith": 5, "jones": 3}
    assert table.total == 12
    assert table.frequency("r1") == 1 / 12  # cut values count as rare


def test_em_with_fixed_u_recovers_m_and_the_all_pairs_lambda_from_blocked_pairs() -> None:
    # all pairs: λ = 0.03; blocking keeps only the pairs whose family names agree exactly (a
    # function of the compared fields, as the real keys are). EM over the kept pairs, u fixed at
    # its all-pairs value and λ over all pairs, recovers λ × the blocking's recall and the m of the
    # comparisons blocking did not select on.
    rng = random.Random(9)
    comps = [comparison_by_name(n) for n in _TRUE_M]
    total, kept = 60000, []
    for _ in range(total):
        table = _TRUE_M if rng.random() < 0.03 else _TRUE_U
        v = {c: _draw(rng, table[c]) for c in table}
        if v["family_name"] == "exact":
            kept.append(v)
    start = default_parameters()
    start.u = {c: dict(v) for c, v in _TRUE_U.items()}
    em = estimate_em(kept, start, comparisons=comps, fix_u=True, all_pairs=total)
    assert em.u == start.u
    assert em.prior == pytest.approx(0.03 * _TRUE_M["family_name"]["exact"], rel=0.12)
    for c in ("given_name", "birth_date", "postal_code"):
        for level, p in _TRUE_M[c].items():
            assert em.m[c][level] == pytest.approx(p, abs=0.05), (c, level)
