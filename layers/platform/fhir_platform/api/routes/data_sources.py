"""Data sources of a workspace (contract: Data Sources): CRUD, status, sync history, manual sync.

Managing sources (create, update, delete, trigger a sync) needs ``admin``; reading them ``read``.
The rules live in :mod:`fhir_platform.connector.sources`; the items in
:mod:`fhir_platform.storage.data_sources` and :mod:`fhir_platform.storage.sync`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform.api import deps
from fhir_platform.api.models import (
    CreateDataSourceRequest,
    DataSourcePage,
    DataSourceResponse,
    DataSourceStatusResponse,
    DataSourceSyncHistoryResponse,
    SourceType,
    TriggerSyncConflictDetails,
    TriggerSyncConflictResponse,
    TriggerSyncResponse,
    UpdateDataSourceRequest,
)
from fhir_platform.api.openapi import responds
from fhir_platform.api.resolver import json_response
from fhir_platform.auth.permissions import ADMIN, READ
from fhir_platform.paging import MAX_OFFSET

create_data_source = APIGatewayHttpRouter()
list_data_sources = APIGatewayHttpRouter()
get_data_source = APIGatewayHttpRouter()
update_data_source = APIGatewayHttpRouter()
delete_data_source = APIGatewayHttpRouter()
data_source_status = APIGatewayHttpRouter()
data_source_sync_history = APIGatewayHttpRouter()
trigger_data_source_sync = APIGatewayHttpRouter()


def out(source: dict[str, Any]) -> DataSourceResponse:
    from fhir_platform.connector.sources import health

    state, stale = health(source, datetime.now(UTC))
    return DataSourceResponse.model_validate({**source, "health_status": state, "is_stale": stale})


@create_data_source.post("/v1/<workspace_id>/data-sources", responses=responds(201, DataSourceResponse, errors=(409,)))
def post_data_source(workspace_id: UUID, body: CreateDataSourceRequest):
    deps.authorize(create_data_source, workspace_id, ADMIN)
    deps.workspaces().get(str(workspace_id))  # 404 for a workspace that does not exist
    created = deps.data_sources().create(str(workspace_id), body.model_dump(mode="json"))
    return json_response(201, out(created))


@list_data_sources.get("/v1/<workspace_id>/data-sources", responses=responds(200, DataSourcePage))
def get_data_sources(
    workspace_id: UUID,
    is_active: Annotated[bool | None, Query()] = None,
    source_type: Annotated[list[SourceType] | None, Query(description="Filter by source type (repeatable)")] = None,
    search: Annotated[str | None, Query(max_length=256)] = None,
    limit: Annotated[int, Query(gt=0, le=100)] = 10,
    continuation_token: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
):
    deps.authorize(list_data_sources, workspace_id, READ)
    items, total, has_more = deps.data_sources().list(
        str(workspace_id), is_active=is_active, source_types=source_type, search=search, limit=limit, offset=continuation_token
    )
    return json_response(
        200,
        DataSourcePage(
            items=[out(i) for i in items],
            has_more=has_more,
            continuation_token=continuation_token + len(items) if has_more else None,
            total=total,
        ),
    )


@get_data_source.get("/v1/<workspace_id>/data-sources/<data_source_id>", responses=responds(200, DataSourceResponse))
def get_one(workspace_id: UUID, data_source_id: UUID):
    deps.authorize(get_data_source, workspace_id, READ)
    return json_response(200, out(deps.data_sources().get(str(workspace_id), str(data_source_id))))


@update_data_source.patch("/v1/<workspace_id>/data-sources/<data_source_id>", responses=responds(200, DataSourceResponse))
def patch_one(workspace_id: UUID, data_source_id: UUID, body: UpdateDataSourceRequest):
    deps.authorize(update_data_source, workspace_id, ADMIN)
    updated = deps.data_sources().update(str(workspace_id), str(data_source_id), body.changes())
    return json_response(200, out(updated))


@delete_data_source.delete("/v1/<workspace_id>/data-sources/<data_source_id>", responses=responds(204))
def delete_one(workspace_id: UUID, data_source_id: UUID):
    deps.authorize(delete_data_source, workspace_id, ADMIN)
    deps.data_sources().delete(str(workspace_id), str(data_source_id))
    return Response(status_code=204, body="")


@data_source_status.get("/v1/<workspace_id>/data-sources/<data_source_id>/status", responses=responds(200, DataSourceStatusResponse))
def get_status(workspace_id: UUID, data_source_id: UUID):
    deps.authorize(data_source_status, workspace_id, READ)
    status = deps.data_sources().status(str(workspace_id), str(data_source_id))
    return json_response(200, DataSourceStatusResponse.model_validate({**status, "data_source_id": status["id"]}))


@data_source_sync_history.get("/v1/<workspace_id>/data-sources/<data_source_id>/sync-history", responses=responds(200, DataSourceSyncHistoryResponse))
def get_history(workspace_id: UUID, data_source_id: UUID, days: Annotated[int, Query(ge=1, le=90)] = 30):
    deps.authorize(data_source_sync_history, workspace_id, READ)
    history = deps.data_sources().history(str(workspace_id), str(data_source_id), days)
    return json_response(
        200,
        DataSourceSyncHistoryResponse(
            data_source_id=history["source"]["id"],
            name=history["source"]["name"],
            timeline=history["timeline"],
            recent_failures=history["recent_failures"],
        ),
    )


@trigger_data_source_sync.post("/v1/<workspace_id>/data-sources/<data_source_id>/sync", responses=responds(202, TriggerSyncResponse, also={409: TriggerSyncConflictResponse}))
def post_sync(workspace_id: UUID, data_source_id: UUID):
    from fhir_platform.connector.sources import SyncInProgress

    deps.authorize(trigger_data_source_sync, workspace_id, ADMIN)
    try:
        started = deps.data_sources().trigger(str(workspace_id), str(data_source_id))
    except SyncInProgress as busy:
        body = TriggerSyncConflictResponse(
            message=busy.message,
            details=TriggerSyncConflictDetails(last_poll_at=busy.last_poll_at, last_poll_duration_ms=busy.last_poll_duration_ms),
        )
        return json_response(409, body)
    return json_response(202, TriggerSyncResponse.model_validate(started))
