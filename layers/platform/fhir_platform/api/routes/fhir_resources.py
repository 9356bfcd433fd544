"""FHIR resources: create, read, update (upsert), history."""

from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform.api import deps
from fhir_platform.api.models import FhirResourceHistoryEntry, FhirResourceHistoryResponse, FhirResourceResponse, FhirWriteRequest
from fhir_platform.api.openapi import responds
from fhir_platform.api.params import ResourceId, ResourceType
from fhir_platform.api.resolver import json_response
from fhir_platform.auth.permissions import READ, WRITE
from fhir_platform.errors import InvalidInput
from fhir_platform.resources.service import WriteContext, check_resource_type
from fhir_platform.storage.resources import StoredResource
from fhir_platform.paging import MAX_OFFSET

create_resource = APIGatewayHttpRouter()
read_resource = APIGatewayHttpRouter()
update_resource = APIGatewayHttpRouter()
resource_history = APIGatewayHttpRouter()

_ETAG = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


def _current_entity(ws: str, anchor: str | None) -> str | None:
    """The entity the resource belongs to now (its stored anchor through the alias; docs/entities.md)."""
    from fhir_platform.storage.entity_reads import EntityReader

    return EntityReader(deps.resources().store.table).current_entity(ws, anchor)


def _response(status: int, stored: StoredResource, ws: str):
    body = FhirResourceResponse(
        resource_type=stored.resource_type,
        resource_id=stored.resource_id,
        entity_id=_current_entity(ws, stored.entity_id),
        data=stored.data,
    )
    return json_response(
        status,
        body,
        {"ETag": f'W/"{stored.version}"', "Last-Modified": stored.last_updated, "Location": f"{stored.resource_type}/{stored.resource_id}/_history/{stored.version}"},
    )


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    match = _ETAG.match(value)
    if not match:
        raise InvalidInput(
            'If-Match must be a version ETag such as W/"3"',
            details=[{"loc": ["header", "if-match"], "msg": "not a version ETag", "type": "value_error"}],
        )
    return int(match.group(1))


@create_resource.post("/v1/<workspace_id>/fhir/resources/<resource_type>", responses=responds(201, FhirResourceResponse, errors=(400, 409)))
def post_resource(workspace_id: UUID, resource_type: ResourceType, body: FhirWriteRequest):
    deps.authorize_fhir(create_resource, workspace_id, WRITE)
    ctx = WriteContext(source="api", data_source_id=str(body.data_source_id) if body.data_source_id else None)
    outcome = deps.resources().create(str(workspace_id), resource_type, body.data, ctx)
    return _response(201, outcome.resource, str(workspace_id))


@read_resource.get("/v1/<workspace_id>/fhir/resources/<resource_type>/<resource_id>", responses=responds(200, FhirResourceResponse, errors=(400, 409, 410)))
def get_resource(workspace_id: UUID, resource_type: ResourceType, resource_id: ResourceId):
    deps.authorize_fhir(read_resource, workspace_id, READ)
    return _response(200, deps.resources().read(str(workspace_id), resource_type, resource_id), str(workspace_id))


@update_resource.put("/v1/<workspace_id>/fhir/resources/<resource_type>/<resource_id>", responses=responds(200, FhirResourceResponse, errors=(400, 409, 412), also={201: FhirResourceResponse}))
def put_resource(
    workspace_id: UUID,
    resource_type: ResourceType,
    resource_id: ResourceId,
    body: FhirWriteRequest,
    if_match: Annotated[str | None, Header()] = None,
):
    deps.authorize_fhir(update_resource, workspace_id, WRITE)
    check_resource_type(resource_type)
    ctx = WriteContext(source="api", data_source_id=str(body.data_source_id) if body.data_source_id else None)
    outcome = deps.resources().upsert(str(workspace_id), resource_type, resource_id, body.data, ctx, _if_match(if_match))
    return _response(201 if outcome.created else 200, outcome.resource, str(workspace_id))


@resource_history.get("/v1/<workspace_id>/fhir/resources/<resource_type>/<resource_id>/history", responses=responds(200, FhirResourceHistoryResponse, errors=(400, 409)))
def get_history(
    workspace_id: UUID,
    resource_type: ResourceType,
    resource_id: ResourceId,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
):
    deps.authorize_fhir(resource_history, workspace_id, READ)
    page = deps.resources().history(str(workspace_id), resource_type, resource_id, limit, offset)
    from fhir_platform.storage.entity_reads import map_current_entities

    map_current_entities(deps.resources().store.table, str(workspace_id), page.entries)
    out = FhirResourceHistoryResponse(
        resource_type=resource_type,
        resource_id=resource_id,
        entries=[FhirResourceHistoryEntry.model_validate(e) for e in page.entries],
        total=page.total,
        has_more=page.has_more,
        next_offset=page.next_offset,
    )
    return json_response(200, out)
