"""Request and response models of the world-model endpoints (``/v1/{ws}/entities/...`` and
``/v1/{ws}/entity-candidates/...``; an addition to the contract, see ``docs/entities.md``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field, StringConstraints

from fhir_platform.api.models import BaseModel, Strict
from fhir_platform.storage.entity_decisions import MAX_DECISION_MEMBERS

ResourceTypeName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Za-z]{1,63}$")]
FhirId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-.]{1,64}$")]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class ResourceRef(Strict):
    resource_type: ResourceTypeName
    resource_id: FhirId


class MergeEntityRequest(Strict):
    """``POST /v1/{ws}/entities/{entity_id}/merge``: ``from_entity_id`` is merged into the path's entity."""

    example: ClassVar[dict[str, Any] | None] = {
        "from_entity_id": "9b2f6a51-8c1e-4d7a-a3f0-5e6d7c8b9a01",
        "reason": "Same person: registration typo confirmed by the front desk",
    }

    from_entity_id: UUID
    reason: Reason | None = None


class SplitEntityRequest(Strict):
    """``POST /v1/{ws}/entities/{entity_id}/split``: the listed member resources leave for a new entity."""

    example: ClassVar[dict[str, Any] | None] = {
        "resources": [{"resource_type": "Patient", "resource_id": "kept-2"}],
        "reason": "Twins sharing a birth date, not one person",
    }

    resources: Annotated[list[ResourceRef], Field(min_length=1, max_length=MAX_DECISION_MEMBERS)]
    reason: Reason | None = None


class Evidence(BaseModel):
    field: str
    level: str | None = None
    weight: float | None = None


class EntityLinkResponse(BaseModel):
    resource_type: str
    resource_id: str
    confidence: float | None = None
    method: str | None = None  # identifier / probabilistic / manual
    linked_at: str | None = None
    linked_by: str | None = None  # ``system`` or the API key id of a manual decision
    pinned: bool = False  # a manual decision: automatic resolution never moves it
    evidence: list[Evidence] = Field(default_factory=list)


class EntityResponse(BaseModel):
    """An entity. A merged-away entity answers 200 with ``status: merged``, ``merged_into`` (the
    entity that now holds its resources) and no links."""

    entity_id: UUID
    entity_type: str
    display_name: str | None = None
    status: Literal["active", "merged"] = "active"
    merged_into: UUID | None = None
    member_count: int
    links: list[EntityLinkResponse]
    links_truncated: bool = False
    created_at: str | None = None
    updated_at: str | None = None
    version: int = 0


class EntityHistoryEntry(BaseModel):
    event_id: str | None = None
    event_type: str  # created, linked, unlinked, merged, split
    at: str
    actor: str  # ``system`` or the API key id (``admin`` for the platform credential)
    reason: str | None = None
    evidence: list[Evidence] | None = None
    request: dict[str, Any] | None = None
    resources: list[dict[str, Any]] = Field(default_factory=list)
    other_entity_id: str | None = None
    direction: str | None = None  # merged/split: ``into`` this entity or ``from`` it
    method: str | None = None  # resolver events: identifier / probabilistic / name_address
    confidence: float | None = None  # resolver events: the match probability of the decision


class EntityHistoryResponse(BaseModel):
    entity_id: UUID
    entries: list[EntityHistoryEntry]
    total: int
    has_more: bool = False
    next_offset: int | None = None


class SplitEntityResponse(BaseModel):
    entity: EntityResponse
    new_entity: EntityResponse


class MatchCandidate(BaseModel):
    candidate_id: str
    status: Literal["open", "accepted", "rejected"]
    entity_id: UUID  # the new record's entity
    other_entity_id: UUID  # the existing entity it may be
    resources: list[dict[str, Any]] = Field(default_factory=list)
    confidence: float | None = None
    grade: str | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    created_at: str | None = None
    decided_at: str | None = None
    decided_by: str | None = None


class MatchCandidatePage(BaseModel):
    candidates: list[MatchCandidate]
    total: int
    has_more: bool = False
    next_offset: int | None = None


class CandidateDecisionResponse(BaseModel):
    candidate: MatchCandidate
    entity: EntityResponse | None = None  # accept: the entity both records are now in
