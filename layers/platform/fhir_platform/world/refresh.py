"""Re-estimating a workspace's model parameters as it grows (amortised, bounded, no Scan).

A new workspace resolves with the documented priors (:func:`~fhir_platform.world.model.default_parameters`).
The stored parameters (``WS#{ws}`` / ``WORLD#PARAMS``: ``params`` JSON, ``records`` estimated from,
``next_refresh_at``, ``estimated_at``) are re-estimated when the workspace's Patient count
(``rt_Patient`` of the counter shards) reaches ``next_refresh_at``: first at
:data:`~fhir_platform.world.resolution.REFRESH_FIRST` (100) Patients, then every time it has grown
:data:`~fhir_platform.world.resolution.REFRESH_GROWTH`-fold (100, 300, 900, 2,700, …), so the number
of estimations grows with the logarithm of the workspace size.

Where it runs: at the end of a ``write_many`` batch that wrote Patients — imports and the EHR
sync, both background workers, never an API request — :meth:`RefreshingWorldResolver.refresh_if_due`
reads the counter shards (one Query, then again only when the count read plus the Patients the
environment's batches created since reaches the threshold, or after the settings' 60 s TTL) and, when due, estimates from a bounded sample: the
:data:`SAMPLE_RECORDS` most recently written Patients (the ``_lastUpdated`` index newest first, then
their current versions), their candidate pairs by the same blocking keys in memory, and
:func:`~fhir_platform.world.model.estimate_parameters` starting from the stored parameters. Cost:
8 Queries + ≤ 50 BatchGetItem + one PutItem, a few seconds of CPU, at most once per growth step.
A workspace written only through the API keeps its parameters until its next import or sync batch.

Two workers estimating at once both write a valid estimate; the last one wins (no harm).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Callable

from fhir_platform.world.blocking import InMemoryBlockingIndex, blocking_keys
from fhir_platform.world.features import patient_features
from fhir_platform.world import resolution
from fhir_platform.world.model import estimate_parameters
from fhir_platform.world.resolution import REFRESH_FIRST, REFRESH_GROWTH, WorldResolver

SAMPLE_RECORDS = 5000
MAX_PAIRS = 200_000


class RefreshingWorldResolver(WorldResolver):
    """:class:`WorldResolver` that also keeps the workspace's parameters fresh (see module doc)."""

    def __init__(self, store: Any, resources: Any, patient_entity: Callable[[str, str], str | None]) -> None:
        super().__init__(store, patient_entity)
        self.resources = resources
        self._patient_counts: dict[str, tuple[float, int]] = {}  # ws -> (when read, Patients since)

    def refresh_if_due(self, ws: str, created: int | None = None) -> bool:
        """Re-estimate when the workspace's Patient count has reached ``next_refresh_at``.
        ``created``: the Patients the calling batch created. The count read from the counter
        shards is kept per execution environment for the settings' TTL (60 s) and advanced by each
        batch's ``created``; the shards are read again only when that estimate reaches
        ``next_refresh_at`` or the reading is older (Patients written by other environments are
        seen within the TTL), instead of one Query per batch."""
        settings = self.settings(ws)
        now = self._clock()
        seen = self._patient_counts.get(ws)
        if created is not None and seen is not None and now - seen[0] < resolution.SETTINGS_TTL_SECONDS:
            estimate = seen[1] + created
            if estimate < settings.next_refresh_at:
                self._patient_counts[ws] = (seen[0], estimate)
                return False
        patients = int(self.resources.counters(ws)["resource_type_counts"].get("Patient", 0))
        self._patient_counts[ws] = (now, patients)
        if patients < settings.next_refresh_at:
            return False
        self.refresh(ws, patients)
        return True

    def refresh(self, ws: str, patients: int | None = None) -> dict[str, Any]:
        """Estimate from the most recent :data:`SAMPLE_RECORDS` Patients and store the result."""
        settings = self.settings(ws)
        data = self.store.recent_patients(ws, SAMPLE_RECORDS, self.resources)
        records = [patient_features(d) for d in data]
        index = InMemoryBlockingIndex()
        for i, f in enumerate(records):
            index.add(str(i), blocking_keys(f))
        pairs: set[tuple[int, int]] = set()
        for i, f in enumerate(records):
            for other in index.candidates(blocking_keys(f), exclude=str(i)):
                j = int(other)
                pairs.add((min(i, j), max(i, j)))
            if len(pairs) >= MAX_PAIRS:
                break
        params = estimate_parameters(records, sorted(pairs), start=settings.params) if len(records) >= 2 else settings.params
        count = patients if patients is not None else len(records)
        next_at = max(REFRESH_FIRST, count * REFRESH_GROWTH)
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.store.put_parameters(ws, params.to_json(), len(records), next_at, now)
        self.forget_settings(ws)
        return {"records": len(records), "candidate_pairs": len(pairs), "next_refresh_at": next_at}
