"""``GET /v1/{ws}/fhir/sync-failures`` (from the product guide)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from fhir_platform.api.models.common import BaseModel


class SyncFailure(BaseModel):
    id: UUID
    data_source_id: UUID
    direction: Literal["inbound", "outbound"]
    fhir_resource_type: str
    fhir_resource_id: str | None = None
    error: str
    attempts: int
    first_failed_at: str
    last_failed_at: str
    resolved: bool


class SyncFailurePage(BaseModel):
    failures: list[SyncFailure]
    total: int
    has_more: bool
    next_offset: int | None = None
