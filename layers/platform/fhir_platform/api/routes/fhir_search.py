"""FHIR search: ``GET /v1/{ws}/fhir/resources/{type}`` and ``GET /v1/{ws}/fhir/patients``.

The contract's parameters are declared (and bounded) here; the resource search also takes every
FHIR parameter of the type, with modifiers (``name:exact``), prefixes (``date=ge2020``) and
repetition (``date=ge2020&date=lt2021``), so it parses the raw query string with
:func:`~fhir_platform.search.query.parse_search_pairs`. Semantics, index and cost:
``docs/search.md``.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl, urlencode
from uuid import UUID

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import StringConstraints

from fhir_platform.api import deps
from fhir_platform.api.models import FhirResourceResponse, FhirSearchResponse, PatientListItem, PatientSearchResponse
from fhir_platform.api.openapi import responds
from fhir_platform.api.resolver import json_response, open_query
from fhir_platform.auth.permissions import READ
from fhir_platform.resources.service import check_resource_type
from fhir_platform.paging import MAX_OFFSET

# Two functions share this module: each route imports its own search code (the resource search's
# executor, the patient list's listing), so neither function's init loads the other's.

resource_search = APIGatewayHttpRouter()
patient_search = APIGatewayHttpRouter()

ResourceType = Annotated[str, Path(max_length=64)]
# A FHIR parameter may repeat (``date=ge2020&date=lt2021`` ANDs): Powertools then hands the
# declared parameter a list, so each is "a bounded string, or several".
_S32 = Annotated[str, StringConstraints(max_length=32)]
_S64 = Annotated[str, StringConstraints(max_length=64)]
_S128 = Annotated[str, StringConstraints(max_length=128)]
_S200 = Annotated[str, StringConstraints(max_length=200)]


def _next_url(path: str, pairs: list[tuple[str, str]], next_offset: int) -> str:
    kept = [(k, v) for k, v in pairs if k != "_offset"] + [("_offset", str(next_offset))]
    return f"{path}?{urlencode(kept, safe=':,/|')}"


@resource_search.get("/v1/<workspace_id>/fhir/resources/<resource_type>", responses=responds(200, FhirSearchResponse, errors=(400, 409)))
@open_query  # any FHIR search parameter of the type: parse_search_pairs checks them
def get_resources(
    workspace_id: UUID,
    resource_type: ResourceType,
    _count: Annotated[int, Query(ge=1, le=100)] = 20,
    _offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    name: Annotated[_S200 | list[_S200] | None, Query()] = None,
    identifier: Annotated[_S200 | list[_S200] | None, Query()] = None,
    birthdate: Annotated[_S32 | list[_S32] | None, Query()] = None,
    date: Annotated[_S32 | list[_S32] | None, Query()] = None,
    patient: Annotated[_S128 | list[_S128] | None, Query()] = None,
    status: Annotated[_S64 | list[_S64] | None, Query()] = None,
    q: Annotated[_S200 | list[_S200] | None, Query(description="General search text")] = None,
):
    """Declared parameters are validated by Powertools; all parameters (declared or not) are then
    parsed from the raw query string, so the declared ones only add the contract's bounds."""
    from fhir_platform.search.executor import search_resources
    from fhir_platform.search.query import parse_search_pairs

    deps.authorize_fhir(resource_search, workspace_id, READ)
    check_resource_type(resource_type)
    ws = str(workspace_id)
    pairs = parse_qsl(resource_search.current_event.raw_query_string or "", keep_blank_values=True)
    store = deps.resources().store
    with deps.search_errors():
        query = parse_search_pairs(resource_type, pairs)
        known_total = store.counters(ws)["resource_type_counts"].get(resource_type, 0) if not query.criteria else None
        page = search_resources(store.table, ws, query, known_total=known_total, load_data=store.load_data)
    from fhir_platform.storage.entity_reads import map_current_entities

    map_current_entities(store.table, ws, page.entries)
    entries = [
        FhirResourceResponse(
            resource_type=resource_type,
            resource_id=e["resource"]["id"],
            entity_id=e.get("entity_id"),
            data=e["resource"],
        ).model_dump(mode="json")
        for e in page.entries
    ]
    path = f"/v1/{ws}/fhir/resources/{resource_type}"
    next_url = _next_url(path, pairs, page.next_offset) if page.has_more and page.next_offset is not None else None
    return json_response(
        200, FhirSearchResponse(resource_type=resource_type, total=page.total, entries=entries, next_url=next_url)
    )


@patient_search.get("/v1/<workspace_id>/fhir/patients", responses=responds(200, PatientSearchResponse, errors=(400, 409)))
def get_patients(
    workspace_id: UUID,
    q: Annotated[str | None, Query(max_length=200, description="Search by name, MRN, phone, or entity ID")] = None,
    mrn: Annotated[str | None, Query(max_length=200, description="Search by MRN")] = None,
    phone: Annotated[str | None, Query(max_length=200, description="Search by phone")] = None,
    sort_by: Annotated[
        str | None, Query(max_length=64, description="Sort field with +/- prefix (e.g. -last_event_at)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
):
    from fhir_platform.search.listing import patient_list_page
    from fhir_platform.search.query import parse_patient_search

    deps.authorize_fhir(patient_search, workspace_id, READ)
    with deps.search_errors():
        search = parse_patient_search(patient_search.current_event.query_string_parameters or {})
        page = patient_list_page(deps.resources().store, str(workspace_id), search)
    return json_response(
        200,
        PatientSearchResponse(
            patients=[PatientListItem.model_validate(r) for r in page.rows],
            total=page.total,
            has_more=page.has_more,
            next_offset=page.next_offset,
        ),
    )
