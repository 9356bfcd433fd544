"""Request and response models of the HTTP API (field names, defaults and bounds follow
``shared/reference/platform-fhir-openapi.json``; additions are marked)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ConnectorType = Literal["epic", "cerner", "allscripts", "fhir_store", "athenahealth", "charmhealth", "eclinicalworks", "meditab"]
Environment = Literal["production", "staging", "development"]
Region = Literal["us-east-1", "ap-southeast-2", "eu-central-1", "ca-central-1"]
NameString = Annotated[str, StringConstraints(min_length=1, max_length=256)]
SecretArn = Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$")]
HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https://[^\s/$.?#].[^\s]*$", max_length=2048)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- workspaces -----------------------------------------------------------------------------


class ConnectorAuth(Strict):
    """EHR connector auth settings (addition). Secrets by reference only: a Secrets Manager ARN."""

    auth_type: Literal["smart_backend_services", "client_credentials", "none"] = "smart_backend_services"
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    token_url: HttpsUrl | None = None
    scopes: list[Annotated[str, StringConstraints(max_length=256)]] = Field(default_factory=list, max_length=64)
    private_key_secret_arn: SecretArn | None = None
    client_secret_arn: SecretArn | None = None


class CreateWorkspaceRequest(Strict):
    """``POST /v1/workspaces`` (addition: the public API provisions workspaces out of band)."""

    name: NameString
    slug: Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")]
    environment: Environment = "production"
    ehr_type: ConnectorType | None = None
    fhir_store_url: HttpsUrl | None = None
    connector_auth: ConnectorAuth | None = None


class UpdateWorkspaceRequest(Strict):
    name: Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)] | None = None
    environment: Environment | None = None
    region: Region | None = None
    connector_type: ConnectorType | None = None
    ehr_type: ConnectorType | None = None  # addition: alias of connector_type
    fhir_store_url: HttpsUrl | None = None  # addition
    connector_auth: ConnectorAuth | None = None  # addition


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
    connector_auth: ConnectorAuth | None = None  # addition (references only)
    fhir_configured: bool = False  # addition


class WorkspacePage(BaseModel):
    items: list[WorkspaceResponse]
    has_more: bool
    continuation_token: int | None = None
    total: int | None = None


# ---- API keys -------------------------------------------------------------------------------


class CreateApiKeyRequest(Strict):
    name: NameString | None = None
    duration_days: Annotated[int, Field(ge=1, le=90)]
    role: Annotated[str, StringConstraints(max_length=64)] = "member"
    permissions: Annotated[list[Annotated[str, StringConstraints(max_length=128)]], Field(max_length=128)] = Field(
        default_factory=list
    )


class RotateApiKeyRequest(Strict):
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


class ErrorResponse(BaseModel):
    """Every 4xx body: what was wrong (``message``) and where (``detail[].loc``)."""

    statusCode: int
    error: str
    message: str
    detail: list[dict[str, Any]] = Field(default_factory=list)


# ---- imports --------------------------------------------------------------------------------


class FhirImportRequest(Strict):
    bundle: dict[str, Any]
    source: Annotated[str, StringConstraints(max_length=128)] = "fhir_import"
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
