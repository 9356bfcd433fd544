"""GET /v1/{ws}/fhir/sync-failures — per-resource sync failures, inbound and outbound.

Filters ``fhir_resource_type`` and ``fhir_resource_id``; ``total`` is the filtered count, from
write-time counters (or a COUNT of the ≤ 2-item range of one resource), so the cost does not grow
with the number of failures.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform.api import deps
from fhir_platform.api.models import SyncFailurePage
from fhir_platform.api.openapi import responds
from fhir_platform.api.resolver import json_response
from fhir_platform.auth.permissions import READ
from fhir_platform.paging import MAX_OFFSET

sync_failures = APIGatewayHttpRouter()


@sync_failures.get("/v1/<workspace_id>/fhir/sync-failures", responses=responds(200, SyncFailurePage, errors=(409,)))
def get_sync_failures(
    workspace_id: UUID,
    fhir_resource_type: Annotated[str | None, Query(pattern=r"^[A-Z][A-Za-z]{1,63}$")] = None,
    fhir_resource_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9\-.]{1,64}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
):
    deps.authorize_fhir(sync_failures, workspace_id, READ)
    deps.reject_unknown_params(sync_failures, ("fhir_resource_type", "fhir_resource_id", "limit", "offset"))
    items, total, has_more = deps.sync().list_failures(str(workspace_id), fhir_resource_type, fhir_resource_id, limit, offset)
    return json_response(
        200,
        SyncFailurePage(failures=items, total=total, has_more=has_more, next_offset=offset + len(items) if has_more else None),
    )
