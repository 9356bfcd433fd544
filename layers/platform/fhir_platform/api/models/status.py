"""``GET /v1/{ws}/fhir/status``."""

from __future__ import annotations

from pydantic import Field

from fhir_platform.api.models.common import BaseModel


class FhirStatusResponse(BaseModel):
    configured: bool
    connector_type: str | None = None
    event_count: int
    entity_count: int
    entity_type_counts: dict[str, int] = Field(default_factory=dict)
    resource_type_counts: dict[str, int] = Field(default_factory=dict)
    last_poll_at: str | None = None
    last_change_at: str | None = None
    sync_healthy: bool | None = None
