"""GET /v1/{ws}/fhir/status — counts from counters maintained on write (no table walks); the
connector fields (``last_poll_at``, ``sync_healthy``, ``connector_type``) from the workspace's
active FHIR data sources (one Query of its bounded set of sources)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform.api import deps
from fhir_platform.api.models import FhirStatusResponse
from fhir_platform.api.openapi import responds
from fhir_platform.api.resolver import json_response
from fhir_platform.auth.permissions import READ
from fhir_platform.workspaces.service import is_fhir_configured

fhir_status = APIGatewayHttpRouter()


@fhir_status.get("/v1/<workspace_id>/fhir/status", responses=responds(200, FhirStatusResponse))
def get_status(workspace_id: UUID):
    deps.authorize(fhir_status, workspace_id, READ)
    workspace = deps.workspaces().get(str(workspace_id))
    counts = deps.resources().store.counters(str(workspace_id))
    from fhir_platform.connector.sources import fhir_sources_summary

    sync = fhir_sources_summary(deps.data_sources().repo.list_all(str(workspace_id)), datetime.now(UTC))
    return json_response(
        200,
        FhirStatusResponse(
            configured=is_fhir_configured(workspace),
            connector_type=workspace.get("connector_type") or sync["connector_type"],
            event_count=counts["event_count"],
            entity_count=counts["entity_count"],
            entity_type_counts=counts["entity_type_counts"],
            resource_type_counts=counts["resource_type_counts"],
            last_poll_at=sync["last_poll_at"],
            last_change_at=counts["last_change_at"],
            sync_healthy=sync["sync_healthy"],
        ),
    )
