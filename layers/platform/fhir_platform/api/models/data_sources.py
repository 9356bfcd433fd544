"""Data sources and their sync (contract: Data Sources)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from fhir_platform.api.models.common import BaseModel, NameString, Strict

SourceType = Literal[
    "rest_api", "webhook", "file_drop", "fhir_store", "ehr", "database", "custom", "smart_fhir", "customer_intake", "lakebase_schema", "crm"
]
SyncStrategy = Literal["manual", "scheduled", "webhook", "continuous"]
EntityType = Annotated[str, StringConstraints(min_length=1, max_length=64)]


_MAX_DEPTH, _MAX_BYTES = 16, 65536


def _storable(value: dict[str, Any]) -> dict[str, Any]:
    """A free-form object the platform stores as it is (a data source's ``connection_config`` and
    ``field_mappings``): at most 16 levels deep and 64 KiB as JSON, every number one DynamoDB can
    hold (at most 38 significant digits, magnitude 1e-130 to 9.99e125). Anything else is a 422
    here, not a failed write (a 500) later."""
    import json
    from decimal import Decimal

    def check(item: Any, depth: int) -> None:  # the message names no key: never echo the input
        if depth > _MAX_DEPTH and isinstance(item, (dict, list)):
            raise PydanticCustomError("too_deep", "nested more than {max} levels deep", {"max": _MAX_DEPTH})
        if isinstance(item, dict):
            for inner in item.values():
                check(inner, depth + 1)
        elif isinstance(item, list):
            for inner in item:
                check(inner, depth + 1)
        elif isinstance(item, (int, float)) and not isinstance(item, bool) and item != 0:
            number = Decimal(repr(item)) if isinstance(item, float) else Decimal(item)  # exact: no context, no rounding
            if len(number.as_tuple().digits) > 38 or not -130 <= number.adjusted() <= 125:  # as boto3 and DynamoDB count
                raise PydanticCustomError("number_range", "holds a number out of the storable range (at most 38 digits, magnitude 1e-130 to 9.99e125)")

    check(value, 1)
    if len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")) > _MAX_BYTES:
        raise PydanticCustomError("too_large", "larger than {max} bytes as JSON", {"max": _MAX_BYTES})
    return value


StorableObject = Annotated[dict[str, Any], AfterValidator(_storable)]


class CreateDataSourceRequest(Strict):
    example: ClassVar[dict[str, Any] | None] = {
        "name": "epic-prod",
        "source_type": "ehr",
        "sync_strategy": "scheduled",
        "sync_schedule": "rate(15 minutes)",
        "connection_config": {
            "base_url": "https://ehr.example.org/fhir/R4",
            "resource_types": ["Patient", "Encounter"],
            "auth": {"type": "bearer", "token_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:fhir-platform/ehr-AbCdEf"},
        },
    }

    name: NameString
    display_name: NameString | None = None
    source_type: SourceType
    connection_config: StorableObject = Field(default_factory=dict)
    entity_types: list[EntityType] = Field(default_factory=list, max_length=100)
    field_mappings: StorableObject = Field(default_factory=dict)
    sync_strategy: SyncStrategy = "manual"
    sync_schedule: Annotated[str, StringConstraints(max_length=256)] | None = None


class UpdateDataSourceRequest(Strict):
    """Every field optional: a field left out is left as it is (``null`` is refused, as on every
    request body). ``connection_config``, when given, replaces the stored one whole."""

    example: ClassVar[dict[str, Any] | None] = {"display_name": "Epic (production)", "is_active": False}

    display_name: NameString | None = None
    connection_config: StorableObject | None = None
    entity_types: list[EntityType] | None = Field(None, max_length=100)
    field_mappings: StorableObject | None = None
    sync_strategy: SyncStrategy | None = None
    sync_schedule: Annotated[str, StringConstraints(max_length=256)] | None = None
    is_active: bool | None = None

    def changes(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class DataSourceResponse(BaseModel):
    id: UUID
    workspace_id: UUID
    name: str
    display_name: str | None = None
    source_type: SourceType
    connection_config: dict[str, Any]
    entity_types: list[str] | None = None
    field_mappings: dict[str, Any]
    sync_strategy: SyncStrategy
    sync_schedule: str | None = None
    last_sync_at: str | None = None
    last_sync_status: Literal["success", "error"] | None = None
    last_sync_event_count: int = 0
    is_active: bool
    is_stale: bool
    health_status: Literal["unknown", "healthy", "degraded"]
    created_at: str
    updated_at: str


class DataSourcePage(BaseModel):
    items: list[DataSourceResponse]
    has_more: bool
    continuation_token: int | None = None
    total: int | None = None


class DataSourceStatusResponse(BaseModel):
    data_source_id: UUID
    name: str
    is_active: bool
    health_status: Literal["unknown", "healthy", "degraded"]
    last_sync_at: str | None = None
    last_sync_status: Literal["success", "error"] | None = None
    last_sync_event_count: int = 0
    event_count: int
    synced_count: int
    failed_count: int


class SyncHistoryEntry(BaseModel):
    date: str
    event_count: int
    synced_count: int
    failed_count: int


class SyncFailureEntry(BaseModel):
    event_id: UUID
    event_type: str
    fhir_resource_type: str | None = None
    fhir_resource_id: str | None = None
    sync_error: str | None = None
    created_at: str | None = None


class DataSourceSyncHistoryResponse(BaseModel):
    data_source_id: UUID
    name: str
    timeline: list[SyncHistoryEntry]
    recent_failures: list[SyncFailureEntry]


class TriggerSyncResponse(BaseModel):
    status: Literal["started"] = "started"
    data_source_id: UUID
    triggered_at: str


class TriggerSyncConflictDetails(BaseModel):
    last_poll_at: str | None = None
    last_poll_duration_ms: int | None = None


class TriggerSyncConflictResponse(BaseModel):
    message: str
    details: TriggerSyncConflictDetails
