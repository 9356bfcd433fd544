"""FHIR resources: write body, resource, history."""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

from pydantic import Field

from fhir_platform.api.models.common import DATA_SOURCE_ID_EXAMPLE, PATIENT_EXAMPLE, BaseModel, Strict


class FhirWriteRequest(Strict):
    example: ClassVar[dict[str, Any] | None] = {"data": PATIENT_EXAMPLE, "data_source_id": DATA_SOURCE_ID_EXAMPLE}

    data: dict[str, Any]
    data_source_id: UUID | None = None


class FhirResourceResponse(BaseModel):
    resource_type: str
    resource_id: str
    entity_id: UUID | None = None
    data: dict[str, Any]


class FhirResourceHistoryEntry(BaseModel):
    event_id: UUID
    event_type: str
    source: str | None = None
    source_system: str | None = None
    data_source_id: UUID | None = None
    entity_id: UUID | None = None
    confidence: float | None = None
    is_current: bool
    effective_at: str | None = None
    created_at: str | None = None
    synced_at: str | None = None  # addition
    sync_error: str | None = None  # addition
    version: int | None = None  # addition
    content_hash: str | None = None  # addition
    fields_affected: list[str] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)


class FhirResourceHistoryResponse(BaseModel):
    resource_type: str
    resource_id: str
    entries: list[FhirResourceHistoryEntry]
    total: int
    has_more: bool = False
    next_offset: int | None = None
