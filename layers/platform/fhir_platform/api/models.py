"""Request and response models of the HTTP API (field names, defaults and bounds follow
``shared/reference/platform-fhir-openapi.json``; additions are marked)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel as _PydanticBaseModel
from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic_core import PydanticCustomError


class BaseModel(_PydanticBaseModel):
    """pydantic's BaseModel with ``defer_build``: a model's validator and serializer are built on its
    first use, not at import. Each function imports this whole module but uses two or three of its
    models, so building all of them in Lambda's init cost every cold start ~40-80 ms.

    A response body is the whole model (``model_dump_json``: a field without a value is ``null``,
    never left out), so its OpenAPI schema (pydantic's serialization mode) marks every field
    required; a request body's (validation mode) keeps the defaults optional."""

    model_config = ConfigDict(defer_build=True, json_schema_serialization_defaults_required=True)


ConnectorType = Literal["epic", "cerner", "allscripts", "fhir_store", "athenahealth", "charmhealth", "eclinicalworks", "meditab"]
Environment = Literal["production", "staging", "development"]
Region = Literal["us-east-1", "ap-southeast-2", "eu-central-1", "ca-central-1"]
NameString = Annotated[str, StringConstraints(min_length=1, max_length=256)]
SecretArn = Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$")]
HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https://[^\s/$.?#].[^\s]*$", max_length=2048)]


# request examples (shown in the generated OpenAPI; the bad-input tests spoil one field at a time)
_PATIENT = {"resourceType": "Patient", "name": [{"family": "Okafor", "given": ["Ngozi"]}], "birthDate": "1988-02-29"}
_DATA_SOURCE = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def _request_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """A request body's JSON schema: ``null`` is not offered (:class:`Strict` refuses it), and the
    model's ``example`` (a valid body) is given."""
    example = model.__dict__.get("example")
    if example is not None:
        schema["examples"] = [example]
    for prop in schema.get("properties", {}).values():
        options = prop.get("anyOf")
        if options and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            del prop["anyOf"]
            if len(rest) == 1:
                prop.update(rest[0])
            else:
                prop["anyOf"] = rest
        if prop.get("default", ...) is None:
            del prop["default"]


class Strict(BaseModel):
    """Base of every request body: unknown fields are refused, and so is ``null`` for any field.

    A field is either given a value of its type or left out; ``X | None = None`` below only means
    "may be left out". ``null`` never reaches a service: on a PATCH it would otherwise be dumped
    (``exclude_unset``) and written over a required attribute."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_request_schema)
    example: ClassVar[dict[str, Any] | None] = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("null_not_allowed", "must not be null: leave the field out instead")
        return value


# ---- workspaces -----------------------------------------------------------------------------


class ConnectorAuthSettings(BaseModel):
    """EHR connector auth settings (addition). Secrets by reference only: a Secrets Manager ARN.
    As stored and answered; :class:`ConnectorAuth` is the same as a request field."""

    auth_type: Literal["smart_backend_services", "client_credentials", "none"] = "smart_backend_services"
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    token_url: HttpsUrl | None = None
    scopes: list[Annotated[str, StringConstraints(max_length=256)]] = Field(default_factory=list, max_length=64)
    private_key_secret_arn: SecretArn | None = None
    client_secret_arn: SecretArn | None = None


class ConnectorAuth(Strict, ConnectorAuthSettings):
    """``connector_auth`` in a request: the settings above, no unknown fields, no ``null``."""


class CreateWorkspaceRequest(Strict):
    """``POST /v1/workspaces`` (addition: the public API provisions workspaces out of band)."""

    example: ClassVar[dict[str, Any] | None] = {
        "name": "Riverside Clinic",
        "slug": "riverside-clinic",
        "environment": "production",
        "ehr_type": "epic",
        "fhir_store_url": "https://ehr.example.org/fhir/R4",
        "connector_auth": {
            "auth_type": "smart_backend_services",
            "client_id": "riverside-app",
            "token_url": "https://ehr.example.org/oauth2/token",
            "scopes": ["system/*.read"],
            "private_key_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:epic/private-key-AbCdEf",
        },
    }

    name: NameString
    slug: Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")]
    environment: Environment = "production"
    ehr_type: ConnectorType | None = None
    fhir_store_url: HttpsUrl | None = None
    connector_auth: ConnectorAuth | None = None


class WorldThresholds(Strict):
    """World-model decision thresholds of a workspace (docs/entities.md); unset fields keep the
    defaults (link 0.95, review 0.50, identity guard on)."""

    link: float | None = Field(None, ge=0.0, le=1.0, description="Match probability at or above which a record is linked")
    review: float | None = Field(None, ge=0.0, le=1.0, description="Match probability at or above which a match candidate is opened")
    identity_guard: bool | None = Field(None, description="Cap probabilistic links whose given names or birth dates differ at review")

    @model_validator(mode="after")
    def _ordered(self) -> "WorldThresholds":
        link = 0.95 if self.link is None else self.link
        review = 0.50 if self.review is None else self.review
        if review > link:
            raise PydanticCustomError("thresholds_order", "review must not exceed link")
        return self


class UpdateWorkspaceRequest(Strict):
    example: ClassVar[dict[str, Any] | None] = {
        "name": "Riverside Clinic",
        "environment": "staging",
        "connector_type": "cerner",
        "fhir_store_url": "https://ehr.example.org/fhir/R4",
        "connector_auth": {
            "auth_type": "client_credentials",
            "client_id": "riverside-app",
            "token_url": "https://ehr.example.org/oauth2/token",
            "client_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:cerner/client-secret-AbCdEf",
        },
    }

    name: Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)] | None = None  # bound as on create
    environment: Environment | None = None
    region: Region | None = None
    connector_type: ConnectorType | None = None
    ehr_type: ConnectorType | None = None  # addition: alias of connector_type
    fhir_store_url: HttpsUrl | None = None  # addition
    connector_auth: ConnectorAuth | None = None  # addition
    world_thresholds: WorldThresholds | None = None  # addition: entity resolution thresholds


class WorkspaceResponse(BaseModel):
    id: UUID
    slug: str
    name: str
    environment: str
    backend_org_id: str | None = None
    region: str
    connector_type: str | None = None
    provisioned_at: str | None = None
    created_at: str
    updated_at: str
    ehr_type: str | None = None  # addition
    fhir_store_url: str | None = None  # addition
    connector_auth: ConnectorAuthSettings | None = None  # addition (references only)
    fhir_configured: bool = False  # addition
    world_thresholds: dict[str, Any] | None = None  # addition: the workspace's overrides, when set


class WorkspacePage(BaseModel):
    items: list[WorkspaceResponse]
    has_more: bool
    continuation_token: int | None = None
    total: int | None = None


# ---- API keys -------------------------------------------------------------------------------


class CreateApiKeyRequest(Strict):
    example: ClassVar[dict[str, Any] | None] = {
        "name": "nightly-sync",
        "duration_days": 30,
        "role": "member",
        "permissions": ["read", "write"],
    }

    name: NameString | None = None
    duration_days: Annotated[int, Field(ge=1, le=90)]
    role: Annotated[str, StringConstraints(max_length=64)] = "member"
    permissions: Annotated[list[Annotated[str, StringConstraints(max_length=128)]], Field(max_length=128)] = Field(
        default_factory=list
    )


class RotateApiKeyRequest(Strict):
    example: ClassVar[dict[str, Any] | None] = {"duration_days": 30}

    duration_days: Annotated[int, Field(ge=1, le=90)]


class CreateApiKeyResponse(BaseModel):
    key_id: str
    api_key: str
    name: str | None
    role: str
    permissions: list[str]
    expires_at: str
    created_by_entity_id: UUID | None = None
    created_by_credential_id: UUID | None = None


class ApiKeyResponse(BaseModel):
    id: UUID
    workspace_id: UUID
    created_by_entity_id: UUID | None = None
    created_by_credential_id: UUID | None = None
    key_id: str
    name: str | None
    role: str
    permissions: list[str]
    expires_at: str
    last_used_at: str | None = None
    created_at: str
    updated_at: str


class ApiKeyPage(BaseModel):
    items: list[ApiKeyResponse]
    has_more: bool
    continuation_token: int | None = None
    total: int | None = None


class RoleEntry(BaseModel):
    name: str
    priority: int
    description: str
    permission_names: list[str]


class PermissionEntry(BaseModel):
    name: str
    namespace: str
    action: str


class PermissionCatalogResponse(BaseModel):
    roles: list[RoleEntry]
    permissions: list[PermissionEntry]


# ---- FHIR resources -------------------------------------------------------------------------


class FhirWriteRequest(Strict):
    example: ClassVar[dict[str, Any] | None] = {"data": _PATIENT, "data_source_id": _DATA_SOURCE}

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


class ErrorDetail(BaseModel):
    """One thing wrong with a request: where (``loc``: ``body``/``query``/``path``/``header``, then
    the field), what (``msg``) and its kind (``type``). Never the input itself."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every 4xx body: what was wrong (``message``) and where (``detail[].loc``)."""

    statusCode: int
    error: str
    message: str
    detail: list[ErrorDetail]


# ---- imports --------------------------------------------------------------------------------


class FhirImportRequest(Strict):
    example: ClassVar[dict[str, Any] | None] = {
        "bundle": {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": _PATIENT}]},
        "source": "fhir_import",
        "source_system": "epic",
        "data_source_id": _DATA_SOURCE,
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
        "data_source_id": _DATA_SOURCE,
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


# ---- search and views -----------------------------------------------------------------------


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


class FhirPatientView(BaseModel):
    entity_id: UUID
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    birth_date: str | None = None
    gender: str | None = None
    phone: str | None = None
    email: str | None = None
    mrn: str | None = None
    address: dict[str, Any] | None = None
    address_state: str | None = None
    address_postal_code: str | None = None
    address_city: str | None = None
    active_conditions: list[str] = Field(default_factory=list)
    active_medications: list[str] = Field(default_factory=list)
    allergies: list[str] = Field(default_factory=list)
    insurance: list[dict[str, Any]] = Field(default_factory=list)
    primary_payer_name: str | None = None
    practice_payer_id: str | None = None
    member_id: str | None = None
    policyholder_name: str | None = None
    policyholder_relationship: str | None = None
    policyholder_dob: str | None = None
    source_system: str | None = None
    canonical_id: str | None = None
    event_count: int = 0
    confidence: float = 1.0
    last_event_at: str | None = None
    created_at: str | None = None


class FhirPractitionerView(BaseModel):
    entity_id: UUID
    name: str | None = None
    npi: str | None = None
    specialty: str | None = None
    phone: str | None = None
    email: str | None = None
    member_id: str | None = None
    scheduling_eligible: bool | None = None
    source_system: str | None = None
    canonical_id: str | None = None
    event_count: int = 0
    last_event_at: str | None = None


class FhirLocationView(BaseModel):
    entity_id: UUID
    name: str | None = None
    address: dict[str, Any] | None = None
    address_line: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    timezone: str | None = None
    facility_id: str | None = None
    phone: str | None = None
    hours: dict[str, Any] | None = None
    source_system: str | None = None
    canonical_id: str | None = None
    event_count: int = 0
    last_event_at: str | None = None


class FhirAppointmentView(BaseModel):
    entity_id: UUID
    status: str | None = None
    start: str | None = None
    end: str | None = None
    patient_name: str | None = None
    practitioner_name: str | None = None
    location_name: str | None = None
    reason: str | None = None
    cancel_reason: str | None = None
    appointment_type: str | None = None
    duration_minutes: int | None = None
    modality: str | None = None
    source_system: str | None = None
    canonical_id: str | None = None
    event_count: int = 0
    last_event_at: str | None = None


class FhirSlotView(BaseModel):
    entity_id: UUID
    status: str | None = None
    start: str | None = None
    end: str | None = None
    schedule_ref: str | None = None
    provider_name: str | None = None
    provider_id: str | None = None
    facility_id: str | None = None
    specialty: str | None = None
    visit_type_ids: str | None = None
    visit_type_names: str | None = None
    source_system: str | None = None
    canonical_id: str | None = None
    event_count: int = 0
    last_event_at: str | None = None


class FhirOrganizationView(BaseModel):
    entity_id: UUID
    name: str | None = None
    phone: str | None = None
    domain: str | None = None
    industry: str | None = None
    address: dict[str, Any] | None = None
    source_system: str | None = None
    canonical_id: str | None = None
    event_count: int = 0
    last_event_at: str | None = None


class _ViewList(BaseModel):
    """What every view list carries besides its rows (the views' ``total`` is required)."""

    total: int
    has_more: bool = False
    next_offset: int | None = None


class FhirPatientListResponse(_ViewList):
    patients: list[FhirPatientView]


class FhirPractitionerListResponse(_ViewList):
    practitioners: list[FhirPractitionerView]


class FhirLocationListResponse(_ViewList):
    locations: list[FhirLocationView]


class FhirAppointmentListResponse(_ViewList):
    appointments: list[FhirAppointmentView]


class FhirSlotListResponse(_ViewList):
    slots: list[FhirSlotView]


class FhirOrganizationListResponse(_ViewList):
    organizations: list[FhirOrganizationView]


# ---- data sources and sync (contract: Data Sources; sync failures from the product guide) ------

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


# ---- patient timeline and summary ---------------------------------------------------------------


class PatientTimelineResponse(BaseModel):
    """``GET .../fhir/patients/{patient_id}/timeline``: ``events`` newest first by clinical time
    (each: ``event_id``, ``occurred_at``, ``domain``, ``resource_type``, ``resource_id``,
    ``reference``, ``event_type``, ``display``, ``status``, ``source``, ``data_source_id``,
    ``entity_id``, ``version``, ``last_updated``); ``total`` exact (of the ``domain`` when given)."""

    entity_id: UUID
    patient_id: str
    events: list[dict[str, Any]]
    total: int
    has_more: bool = False
    next_offset: int | None = None


class PatientSummaryResponse(BaseModel):
    """``GET .../fhir/patients/{patient_id}/summary``: the contract's fields plus ``clinical``
    (active problems, medications, allergies, latest vital signs, recent encounters,
    immunizations, care team, coverage; every item with its resource ``reference``)."""

    entity_id: UUID
    entity_type: str
    display_name: str | None
    event_count: int
    last_event_at: str | None
    patient_id: str
    reference: str
    name: str | None = None
    phone: str | None = Field(default=None, description="Primary phone number (E.164 when it is a full number, else as written)")
    email: str | None = None
    birth_date: str | None = None
    gender: str | None = None
    mrn: str | None = None
    clinical: dict[str, Any]
    state: dict[str, Any] = Field(
        default_factory=dict,
        description="Deprecated (contract): the patient's demographics as one object; use the typed fields.",
        json_schema_extra={"deprecated": True},
    )

    @model_validator(mode="after")
    def _state(self) -> PatientSummaryResponse:
        if not self.state:
            self.state = {k: getattr(self, k) for k in ("name", "birth_date", "gender", "phone", "email", "mrn") if getattr(self, k) is not None}
        return self
