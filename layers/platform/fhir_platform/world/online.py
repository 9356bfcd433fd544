"""Record-at-a-time resolution over an in-memory store: the reference for the DynamoDB one.

:class:`InMemoryWorld` does what the write path will do per Patient — features, blocking keys,
candidates from non-saturated keys, :func:`~fhir_platform.world.resolver.decide`, then store the
record, its keys and its entity — and can re-estimate its parameters from what it holds
(:meth:`InMemoryWorld.refresh_parameters`). The accuracy bench and the calibration tests run it on
FEBRL; nothing in the request path uses it.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir_platform.world.blocking import MAX_MEMBERS_PER_KEY, InMemoryBlockingIndex, blocking_keys
from fhir_platform.world.features import PatientFeatures, patient_features
from fhir_platform.world.model import Parameters, default_parameters, estimate_parameters
from fhir_platform.world.resolver import Candidate, Decision, Thresholds, decide

__all__ = ["InMemoryWorld"]


@dataclass
class InMemoryWorld:
    params: Parameters = field(default_factory=default_parameters)
    thresholds: Thresholds = field(default_factory=Thresholds)
    max_members_per_key: int = MAX_MEMBERS_PER_KEY
    features: dict[str, PatientFeatures] = field(default_factory=dict)
    entity_of: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)
    candidates_seen: list[int] = field(default_factory=list)  # candidates per resolved record
    # re-estimate the parameters when the store reaches this many records, then every time it has
    # grown ``refresh_growth``-fold (100, 300, 900, 2700, …); 0 turns refreshing off
    refresh_first: int = 100
    refresh_growth: int = 3
    seed: int = 0
    refreshes: list[int] = field(default_factory=list)  # record counts at which it re-estimated

    def __post_init__(self) -> None:
        self.index = InMemoryBlockingIndex(self.max_members_per_key)
        self._keys: dict[str, list[str]] = {}
        self._next_refresh = self.refresh_first

    def add(self, record_id: str, patient: dict[str, Any]) -> Decision:
        """Resolve one Patient against everything stored, then store it with its entity."""
        f = patient_features(patient)
        keys = blocking_keys(f)
        ids = self.index.candidates(keys, exclude=record_id)
        self.candidates_seen.append(len(ids))
        cands = [Candidate(rid, self.entity_of[rid], self.features[rid]) for rid in ids]
        decision = decide(f, cands, self.params, self.thresholds)
        if decision.outcome == "link" and decision.entity_id:
            entity = decision.entity_id
        else:
            entity = str(uuid.uuid5(uuid.NAMESPACE_URL, f"entity/{record_id}"))
        self.features[record_id] = f
        self.entity_of[record_id] = entity
        self.decisions[record_id] = decision
        self.index.add(record_id, keys)
        self._keys[record_id] = keys
        if self._next_refresh and len(self.features) >= self._next_refresh:
            self.refresh_parameters(seed=self.seed)
            self.refreshes.append(len(self.features))
            self._next_refresh *= self.refresh_growth
        return decision

    def candidate_pairs(self, max_pairs: int | None = None) -> list[tuple[str, str]]:
        """Every pair of stored records that share a non-saturated blocking key."""
        pairs: dict[tuple[str, str], None] = {}
        seen_keys: set[str] = set()
        for keys in self._keys.values():
            for key in keys:
                if key in seen_keys or self.index.is_saturated(key):
                    continue
                seen_keys.add(key)
                for a, b in itertools.combinations(sorted(self.index.members(key)), 2):
                    pairs[(a, b)] = None
                    if max_pairs is not None and len(pairs) >= max_pairs:
                        return list(pairs)
        return list(pairs)

    def refresh_parameters(self, *, seed: int = 0, u_pairs: int = 20000) -> Parameters:
        """Re-estimate from the stored records (u from random pairs, m and λ by EM over the
        blocked pairs, term frequencies), starting from the current parameters."""
        ids: Sequence[str] = list(self.features)
        position = {rid: i for i, rid in enumerate(ids)}
        pairs = [(position[a], position[b]) for a, b in self.candidate_pairs()]
        records = [self.features[rid] for rid in ids]
        self.params = estimate_parameters(records, pairs, seed=seed, u_pairs=u_pairs, start=self.params)
        return self.params
