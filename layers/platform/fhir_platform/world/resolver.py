"""One incoming Patient and its candidates → link, review or new entity, with confidence and evidence.

Pure rules: the caller gives the incoming record's features and its candidates (stored records with
their entity ids, found by :mod:`~fhir_platform.world.blocking`); :func:`decide` returns a
:class:`Decision`. Storage of the outcome (link items, candidate items, history) is the caller's.

The Fellegi–Sunter probability assumes fields agree independently. They do not within a
household: a spouse, child or twin shares family name, phone and address with the patient, and
those agreements add up to more than the disagreeing given name and birth date take away. So two
demographic guards sit on top of the model (both measured on the perturbed Synthea-shaped
population in ``bench/world_accuracy.py``, where without them most automatic links at ≥ 0.9 were
household members):

- **contradiction**: ≥ 2 of family name, given name, birth date and gender are known on both sides
  and reach their ``else`` level (no exact, alias, swapped, fuzzy, phonetic or partial agreement);
- **identity doubt**: the given names, or the birth dates, are known on both sides and reach
  ``else`` — twins, siblings, a parent and child of one name (Jr./Sr.); or a nickname, which a
  reviewer can accept — unless an identifier of the same system agrees exactly or within one edit;
  and **name only**: nothing but the names (and gender) agrees — every other field is missing on a
  side or differs — however rare the name.

Rules, in order:

1. **Identifier.** A candidate sharing a strong identifier (MRN or national identifier: same system
   and value) links deterministically — ``method="identifier"``, confidence
   ``max(p, IDENTIFIER_CONFIDENCE)`` where ``p`` is the pair's model probability — unless the
   demographics contradict it. A contradicted identifier match is never linked automatically,
   whatever its probability (a child registered on a parent's MRN shares the identifier *and* the
   household): it is proposed for review (new entity + open candidate) with the contradiction in
   its reason.
2. **Probabilistic.** Otherwise candidates are scored; an entity scores the best of its records.
   Candidates whose demographics contradict (without a shared identifier) are never linked or
   proposed: they are other members of a household. With the best remaining entity's probability
   ``p``: ``p ≥ link`` → link (``method="probabilistic"``) unless there is an identity doubt, which
   caps it at review; ``review ≤ p < link`` → a new entity plus an open match candidate with that
   entity; ``p < review`` → a new entity.
3. Entities the caller excludes (a reviewer rejected the pair; a manual split pinned them apart)
   are never linked or proposed.

The default thresholds are link **0.95** and review **0.50** (:class:`Thresholds`; configurable per
workspace). Measured: links made at confidence ≥ 0.9 are ≥ 99 % correct on held-out FEBRL and on the
perturbed population (``docs/world-model.md``, ``tests/unit/world/test_calibration.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir_platform.world.comparators import NULL, PATIENT_COMPARISONS, Comparison
from fhir_platform.world.features import PatientFeatures
from fhir_platform.world.model import FieldEvidence, Parameters, Score, score_pair

__all__ = ["Candidate", "Decision", "Thresholds", "decide", "contradicts"]

IDENTIFIER_CONFIDENCE = 0.99
_DEMOGRAPHIC_FIELDS = ("family_name", "given_name", "birth_date", "gender")
_CONTRADICTING_FIELDS = 2


@dataclass(frozen=True)
class Thresholds:
    """Per-workspace decision settings. ``identity_guard`` (default on) caps probabilistic links
    with an identity doubt at review; turning it off trades false merges of twins and namesakes
    in a household for fewer reviews (FEBRL, which has no households, gains recall)."""

    link: float = 0.95
    review: float = 0.50
    identity_guard: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= self.link <= 1.0:
            raise ValueError("thresholds must satisfy 0 <= review <= link <= 1")


@dataclass(frozen=True)
class Candidate:
    record_id: str  # e.g. "Patient/123"
    entity_id: str
    features: PatientFeatures


@dataclass(frozen=True)
class ScoredCandidate:
    entity_id: str
    record_id: str
    probability: float
    match_weight: float
    evidence: tuple[FieldEvidence, ...]
    shared_identifier: bool = False
    contradicted: bool = False  # demographics contradict (see :func:`contradicts`)
    doubt: str | None = None  # see :func:`identity_doubt`

    @property
    def identifier_link(self) -> bool:
        return self.shared_identifier and not self.contradicted


@dataclass(frozen=True)
class Decision:
    outcome: str  # "link" | "review" | "new"
    entity_id: str | None  # the existing entity linked to ("link"), or proposed ("review"); None for "new"
    confidence: float  # match probability of the chosen / best candidate; 0.0 without candidates
    method: str | None  # "identifier" | "probabilistic" for a link; None otherwise
    evidence: tuple[FieldEvidence, ...] = ()
    matched_record_id: str | None = None  # the best candidate's record (its evidence), linked or not
    reason: str = ""
    ranked: tuple[ScoredCandidate, ...] = field(default_factory=tuple)

    def explain(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "entity_id": self.entity_id,
            "confidence": round(self.confidence, 6),
            "method": self.method,
            "matched_record_id": self.matched_record_id,
            "reason": self.reason,
            "evidence": [e.to_dict() for e in self.evidence],
        }


def contradicts(evidence: Sequence[FieldEvidence]) -> bool:
    """Demographics contradict a pair when ≥ 2 of family, given, birth date, gender are known on
    both sides and fully disagree (``else`` level)."""
    levels = {e.comparison: e.level for e in evidence}
    return sum(1 for f in _DEMOGRAPHIC_FIELDS if levels.get(f) == "else") >= _CONTRADICTING_FIELDS


_VOUCHING_IDENTIFIER_LEVELS = frozenset({"exact", "one_edit"})
# a name (and a gender) is not enough to say two records are one person: without one more agreeing
# field (birth date, phone, email, address, identifier) a link waits for a reviewer
_NAME_ONLY_FIELDS = frozenset({"family_name", "given_name", "gender"})


def identity_doubt(evidence: Sequence[FieldEvidence]) -> str | None:
    """Why a probabilistic link must wait for a reviewer, or ``None``: the given names, or the
    birth dates, are known on both sides and fully disagree (``else``) — twins, siblings, a parent
    and child of one name (Jr./Sr.) share everything else in a household — unless an identifier of
    the same system agrees exactly or within one edit (different people's identifiers do not)."""
    levels = {e.comparison: e.level for e in evidence}
    if levels.get("identifier") in _VOUCHING_IDENTIFIER_LEVELS:
        return None
    if levels.get("given_name") == "else":
        return "given names differ"
    if levels.get("birth_date") == "else":
        return "birth dates differ"
    if not any(level not in (NULL, "else") for field, level in levels.items() if field not in _NAME_ONLY_FIELDS):
        return "only the name agrees"
    return None


def _shares_identifier(a: PatientFeatures, b: PatientFeatures) -> bool:
    keys = {i.key for i in a.strong_identifiers}
    return any(i.key in keys for i in b.strong_identifiers)


def score_candidates(
    incoming: PatientFeatures,
    candidates: Sequence[Candidate],
    params: Parameters,
    comparisons: Sequence[Comparison] = PATIENT_COMPARISONS,
    exclude_entities: Collection[str] = (),
) -> list[ScoredCandidate]:
    """Each candidate entity's best-scoring record, best first (ties: entity id, for determinism)."""
    best: dict[str, ScoredCandidate] = {}
    for cand in candidates:
        if cand.entity_id in exclude_entities:
            continue
        s: Score = score_pair(incoming, cand.features, params, comparisons)
        shared = _shares_identifier(incoming, cand.features)
        sc = ScoredCandidate(
            cand.entity_id, cand.record_id, s.probability, s.match_weight, s.evidence,
            shared, contradicts(s.evidence), identity_doubt(s.evidence),
        )
        prev = best.get(cand.entity_id)
        if prev is None or _rank(sc) < _rank(prev):
            best[cand.entity_id] = sc
    return sorted(best.values(), key=lambda s: (_rank(s), s.entity_id))


def _rank(s: ScoredCandidate) -> tuple[int, float]:
    """Identifier links first, then candidates by weight, contradicted strangers last."""
    if s.identifier_link:
        tier = 0
    elif s.contradicted and not s.shared_identifier:
        tier = 2
    else:
        tier = 1
    return (tier, -s.match_weight)


def decide(
    incoming: PatientFeatures,
    candidates: Sequence[Candidate],
    params: Parameters,
    thresholds: Thresholds = Thresholds(),
    *,
    comparisons: Sequence[Comparison] = PATIENT_COMPARISONS,
    exclude_entities: Collection[str] = (),
) -> Decision:
    """Decide the entity of one incoming record given its candidates (see the module rules)."""
    ranked = score_candidates(incoming, candidates, params, comparisons, exclude_entities)
    viable = [c for c in ranked if c.shared_identifier or not c.contradicted]
    if not viable:
        reason = "no candidates" if not ranked else "every candidate's demographics contradict"
        best = ranked[0] if ranked else None
        return Decision("new", None, 0.0, None, best.evidence if best else (), best.record_id if best else None, reason, tuple(ranked))
    top = viable[0]
    if top.identifier_link:
        return Decision(
            "link", top.entity_id, max(top.probability, IDENTIFIER_CONFIDENCE), "identifier", top.evidence,
            top.record_id, "same strong identifier, demographics do not contradict", tuple(ranked),
        )
    notes = []
    if top.contradicted:
        notes.append("same strong identifier but demographics contradict")
    if top.doubt and thresholds.identity_guard:
        notes.append(top.doubt)
    prefix = "; ".join(notes) + ("; " if notes else "")
    p = top.probability
    doubt = top.doubt if thresholds.identity_guard else None
    if p >= thresholds.link and not top.contradicted and not doubt:
        reason = "match probability at or above the link threshold"
        return Decision("link", top.entity_id, p, "probabilistic", top.evidence, top.record_id, reason, tuple(ranked))
    if p >= thresholds.review or top.contradicted:
        band = "at or above the link threshold" if p >= thresholds.link else "in the review band" if p >= thresholds.review else "below the review threshold"
        reason = prefix + f"match probability {band}"
        return Decision("review", top.entity_id, p, None, top.evidence, top.record_id, reason, tuple(ranked))
    reason = "match probability below the review threshold"
    return Decision("new", None, p, None, top.evidence, top.record_id, reason, tuple(ranked))


def null_fields(evidence: Sequence[FieldEvidence]) -> list[str]:
    """Fields missing on either side (weighed 0)."""
    return [e.comparison for e in evidence if e.level == NULL]
