"""Frontend-ready views: ``GET /v1/{ws}/fhir/views/{patients,practitioners,locations,appointments,
slots,organizations}``. Rows are built from the current resources at read time
(:mod:`fhir_platform.search.listing`), so they follow every change. Unknown query parameters are a
422 naming the parameter."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform.api import deps
from fhir_platform.api.models import (
    FhirAppointmentListResponse,
    FhirLocationListResponse,
    FhirOrganizationListResponse,
    FhirPatientListResponse,
    FhirPractitionerListResponse,
    FhirSlotListResponse,
)
from fhir_platform.api.openapi import responds
from fhir_platform.api.resolver import json_response
from fhir_platform.auth.permissions import READ
from fhir_platform.search.listing import ViewPage, patient_view_page, resource_view_page
from fhir_platform.search.query import parse_patient_search
from fhir_platform.search.slots import parse_slot_filters
from fhir_platform.paging import MAX_OFFSET

patients_view = APIGatewayHttpRouter()
practitioners_view = APIGatewayHttpRouter()
locations_view = APIGatewayHttpRouter()
appointments_view = APIGatewayHttpRouter()
slots_view = APIGatewayHttpRouter()
organizations_view = APIGatewayHttpRouter()

SearchText = Annotated[str | None, Query(max_length=200, description="Search by name")]
DataSourceId = Annotated[UUID | None, Query(description="Scope to data source")]
Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
_COMMON = ("q", "data_source_id", "limit", "offset")
_SLOT_FILTERS = ("status", "date", "days", "provider", "specialty", "service_type", "facility_id")


def _page_fields(page: ViewPage) -> dict:
    return {"total": page.total, "has_more": page.has_more, "next_offset": page.next_offset}


def _directory(
    router: APIGatewayHttpRouter,
    workspace_id: UUID,
    resource_type: str,
    data_source_id: UUID | None,
    slot_filters: dict | None = None,
    **kw,
) -> ViewPage:
    deps.authorize_fhir(router, workspace_id, READ)
    deps.reject_unknown_params(router, _COMMON + (_SLOT_FILTERS if slot_filters is not None else ()))
    with deps.search_errors():
        slots = parse_slot_filters(**slot_filters) if slot_filters is not None else None
        return resource_view_page(
            deps.resources().store,
            str(workspace_id),
            resource_type,
            data_source_id=str(data_source_id) if data_source_id else None,
            slots=slots,
            **kw,
        )


@patients_view.get("/v1/<workspace_id>/fhir/views/patients", responses=responds(200, FhirPatientListResponse, errors=(400, 409)))
def get_patients_view(
    workspace_id: UUID, q: SearchText = None, data_source_id: DataSourceId = None, limit: Limit = 20, offset: Offset = 0
):
    deps.authorize_fhir(patients_view, workspace_id, READ)
    deps.reject_unknown_params(patients_view, _COMMON)
    with deps.search_errors():
        search = parse_patient_search({"q": q, "limit": str(limit), "offset": str(offset)})
        page = patient_view_page(
            deps.resources().store,
            str(workspace_id),
            search,
            data_source_id=str(data_source_id) if data_source_id else None,
        )
    return json_response(200, FhirPatientListResponse(patients=page.rows, **_page_fields(page)))


@practitioners_view.get("/v1/<workspace_id>/fhir/views/practitioners", responses=responds(200, FhirPractitionerListResponse, errors=(400, 409)))
def get_practitioners_view(
    workspace_id: UUID, q: SearchText = None, data_source_id: DataSourceId = None, limit: Limit = 20, offset: Offset = 0
):
    page = _directory(practitioners_view, workspace_id, "Practitioner", data_source_id, q=q, limit=limit, offset=offset)
    return json_response(200, FhirPractitionerListResponse(practitioners=page.rows, **_page_fields(page)))


@locations_view.get("/v1/<workspace_id>/fhir/views/locations", responses=responds(200, FhirLocationListResponse, errors=(400, 409)))
def get_locations_view(
    workspace_id: UUID, q: SearchText = None, data_source_id: DataSourceId = None, limit: Limit = 20, offset: Offset = 0
):
    page = _directory(locations_view, workspace_id, "Location", data_source_id, q=q, limit=limit, offset=offset)
    return json_response(200, FhirLocationListResponse(locations=page.rows, **_page_fields(page)))


@appointments_view.get("/v1/<workspace_id>/fhir/views/appointments", responses=responds(200, FhirAppointmentListResponse, errors=(400, 409)))
def get_appointments_view(
    workspace_id: UUID,
    q: Annotated[str | None, Query(max_length=200, description="Search")] = None,
    data_source_id: DataSourceId = None,
    limit: Limit = 20,
    offset: Offset = 0,
):
    page = _directory(appointments_view, workspace_id, "Appointment", data_source_id, q=q, limit=limit, offset=offset)
    return json_response(200, FhirAppointmentListResponse(appointments=page.rows, **_page_fields(page)))


@slots_view.get("/v1/<workspace_id>/fhir/views/slots", responses=responds(200, FhirSlotListResponse, errors=(400, 409)))
def get_slots_view(
    workspace_id: UUID,
    q: Annotated[str | None, Query(max_length=200, description="Search")] = None,
    data_source_id: DataSourceId = None,
    status: Annotated[str | None, Query(max_length=200, description="Slot status (e.g. 'free', 'busy')")] = None,
    date: Annotated[
        str | None, Query(max_length=32, description="Start date YYYY-MM-DD (filters slots on or after this date)")
    ] = None,
    days: Annotated[int, Query(ge=1, le=90, description="Number of days forward from date (default 7)")] = 7,
    provider: Annotated[str | None, Query(max_length=200, description="Provider name (partial match)")] = None,
    specialty: Annotated[str | None, Query(max_length=200, description="Specialty (partial match)")] = None,
    service_type: Annotated[
        str | None, Query(max_length=200, description="Visit/service type name (partial match)")
    ] = None,
    facility_id: Annotated[str | None, Query(max_length=128, description="Facility ID")] = None,
    limit: Limit = 20,
    offset: Offset = 0,
):
    filters = {
        "status": status,
        "date": date,
        "days": days,
        "provider": provider,
        "specialty": specialty,
        "service_type": service_type,
        "facility_id": facility_id,
    }
    page = _directory(slots_view, workspace_id, "Slot", data_source_id, filters, q=q, limit=limit, offset=offset)
    return json_response(200, FhirSlotListResponse(slots=page.rows, **_page_fields(page)))


@organizations_view.get("/v1/<workspace_id>/fhir/views/organizations", responses=responds(200, FhirOrganizationListResponse, errors=(400, 409)))
def get_organizations_view(
    workspace_id: UUID, q: SearchText = None, data_source_id: DataSourceId = None, limit: Limit = 20, offset: Offset = 0
):
    page = _directory(organizations_view, workspace_id, "Organization", data_source_id, q=q, limit=limit, offset=offset)
    return json_response(200, FhirOrganizationListResponse(organizations=page.rows, **_page_fields(page)))
