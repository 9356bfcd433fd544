"""Workspaces: create (platform admin), list (platform admin), get and update (admin role)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform.api import deps
from fhir_platform.api.models import CreateWorkspaceRequest, UpdateWorkspaceRequest, WorkspacePage, WorkspaceResponse
from fhir_platform.api.openapi import responds
from fhir_platform.api.resolver import json_response
from fhir_platform.auth.permissions import ADMIN, READ
from fhir_platform.errors import Unprocessable
from fhir_platform.workspaces.service import is_fhir_configured
from fhir_platform.paging import MAX_OFFSET

create_workspace = APIGatewayHttpRouter()
list_workspaces = APIGatewayHttpRouter()
get_workspace = APIGatewayHttpRouter()
update_workspace = APIGatewayHttpRouter()


def _out(ws: dict) -> WorkspaceResponse:
    return WorkspaceResponse.model_validate({**ws, "fhir_configured": is_fhir_configured(ws)})


@create_workspace.post("/v1/workspaces", responses=responds(201, WorkspaceResponse, errors=(409,)))
def post_workspace(body: CreateWorkspaceRequest):
    deps.authorize(create_workspace, None, None)
    created = deps.workspaces().create(body.model_dump(mode="json", exclude_none=True))
    return json_response(201, _out(created))


@list_workspaces.get("/v1/workspaces", responses=responds(200, WorkspacePage))
def get_workspaces(
    limit: Annotated[int, Query(gt=0, le=100)] = 10,
    continuation_token: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
):
    deps.authorize(list_workspaces, None, None)
    items, has_more = deps.workspaces().list(limit, continuation_token)
    page = WorkspacePage(items=[_out(i) for i in items], has_more=has_more, continuation_token=continuation_token + len(items) if has_more else None)
    return json_response(200, page)


@get_workspace.get("/v1/workspaces/<workspace_id>", responses=responds(200, WorkspaceResponse))
def get_one_workspace(workspace_id: UUID):
    deps.authorize(get_workspace, workspace_id, READ)
    return json_response(200, _out(deps.workspaces().get(str(workspace_id))))


@update_workspace.patch("/v1/workspaces/<workspace_id>", responses=responds(200, WorkspaceResponse))
def patch_workspace(workspace_id: UUID, body: UpdateWorkspaceRequest):
    deps.authorize(update_workspace, workspace_id, ADMIN)
    current = deps.workspaces().get(str(workspace_id))
    changes = body.model_dump(mode="json", exclude_unset=True)
    if "region" in changes and changes["region"] != current.get("region"):
        raise Unprocessable(
            "region is immutable once a workspace is provisioned",
            details=[{"loc": ["body", "region"], "msg": "region is immutable", "type": "value_error"}],
        )
    changes.pop("region", None)
    return json_response(200, _out(deps.workspaces().update(str(workspace_id), changes)))
