"""One incoming Patient and its candidates → link, review or new entity, with confidence and evidence.

Pure rules: the caller gives the incoming record's features and its candidates (stored records with
their entity ids, found by :mod:`~fhir_platform.world.blocking`); :func:`decide` returns a
:class:`Decision`. Storage of the outcome (link items, candidate items, history) is the caller's.

Rules, in order:

1. **Identifier.** A candidate sharing a strong identifier (MRN or national identifier: same
   system and value) links deterministically — ``method="identifier"``, confidence
   ``max(p, IDENTIFIER_CONFIDENCE)`` where ``p`` is the pair's model probability — *unless the
   demographics contradict it*: at least two of family name, given name, birth date and gender
   are known on both sides and reach their ``else`` level (no exact, fuzzy, phonetic, swapped or
   partial agreement at all). A contradicted identifier match is not linked on the identifier: it
   is decided by the model like any other candidate (the shared identifier still counts as one
   field's evidence, weighed against the disagreeing ones), and when the model would not link it,
   it is proposed for review (new entity + open candidate) whatever its probability — two records
   carrying one MRN is worth a human look.
2. **Probabilistic.** Otherwise every candidate is scored with the Fellegi–Sunter model; an entity
   scores the best of its records. With the best entity's probability ``p``:
   ``p ≥ link`` → link to it (``method="probabilistic"``); ``review ≤ p < link`` → a new entity
   plus an open match candidate with that entity; ``p < review`` → a new entity.
3. Entities the caller excludes (a reviewer rejected the pair; a manual split pinned them apart)
   are never linked or proposed.

The default thresholds are link **0.95** and review **0.50** (:class:`Thresholds`; configurable per
workspace). On FEBRL the links made at confidence ≥ 0.9 are ≥ 99 % correct (``docs/world-model.md``,
``tests/unit/world/test_calibration.py``).
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
    link: float = 0.95
    review: float = 0.50

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
    contradicted: bool = False


@dataclass(frozen=True)
class Decision:
    outcome: str  # "link" | "review" | "new"
    entity_id: str | None  # the existing entity linked to ("link"), or proposed ("review"); None for "new"
    confidence: float  # match probability of the chosen / best candidate; 0.0 without candidates
    method: str | None  # "identifier" | "probabilistic" for a link; None otherwise
    evidence: tuple[FieldEvidence, ...] = ()
    matched_record_id: str | None = None
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
        sc = ScoredCandidate(cand.entity_id, cand.record_id, s.probability, s.match_weight, s.evidence, shared, shared and contradicts(s.evidence))
        prev = best.get(cand.entity_id)
        if prev is None or _rank(sc) < _rank(prev):
            best[cand.entity_id] = sc
    return sorted(best.values(), key=lambda s: (_rank(s), s.entity_id))


def _rank(s: ScoredCandidate) -> tuple[int, float]:
    identifier_link = s.shared_identifier and not s.contradicted
    return (0 if identifier_link else 1, -s.match_weight)


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
    if not ranked:
        return Decision("new", None, 0.0, None, reason="no candidates")
    top = ranked[0]
    if top.shared_identifier and not top.contradicted:
        return Decision(
            "link",
            top.entity_id,
            max(top.probability, IDENTIFIER_CONFIDENCE),
            "identifier",
            top.evidence,
            top.record_id,
            "same strong identifier, demographics do not contradict",
            tuple(ranked),
        )
    why = "same strong identifier but demographics contradict; " if top.contradicted else ""
    if top.probability >= thresholds.link:
        reason = why + "match probability at or above the link threshold"
        return Decision("link", top.entity_id, top.probability, "probabilistic", top.evidence, top.record_id, reason, tuple(ranked))
    if top.probability >= thresholds.review or top.contradicted:
        reason = why + ("match probability in the review band" if top.probability >= thresholds.review else "match probability below the review threshold")
        return Decision("review", top.entity_id, top.probability, None, top.evidence, top.record_id, reason, tuple(ranked))
    reason = "match probability below the review threshold"
    return Decision("new", None, top.probability, None, top.evidence, top.record_id, reason, tuple(ranked))


def null_fields(evidence: Sequence[FieldEvidence]) -> list[str]:
    """Fields missing on either side (weighed 0)."""
    return [e.comparison for e in evidence if e.level == NULL]
