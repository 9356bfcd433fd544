"""Imports: the synchronous bundle import and asynchronous (S3) import jobs."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field, StringConstraints

from fhir_platform.api.models.common import DATA_SOURCE_ID_EXAMPLE, PATIENT_EXAMPLE, BaseModel, Strict


class FhirImportRequest(Strict):
    example: ClassVar[dict[str, Any] | None] = {
        "bundle": {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": PATIENT_EXAMPLE}]},
        "source": "fhir_import",
        "source_system": "epic",
        "data_source_id": DATA_SOURCE_ID_EXAMPLE,
        "dedup": True,
        "unsupported_resource_policy": "skip",
    }

    bundle: dict[str, Any]
    source: Annotated[str, StringConstraints(min_length=1, max_length=128)] = "fhir_import"
    source_system: Annotated[str, StringConstraints(max_length=128)] | None = None
    data_source_id: UUID | None = None
    dedup: bool = True
    unsupported_resource_policy: Literal["error", "skip"] = "error"


class FhirUnsupportedResourceItem(BaseModel):
    resource_type: str | None = None
    resource_id: str | None = None
    location: str
    reason: str


class FhirImportResponse(BaseModel):
    events_created: int
    events_skipped: int = 0
    events_updated: int = 0
    entities_created: int
    entities_updated: int
    error_count: int = 0
    errors: list[str] = Field(default_factory=list)
    errors_truncated: bool = False
    unsupported_resource_count: int = 0
    unsupported_resources: list[FhirUnsupportedResourceItem] = Field(default_factory=list)
    unsupported_resources_truncated: bool = False
    upsert_semantics: Literal["same_resource_id_upsert"] = "same_resource_id_upsert"
    absence_semantics: Literal["absent_resources_persist"] = "absent_resources_persist"


class CreateImportJobRequest(Strict):
    """``POST /v1/{ws}/fhir/imports`` (addition): options of an S3 import, and the file's format."""

    example: ClassVar[dict[str, Any] | None] = {
        "format": "ndjson",
        "source": "nightly-export",
        "source_system": "epic",
        "data_source_id": DATA_SOURCE_ID_EXAMPLE,
        "dedup": False,
        "unsupported_resource_policy": "skip",
    }


    format: Literal["bundle", "ndjson"] = "bundle"
    source: Annotated[str, StringConstraints(min_length=1, max_length=128)] = "fhir_import"
    source_system: Annotated[str, StringConstraints(max_length=128)] | None = None
    data_source_id: UUID | None = None
    dedup: bool = True
    unsupported_resource_policy: Literal["error", "skip"] = "error"


class ImportJobResponse(BaseModel):
    """An asynchronous import (addition): status, progress and the import counts so far."""

    job_id: str
    status: Literal["pending", "running", "completed", "failed"]
    origin: str
    object_key: str
    format: str | None = None
    bundle_type: str | None = None
    created_at: str
    updated_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    total: int | None = None
    processed: int = 0
    chunk_count: int | None = None
    chunks_done: int = 0
    failure: str | None = None
    events_created: int = 0
    events_updated: int = 0
    events_skipped: int = 0
    entities_created: int = 0
    entities_updated: int = 0
    error_count: int = 0
    errors: list[str] = Field(default_factory=list)
    errors_truncated: bool = False
    unsupported_resource_count: int = 0
    unsupported_resources: list[FhirUnsupportedResourceItem] = Field(default_factory=list)
    unsupported_resources_truncated: bool = False


class CreateImportJobResponse(ImportJobResponse):
    upload_url: str
    upload_method: str = "PUT"
    upload_headers: dict[str, str] = Field(default_factory=dict)
    expires_at: str


class ImportJobPage(BaseModel):
    jobs: list[ImportJobResponse]
    total: int | None = None
    has_more: bool
    next_offset: int | None = None
