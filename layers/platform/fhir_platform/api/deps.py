"""Per-execution-environment service instances and the access checks routes share."""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir_platform.api.resolver import principal
from fhir_platform.auth.principal import Principal, require


@cache
def workspaces():
    from fhir_platform.workspaces.service import WorkspaceService

    return WorkspaceService()


@cache
def resources():
    from fhir_platform.resources.service import ResourceService

    return ResourceService()


@cache
def api_keys():
    from fhir_platform.auth.api_keys import ApiKeyService

    return ApiKeyService()


def authorize(router: Any, workspace_id: Any, permission: str | None) -> Principal:
    caller = principal(router)
    require(caller, None if workspace_id is None else str(workspace_id), permission)
    return caller


def authorize_fhir(router: Any, workspace_id: Any, permission: str) -> dict[str, Any]:
    """Caller may use ``permission`` in the workspace, and the workspace has FHIR configured."""
    authorize(router, workspace_id, permission)
    return workspaces().require_fhir(str(workspace_id))
