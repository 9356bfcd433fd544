"""API keys of a workspace: create (shown once), list, delete, rotate, permission catalog.

The platform admin credential may manage keys of any workspace; a workspace key needs the
``admin`` permission in its own workspace.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform.api import deps
from fhir_platform.api.models import (
    ApiKeyPage,
    ApiKeyResponse,
    CreateApiKeyRequest,
    CreateApiKeyResponse,
    PermissionCatalogResponse,
    RotateApiKeyRequest,
)
from fhir_platform.api.openapi import responds
from fhir_platform.api.resolver import json_response
from fhir_platform.auth.api_keys import permission_catalog
from fhir_platform.auth.permissions import ADMIN
from fhir_platform.paging import MAX_OFFSET

create_api_key = APIGatewayHttpRouter()
list_api_keys = APIGatewayHttpRouter()
get_permission_catalog = APIGatewayHttpRouter()
delete_api_key = APIGatewayHttpRouter()
rotate_api_key = APIGatewayHttpRouter()

KeyId = Annotated[str, Path(min_length=1, max_length=64)]


@create_api_key.post("/v1/<workspace_id>/api-keys", responses=responds(201, CreateApiKeyResponse))
def post_api_key(workspace_id: UUID, body: CreateApiKeyRequest):
    caller = deps.authorize(create_api_key, workspace_id, ADMIN)
    deps.workspaces().get(str(workspace_id))  # 404 for a workspace that does not exist
    created = deps.api_keys().create(
        str(workspace_id), caller, name=body.name, role=body.role, permissions=body.permissions, duration_days=body.duration_days
    )
    return json_response(201, CreateApiKeyResponse.model_validate(created))


@list_api_keys.get("/v1/<workspace_id>/api-keys", responses=responds(200, ApiKeyPage))
def get_api_keys(
    workspace_id: UUID,
    mine_only: Annotated[bool, Query()] = False,
    limit: Annotated[int, Query(gt=0, le=100)] = 10,
    continuation_token: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
):
    caller = deps.authorize(list_api_keys, workspace_id, ADMIN)
    items, has_more = deps.api_keys().list(str(workspace_id), caller, mine_only=mine_only, limit=limit, offset=continuation_token)
    page = ApiKeyPage(
        items=[ApiKeyResponse.model_validate(i) for i in items],
        has_more=has_more,
        continuation_token=continuation_token + limit if has_more else None,
    )
    return json_response(200, page)


@get_permission_catalog.get("/v1/<workspace_id>/api-keys/permission-catalog", responses=responds(200, PermissionCatalogResponse))
def get_catalog(workspace_id: UUID):
    deps.authorize(get_permission_catalog, workspace_id, None)
    return json_response(200, PermissionCatalogResponse.model_validate(permission_catalog()))


@delete_api_key.delete("/v1/<workspace_id>/api-keys/<key_id>", responses=responds(204))
def remove_api_key(workspace_id: UUID, key_id: KeyId):
    deps.authorize(delete_api_key, workspace_id, ADMIN)
    deps.api_keys().delete(str(workspace_id), key_id)
    return Response(status_code=204, body="")


@rotate_api_key.post("/v1/<workspace_id>/api-keys/<key_id>/rotate", responses=responds(200, CreateApiKeyResponse))
def post_rotate(workspace_id: UUID, key_id: KeyId, body: RotateApiKeyRequest):
    deps.authorize(rotate_api_key, workspace_id, ADMIN)
    rotated = deps.api_keys().rotate(str(workspace_id), key_id, body.duration_days)
    return json_response(200, CreateApiKeyResponse.model_validate(rotated))
