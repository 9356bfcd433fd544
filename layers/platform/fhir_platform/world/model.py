"""The Fellegi–Sunter model: comparison levels → match weights → match probability.

For each comparison *c* and level *l*:

- ``m[c][l]`` = P(the pair reaches level *l* | the two records are the same person),
- ``u[c][l]`` = P(the pair reaches level *l* | they are different people),

and the match weight of a level is ``log2(m / u)`` (Bayes factor in bits). A pair's score is the
prior log-odds ``log2(λ / (1 − λ))`` plus the weights of the levels it reached (a :data:`NULL`
level, a missing value, adds 0), and its match probability is ``2^W / (1 + 2^W)``. Estimated
parameters are Splink's model: ``λ`` is the probability that two random records match and u is
measured on random pairs (see :func:`estimate_parameters` for why that is also right for the
candidate pairs the resolver scores).

**Term frequencies.** An exact agreement on a common name (``smith``) is weaker evidence than on a
rare one (``zabinski``). For comparisons with a ``tf`` table, the exact level's weight is adjusted
by ``log2(u_exact / u_value)`` where ``u_value`` is the value's relative frequency among the
workspace's records (floored at ``tf_minimum_u``) — Splink's term-frequency adjustment.

Everything estimated lives in :class:`Parameters` (JSON round-trip), separate from the
comparisons (:mod:`~fhir_platform.world.comparators`) and from estimation (:func:`estimate_u`,
:func:`estimate_m_em`, :func:`estimate_parameters`). Scoring a pair is arithmetic over
precomputed weights.

**Priors for a new workspace** (:func:`default_parameters`, used until the first estimation at 100
records): a small candidate-pair model, λ = 0.1 (one candidate pair in ten is a match); m and
u per level from :data:`DEFAULT_M` / :data:`DEFAULT_U`, hand-set from the record-linkage
literature's typical values and checked against FEBRL (see ``docs/world-model.md``): exact name
agreement is common for matches (m ≈ 0.85) and, among candidates, not rare for non-matches
(u ≈ 0.05 for family, which blocking makes alike); a full birth date match is strong
(u ≈ 0.004); a shared phone or email very strong (u ≈ 0.001); gender weak (u = 0.5). Once the
workspace holds some hundred records, re-estimate (u from random pairs, m and λ by EM over
candidate pairs) and store the result: from then on λ and u are the all-pairs ones.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir_platform.world.comparators import NULL, PATIENT_COMPARISONS, Comparison
from fhir_platform.world.features import PatientFeatures

__all__ = [
    "DEFAULT_M",
    "DEFAULT_U",
    "FieldEvidence",
    "Parameters",
    "Score",
    "TermFrequencies",
    "default_parameters",
    "estimate_em",
    "estimate_parameters",
    "estimate_u",
    "score_pair",
    "score_vector",
    "term_frequencies",
]

_P_MIN = 1e-6  # no probability is ever 0 or 1: a weight stays finite

DEFAULT_M: dict[str, dict[str, float]] = {
    "family_name": {"exact": 0.85, "alias": 0.01, "swapped": 0.01, "jaro_winkler_92": 0.07, "jaro_winkler_85": 0.03, "phonetic": 0.01, "else": 0.02},
    "given_name": {"exact": 0.83, "alias": 0.02, "swapped": 0.01, "jaro_winkler_92": 0.07, "jaro_winkler_85": 0.03, "phonetic": 0.01, "else": 0.03},
    "birth_date": {"exact": 0.88, "transposed": 0.01, "one_digit": 0.06, "year": 0.02, "else": 0.03},
    "gender": {"exact": 0.97, "else": 0.03},
    "phone": {"exact": 0.8, "one_digit": 0.05, "else": 0.15},
    "email": {"exact": 0.85, "fuzzy": 0.05, "else": 0.1},
    "address_line": {"exact": 0.7, "fuzzy_90": 0.1, "fuzzy_75": 0.05, "else": 0.15},
    "city": {"exact": 0.85, "fuzzy": 0.05, "else": 0.1},
    "postal_code": {"exact": 0.85, "one_edit": 0.05, "else": 0.1},
    "identifier": {"exact": 0.9, "one_edit": 0.05, "two_edits": 0.01, "else": 0.04},
}
DEFAULT_U: dict[str, dict[str, float]] = {
    "family_name": {"exact": 0.05, "alias": 0.001, "swapped": 0.0005, "jaro_winkler_92": 0.01, "jaro_winkler_85": 0.02, "phonetic": 0.005, "else": 0.9135},
    "given_name": {"exact": 0.02, "alias": 0.002, "swapped": 0.0005, "jaro_winkler_92": 0.005, "jaro_winkler_85": 0.02, "phonetic": 0.005, "else": 0.9475},
    "birth_date": {"exact": 0.004, "transposed": 0.0002, "one_digit": 0.004, "year": 0.02, "else": 0.9718},
    "gender": {"exact": 0.5, "else": 0.5},
    "phone": {"exact": 0.001, "one_digit": 0.0005, "else": 0.9985},
    "email": {"exact": 0.001, "fuzzy": 0.0005, "else": 0.9985},
    "address_line": {"exact": 0.002, "fuzzy_90": 0.001, "fuzzy_75": 0.005, "else": 0.992},
    "city": {"exact": 0.05, "fuzzy": 0.01, "else": 0.94},
    "postal_code": {"exact": 0.02, "one_edit": 0.05, "else": 0.93},
    "identifier": {"exact": 0.0001, "one_edit": 0.0005, "two_edits": 0.002, "else": 0.9974},
}
DEFAULT_PRIOR = 0.1
DEFAULT_TF_MINIMUM_U = 0.0005


@dataclass
class TermFrequencies:
    """Relative frequency of each value of one name part among the workspace's records."""

    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    _average_u: float | None = field(default=None, repr=False, compare=False)

    def frequency(self, value: str) -> float | None:
        if self.total <= 0:
            return None
        # a value not counted yet is at least the incoming record's own: 1 of total + 1
        return self.counts.get(value, 1) / max(self.total, 1)

    def average_u(self) -> float | None:
        """Σ freq²: the probability that two random records have the same value (computed once)."""
        if self.total <= 0:
            return None
        if self._average_u is None:
            self._average_u = sum((n / self.total) ** 2 for n in self.counts.values())
        return self._average_u


