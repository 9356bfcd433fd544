"""A patient's timeline and clinical summary: ``GET /v1/{ws}/fhir/patients/{patient_id}/timeline``
and ``.../summary``. ``patient_id`` is a Patient resource id or the patient's ``entity_id``. Both
are served from index items written with each resource (:mod:`fhir_platform.search.patient_record`;
``docs/search.md``), at a fixed number of DynamoDB calls whatever the patient's history."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform.api import deps
from fhir_platform.api.models import PatientSummaryResponse, PatientTimelineResponse
from fhir_platform.api.openapi import responds
from fhir_platform.api.resolver import json_response
from fhir_platform.auth.permissions import READ
from fhir_platform.search.patient_record import check_domain, patient_summary, timeline_page
from fhir_platform.paging import MAX_OFFSET

patient_timeline = APIGatewayHttpRouter()
patient_summary_router = APIGatewayHttpRouter()

PatientId = Annotated[str, Path(min_length=1, max_length=128, description="Patient resource id or the patient's entity_id")]


@patient_timeline.get("/v1/<workspace_id>/fhir/patients/<patient_id>/timeline", responses=responds(200, PatientTimelineResponse, errors=(409, 410)))
def get_patient_timeline(
    workspace_id: UUID,
    patient_id: PatientId,
    domain: Annotated[str | None, Query(max_length=64, description="Only events of this domain")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
):
    deps.authorize_fhir(patient_timeline, workspace_id, READ)
    deps.reject_unknown_params(patient_timeline, ("domain", "limit", "offset"))
    with deps.search_errors():
        check_domain(domain)
    page = timeline_page(deps.resources().store, str(workspace_id), patient_id, domain=domain, limit=limit, offset=offset)
    return json_response(
        200,
        PatientTimelineResponse(
            entity_id=page.entity_id,
            patient_id=page.patient_id,
            events=page.events,
            total=page.total,
            has_more=page.has_more,
            next_offset=page.next_offset,
        ),
    )


@patient_summary_router.get("/v1/<workspace_id>/fhir/patients/<patient_id>/summary", responses=responds(200, PatientSummaryResponse, errors=(409, 410)))
def get_patient_summary(workspace_id: UUID, patient_id: PatientId):
    deps.authorize_fhir(patient_summary_router, workspace_id, READ)
    deps.reject_unknown_params(patient_summary_router, ())
    summary, _ = patient_summary(deps.resources().store, str(workspace_id), patient_id)
    return json_response(200, PatientSummaryResponse.model_validate(summary))
