"""Request and response models of the HTTP API (field names, defaults and bounds follow
``shared/reference/platform-fhir-openapi.json``; additions are marked), one submodule per router.

``from fhir_platform.api.models import X`` works for every model, and loads only ``X``'s submodule
(PEP 562 ``__getattr__``): a function's cold start defines its own router's models, not all sixty.
A new model goes in its router's submodule and in ``_EXPORTS`` below (a test checks both agree)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

# submodule -> the names it exports
_EXPORTS: dict[str, tuple[str, ...]] = {
    "common": ("BaseModel", "Strict", "ErrorDetail", "ErrorResponse", "NameString"),
    "workspaces": (
        "ConnectorAuthSettings", "ConnectorAuth", "CreateWorkspaceRequest", "WorldThresholds",
        "UpdateWorkspaceRequest", "WorkspaceResponse", "WorkspacePage", "ConnectorType", "Environment",
        "Region", "SecretArn", "HttpsUrl",
    ),
    "api_keys": (
        "CreateApiKeyRequest", "RotateApiKeyRequest", "CreateApiKeyResponse", "ApiKeyResponse",
        "ApiKeyPage", "RoleEntry", "PermissionEntry", "PermissionCatalogResponse",
    ),
    "resources": (
        "FhirWriteRequest", "FhirResourceResponse", "FhirResourceHistoryEntry",
        "FhirResourceHistoryResponse",
    ),
    "status": ("FhirStatusResponse",),
    "imports": (
        "FhirImportRequest", "FhirUnsupportedResourceItem", "FhirImportResponse", "CreateImportJobRequest",
        "ImportJobResponse", "CreateImportJobResponse", "ImportJobPage",
    ),
    "search": ("FhirSearchResponse", "PatientListItem", "PatientSearchResponse"),
    "views": (
        "FhirPatientView", "FhirPractitionerView", "FhirLocationView", "FhirAppointmentView",
        "FhirSlotView", "FhirOrganizationView", "FhirPatientListResponse", "FhirPractitionerListResponse",
        "FhirLocationListResponse", "FhirAppointmentListResponse", "FhirSlotListResponse",
        "FhirOrganizationListResponse",
    ),
    "data_sources": (
        "CreateDataSourceRequest", "UpdateDataSourceRequest", "DataSourceResponse", "DataSourcePage",
        "DataSourceStatusResponse", "SyncHistoryEntry", "SyncFailureEntry", "DataSourceSyncHistoryResponse",
        "TriggerSyncResponse", "TriggerSyncConflictDetails", "TriggerSyncConflictResponse", "SourceType",
        "SyncStrategy", "EntityType", "StorableObject",
    ),
    "sync_failures": ("SyncFailure", "SyncFailurePage"),
    "patient_record": ("PatientTimelineResponse", "PatientSummaryResponse"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