@dataclass
class Parameters:
    """Everything the model has estimated; JSON-serialisable (:meth:`to_json` / :meth:`from_json`)."""

    prior: float
    m: dict[str, dict[str, float]]
    u: dict[str, dict[str, float]]
    tf: dict[str, TermFrequencies] = field(default_factory=dict)
    tf_minimum_u: float = DEFAULT_TF_MINIMUM_U
    version: int = 1
    trained_on: dict[str, Any] = field(default_factory=dict)  # how estimated: records, pairs, seed, iterations

    def weight(self, comparison: str, level: str) -> float:
        """``log2(m/u)`` of a level; 0 for :data:`NULL` or a level the parameters do not know."""
        if level == NULL:
            return 0.0
        m = self.m.get(comparison, {}).get(level)
        u = self.u.get(comparison, {}).get(level)
        if m is None or u is None:
            return 0.0
        return math.log2(max(m, _P_MIN) / max(u, _P_MIN))

    def tf_adjustment(self, comparison: Comparison, level: str, value: str | None) -> float:
        """Extra weight on an exact agreement for how rare (> 0) or common (< 0) the value is:
        ``log2(u_avg / u_value)`` where ``u_value`` is the value's relative frequency (floored at
        ``tf_minimum_u``) and ``u_avg = Σ freq²`` the chance two random records share *some* value —
        the u the exact level would have among random pairs. So the average value gets no
        adjustment, whatever the candidate-pair u the exact level's own weight uses."""
        if level != "exact" or comparison.tf is None or value is None:
            return 0.0
        table = self.tf.get(comparison.tf)
        if table is None:
            return 0.0
        freq, u_avg = table.frequency(value), table.average_u()
        if freq is None or not u_avg:
            return 0.0
        return math.log2(u_avg / max(freq, self.tf_minimum_u))

    @property
    def prior_weight(self) -> float:
        p = min(max(self.prior, _P_MIN), 1 - _P_MIN)
        return math.log2(p / (1 - p))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "prior": self.prior,
            "m": self.m,
            "u": self.u,
            "tf": {k: {"total": t.total, "counts": t.counts} for k, t in self.tf.items()},
            "tf_minimum_u": self.tf_minimum_u,
            "trained_on": self.trained_on,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Parameters:
        return cls(
            prior=float(data["prior"]),
            m={c: {lv: float(p) for lv, p in levels.items()} for c, levels in data["m"].items()},
            u={c: {lv: float(p) for lv, p in levels.items()} for c, levels in data["u"].items()},
            tf={k: TermFrequencies(int(t["total"]), {v: int(n) for v, n in t["counts"].items()}) for k, t in (data.get("tf") or {}).items()},
            tf_minimum_u=float(data.get("tf_minimum_u", DEFAULT_TF_MINIMUM_U)),
            version=int(data.get("version", 1)),
            trained_on=dict(data.get("trained_on") or {}),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Parameters:
        return cls.from_dict(json.loads(text))

    def describe(self, comparisons: Sequence[Comparison] = PATIENT_COMPARISONS) -> list[dict[str, Any]]:
        """The model as a table: comparison, level, m, u, weight (for docs and review screens)."""
        rows = []
        for c in comparisons:
            for level in c.level_names:
                rows.append(
                    {
                        "comparison": c.name,
                        "level": level,
                        "m": self.m.get(c.name, {}).get(level),
                        "u": self.u.get(c.name, {}).get(level),
                        "weight": round(self.weight(c.name, level), 2),
                    }
                )
        return rows


def default_parameters() -> Parameters:
    """The documented priors a new workspace starts with (a fresh copy)."""
    return Parameters(
        prior=DEFAULT_PRIOR,
        m={c: dict(levels) for c, levels in DEFAULT_M.items()},
        u={c: dict(levels) for c, levels in DEFAULT_U.items()},
        trained_on={"source": "default priors"},
    )


# --- scoring -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldEvidence:
    comparison: str
    level: str
    weight: float  # log2(m/u) of the level, plus the term-frequency adjustment when one applied
    tf_adjustment: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.comparison, "level": self.level, "weight": round(self.weight, 3)}
        if self.tf_adjustment:
            out["tf_adjustment"] = round(self.tf_adjustment, 3)
        return out


