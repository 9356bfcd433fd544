"""World-model entity resolution: which entity a resource belongs to, and how sure we are.

Everything that links a resource to an entity goes through :class:`EntityResolver`, so the
deterministic rule used now can be replaced by probabilistic matching (demographics, calibrated
confidence, candidate review band) without touching the write path or the import pipeline.

Current rule (deterministic):
- a ``Patient`` is its own patient entity: ``entity_id = uuid5(workspace, "Patient/<id>")``,
  confidence 1.0, evidence "resource id";
- a resource in a patient's compartment (``subject`` or ``patient`` referencing ``Patient/<id>``)
  carries that patient's entity: read from the Patient's current item, ``null`` when that patient
  is not (yet) stored;
- anything else: no entity yet (``null``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

_NAMESPACE = uuid.UUID("6f1f3a52-1b0e-4c39-9a53-6f3c1e5e2a10")


@dataclass(frozen=True)
class EntityLink:
    entity_id: str | None
    confidence: float | None
    entity_type: str | None = None
    evidence: tuple[str, ...] = field(default_factory=tuple)
    owns_entity: bool = False  # the resource *is* the entity's anchor (creates the entity item)
    # world-model resolution (world/resolution.py): the entity items of the decision as transaction
    # operations, counter deltas (entity_count, et_{type}), whether it created an entity, and the
    # entity the resource belongs to now (``entity_id`` above stays the resource's anchor)
    ops: tuple[dict[str, Any], ...] = ()
    counters: tuple[tuple[str, int], ...] = ()
    entity_created: bool = False
    current_entity_id: str | None = None


NO_LINK = EntityLink(None, None)

# resource types that are world-model entity members, and their entity_type
ENTITY_TYPES = {"Patient": "patient", "Practitioner": "practitioner", "Organization": "organization", "Location": "location"}


def anchor_entity_id(workspace_id: str, resource_type: str, resource_id: str) -> str:
    """The id of the entity a resource anchors: ``uuid5(workspace/Type/id)``. The resolver gives
    every Patient this id; the directory views (practitioners, locations, …) report it for
    resources not linked to an entity yet, so a row's ``entity_id`` is stable and equals the id
    the resource's own entity gets when the resolver starts anchoring those types."""
    return str(uuid.uuid5(_NAMESPACE, f"{workspace_id}/{resource_type}/{resource_id}"))


@dataclass
class CurrentLink:
    """Where a resource sits now: its anchor, current entity, link item and that entity's META
    (read by ``storage.entities.EntityStore.current_link``; the resolver keeps one per record of a
    batch, updated by the batch's earlier changes)."""

    anchor_id: str
    entity_id: str  # current entity (the alias' target, else the anchor)
    alias: str | None  # the alias item's entity id, when there is one
    link: dict[str, Any] | None  # the link item (plain), None when the resource has never been linked
    entity: dict[str, Any] | None  # META of ``entity_id`` (plain)
    anchor_entity_exists: bool  # a META exists under the anchor id (the id is taken)

    @property
    def pinned(self) -> bool:
        return bool(self.link and self.link.get("pinned"))

    @property
    def member_count(self) -> int:
        return int((self.entity or {}).get("member_count") or 0)


class EntityResolver(Protocol):
    def resolve(self, workspace_id: str, resource_type: str, resource_id: str, data: dict[str, Any]) -> EntityLink: ...


def patient_reference(data: dict[str, Any]) -> str | None:
    """The ``Patient/<id>`` a resource's ``subject``/``patient`` points at, if any."""
    for key in ("subject", "patient"):
        ref = data.get(key)
        if isinstance(ref, dict):
            value = ref.get("reference")
            if isinstance(value, str) and value.startswith("Patient/") and value.count("/") == 1:
                return value.split("/", 1)[1]
    return None


def compartment_link(patient_entity: Callable[[str, str], str | None], workspace_id: str, data: dict[str, Any]) -> EntityLink:
    """A compartment resource carries its patient's (anchor) entity, when that Patient is stored."""
    patient_id = patient_reference(data)
    if patient_id:
        entity_id = patient_entity(workspace_id, patient_id)
        if entity_id:
            return EntityLink(entity_id, 1.0, "patient", (f"reference Patient/{patient_id}",))
    return NO_LINK


class DeterministicResolver:
    """Links by resource identity. ``patient_entity`` looks up a stored Patient's entity id."""

    def __init__(self, patient_entity: Callable[[str, str], str | None]) -> None:
        self._patient_entity = patient_entity

    def resolve(self, workspace_id: str, resource_type: str, resource_id: str, data: dict[str, Any]) -> EntityLink:
        if resource_type == "Patient":
            entity_id = str(uuid.uuid5(_NAMESPACE, f"{workspace_id}/Patient/{resource_id}"))
            return EntityLink(entity_id, 1.0, "patient", ("resource id",), owns_entity=True)
        return compartment_link(self._patient_entity, workspace_id, data)
