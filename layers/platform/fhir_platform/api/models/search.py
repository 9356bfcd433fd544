"""Search: ``GET .../fhir/resources/{type}`` and ``GET .../fhir/patients``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field

from fhir_platform.api.models.common import BaseModel


class FhirSearchResponse(BaseModel):
    """``GET .../fhir/resources/{type}``: ``entries`` are ``FhirResourceResponse`` objects;
    ``total`` is ``null`` when more results remain and counting them would mean reading them all;
    ``next_url`` is the relative URL of the next page (same parameters, next ``_offset``)."""

    resource_type: str
    total: int | None
    entries: list[dict[str, Any]]
    next_url: str | None = None


class PatientListItem(BaseModel):
    entity_id: UUID
    name: str | None = None
    birth_date: str | None = None
    gender: str | None = None
    phone: str | None = Field(default=None, description="Primary phone number (E.164 when it is a full number, else as written)")
    email: str | None = None
    mrn: str | None = None
    event_count: int = 0
    last_event_at: str | None = None


class PatientSearchResponse(BaseModel):
    patients: list[PatientListItem]
    total: int
    has_more: bool = False
    next_offset: int | None = None