@dataclass(frozen=True)
class Score:
    probability: float
    match_weight: float  # prior log-odds + Σ field weights, in bits
    evidence: tuple[FieldEvidence, ...]

    def explain(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.evidence]


def _probability(weight: float) -> float:
    if weight > 60:
        return 1.0 - 2.0**-weight
    if weight < -60:
        return 2.0**weight
    odds = 2.0**weight
    return odds / (1.0 + odds)


def score_vector(
    vector: dict[str, str],
    params: Parameters,
    comparisons: Sequence[Comparison] = PATIENT_COMPARISONS,
    tf_values: dict[str, str | None] | None = None,
) -> Score:
    """Score a comparison vector (comparison → level); ``tf_values`` gives, per comparison with a
    term-frequency table, the value both sides agreed on exactly."""
    total = params.prior_weight
    evidence = []
    for c in comparisons:
        level = vector.get(c.name, NULL)
        w = params.weight(c.name, level)
        adj = params.tf_adjustment(c, level, (tf_values or {}).get(c.name))
        total += w + adj
        evidence.append(FieldEvidence(c.name, level, w + adj, adj))
    return Score(_probability(total), total, tuple(evidence))


def score_pair(
    a: PatientFeatures,
    b: PatientFeatures,
    params: Parameters,
    comparisons: Sequence[Comparison] = PATIENT_COMPARISONS,
) -> Score:
    """Compare two records field by field and score the pair, with per-field evidence."""
    vector = {c.name: c.compare(a, b) for c in comparisons}
    tf_values = {c.name: c.tf_value(a) for c in comparisons if c.tf and vector[c.name] == "exact"}
    return score_vector(vector, params, comparisons, tf_values)


# --- estimation ----------------------------------------------------------------------------------


MAX_TF_VALUES = 5000  # per table: keeps the stored parameters well under one 400 KB DynamoDB item


def term_frequencies(
    records: Iterable[PatientFeatures],
    comparisons: Sequence[Comparison] = PATIENT_COMPARISONS,
    max_values: int = MAX_TF_VALUES,
) -> dict[str, TermFrequencies]:
    """Value counts of every term-frequency comparison's value over ``records``: the
    ``max_values`` most common values of each table are kept (``total`` still counts every
    record); a value not kept is treated as seen once, i.e. rare — the values cut are the rarest."""
    tables: dict[str, Counter[str]] = {c.tf: Counter() for c in comparisons if c.tf}
    totals: Counter[str] = Counter()
    for r in records:
        for c in comparisons:
            if c.tf:
                v = c.tf_value(r)
                if v:
                    tables[c.tf][v] += 1
                    totals[c.tf] += 1
    return {k: TermFrequencies(totals[k], dict(t.most_common(max_values))) for k, t in tables.items()}


def _level_counts(
    vectors: Iterable[dict[str, str]], comparisons: Sequence[Comparison], weights: Iterable[float] | None = None
) -> dict[str, dict[str, float]]:
    counts = {c.name: {lv: 0.0 for lv in c.level_names} for c in comparisons}
    for vector, w in zip(vectors, weights if weights is not None else _ones()):
        for c in comparisons:
            level = vector.get(c.name, NULL)
            if level != NULL:
                counts[c.name][level] += w
    return counts


def _ones() -> Iterable[float]:
    while True:
        yield 1.0


PRIOR_STRENGTH = 10.0  # pseudo-pairs of the documented priors mixed into every estimate


def _posterior(
    counts: dict[str, dict[str, float]], prior: dict[str, dict[str, float]], strength: float
) -> dict[str, dict[str, float]]:
    """Level probabilities from (weighted) counts, with ``strength`` pseudo-pairs distributed as
    ``prior`` (a Dirichlet prior: the MAP-style estimate). A comparison the data never reaches (no
    phone numbers in the workspace yet) keeps its prior instead of a meaningless uniform guess; a
    level never observed keeps a small, non-zero probability; with many pairs the data dominates."""
    out = {}
    for c, levels in counts.items():
        base = prior.get(c) or {lv: 1.0 / len(levels) for lv in levels}
        total = sum(levels.values()) + strength
        out[c] = {lv: (n + strength * base.get(lv, 0.0) + 1e-9) / (total + 1e-9 * len(levels)) for lv, n in levels.items()}
    return out


def estimate_u(
    records: Sequence[PatientFeatures],
    *,
    pairs: int = 20000,
    seed: int = 0,
    comparisons: Sequence[Comparison] = PATIENT_COMPARISONS,
    prior_strength: float = PRIOR_STRENGTH,
) -> dict[str, dict[str, float]]:
    """u per level from random pairs: almost every random pair is two different people, so the
    level frequencies among them estimate P(level | non-match). Deterministic for a seed. Mixed
    with ``prior_strength`` pseudo-pairs of :data:`DEFAULT_U` (see :func:`_posterior`)."""
    n = len(records)
    if n < 2:
        raise ValueError("u needs at least two records")
    rng = random.Random(seed)
    vectors = []
    for _ in range(pairs):
        i, j = rng.sample(range(n), 2)
        vectors.append({c.name: c.compare(records[i], records[j]) for c in comparisons})
    return _posterior(_level_counts(vectors, comparisons), DEFAULT_U, prior_strength)


@dataclass(frozen=True)
class EMResult:
    prior: float
    m: dict[str, dict[str, float]]
    u: dict[str, dict[str, float]]
    iterations: int
    converged: bool


MIN_EM_PAIRS = 200  # fewer candidate pairs than this: keep the prior m and λ (EM would over-fit)


def estimate_em(
    vectors: Sequence[dict[str, str]],
    start: Parameters,
    *,
    comparisons: Sequence[Comparison] = PATIENT_COMPARISONS,
    max_iterations: int = 200,
    tolerance: float = 1e-5,
    prior_strength: float = PRIOR_STRENGTH,
    fix_u: bool = False,
    all_pairs: float | None = None,
) -> EMResult:
    """λ and m (and u unless ``fix_u``) by expectation maximisation over comparison vectors.

    E-step: each pair's match probability under the current (λ, m, u). M-step: λ = Σ probability /
    ``all_pairs`` (default: the number of vectors); m[c][l] = probability-weighted share of level l
    among the pairs where c is not null; u likewise weighted by 1 − probability, unless fixed. Each
    M-step mixes in ``prior_strength`` pseudo-pairs: of :data:`DEFAULT_M` for m, of ``start.u`` for
    u — so levels the data never reaches keep sensible values. Deterministic; stops when no
    parameter moves by more than ``tolerance`` or after ``max_iterations``.

    :func:`estimate_parameters` runs it over the blocked candidate pairs with u fixed at its
    random-pair value and ``all_pairs`` = every pair of records (the pairs blocking left out are
    taken as non-matches), which is Splink's model: λ is the probability that two random records
    match."""
    if not vectors:
        raise ValueError("EM needs candidate pairs")
    params = Parameters(prior=start.prior, m={c: dict(v) for c, v in start.m.items()}, u={c: dict(v) for c, v in start.u.items()})
    u_prior = params.u
    iterations, converged = 0, False
    for iterations in range(1, max_iterations + 1):
        probs = [score_vector(v, params, comparisons).probability for v in vectors]
        denominator = all_pairs if all_pairs else len(probs)
        prior = min(max(sum(probs) / denominator, 1e-9), 0.9999)
        m = _posterior(_level_counts(vectors, comparisons, probs), DEFAULT_M, prior_strength)
        u = u_prior if fix_u else _posterior(_level_counts(vectors, comparisons, [1.0 - p for p in probs]), u_prior, prior_strength)
        delta = abs(prior - params.prior)
        for new, old in ((m, params.m), (u, params.u)):
            for c, levels in new.items():
                for lv, p in levels.items():
                    delta = max(delta, abs(p - old.get(c, {}).get(lv, 0.0)))
        params = Parameters(prior=prior, m=m, u=u)
        if delta < tolerance:
            converged = True
            break
    return EMResult(params.prior, params.m, params.u, iterations, converged)


def estimate_parameters(
    records: Sequence[PatientFeatures],
    candidate_pairs: Sequence[tuple[int, int]],
    *,
    seed: int = 0,
    u_pairs: int = 20000,
    comparisons: Sequence[Comparison] = PATIENT_COMPARISONS,
    start: Parameters | None = None,
) -> Parameters:
    """The whole estimation for a workspace:

    1. term frequencies from every record;
    2. u from ``u_pairs`` random pairs (:func:`estimate_u`), then **fixed**;
    3. λ and m by EM over the blocked ``candidate_pairs`` (indexes into ``records``), λ as the
       probability that two *random* records match (denominator: every pair of records).

    Why fixed u and an all-pairs λ: P(match | comparison vector) does not depend on blocking when
    the blocking keys are functions of the compared fields, so the all-pairs model gives candidate
    pairs their right probability. Letting u float among candidates instead (tried first) made EM
    learn "same household" or "same name" as its match class on realistic data (precision of links
    at ≥ 0.9 fell to 98.5 % on 10,000 perturbed people; 99.7 % with this estimation).

    With fewer than :data:`MIN_EM_PAIRS` candidate pairs, EM is skipped: λ and m stay those of
    ``start`` (default: the priors) and u is the random-pair estimate. Refresh by calling it again
    as the workspace grows, starting from the stored parameters."""
    start = start or default_parameters()
    u_random = estimate_u(records, pairs=u_pairs, seed=seed, comparisons=comparisons)
    trained: dict[str, Any] = {"records": len(records), "candidate_pairs": len(candidate_pairs), "u_pairs": u_pairs, "seed": seed}
    tf = term_frequencies(records, comparisons)
    if len(candidate_pairs) < MIN_EM_PAIRS:
        trained["em"] = "skipped: too few candidate pairs"
        return Parameters(prior=start.prior, m={c: dict(v) for c, v in start.m.items()}, u=u_random, tf=tf, trained_on=trained)
    n = len(records)
    all_pairs = n * (n - 1) / 2
    vectors = [{c.name: c.compare(records[i], records[j]) for c in comparisons} for i, j in candidate_pairs]
    first = Parameters(prior=min(start.prior, 1.0 / n), m=start.m, u=u_random)
    em = estimate_em(vectors, first, comparisons=comparisons, fix_u=True, all_pairs=all_pairs)
    trained.update(em_iterations=em.iterations, em_converged=em.converged, all_pairs=all_pairs)
    return Parameters(prior=em.prior, m=em.m, u=u_random, tf=tf, trained_on=trained)
