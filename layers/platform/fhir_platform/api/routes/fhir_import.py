"""FHIR import endpoints: synchronous Bundle, NDJSON stream, and S3 import jobs."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform import config
from fhir_platform.api import deps
from fhir_platform.api.models import (
    CreateImportJobRequest,
    CreateImportJobResponse,
    FhirImportRequest,
    FhirImportResponse,
    ImportJobPage,
    ImportJobResponse,
)
from fhir_platform.api.openapi import responds
from fhir_platform.api.resolver import json_response, raw_body
from fhir_platform.auth.permissions import IMPORT, READ
from fhir_platform.imports import STREAM_MAX_BODY_BYTES, SYNC_MAX_BODY_BYTES, ImportOptions, check_body_size
from fhir_platform.paging import MAX_OFFSET

import_bundle = APIGatewayHttpRouter()
import_stream = APIGatewayHttpRouter()
create_import_job = APIGatewayHttpRouter()
list_import_jobs = APIGatewayHttpRouter()
get_import_job = APIGatewayHttpRouter()


def _raw_body(router: APIGatewayHttpRouter) -> bytes:
    return raw_body(router.current_event)


def _options(source: str, source_system: str | None, data_source_id: UUID | None, dedup: bool, policy: str) -> ImportOptions:
    return ImportOptions(
        source=source,
        source_system=source_system,
        data_source_id=str(data_source_id) if data_source_id else None,
        dedup=dedup,
        unsupported_resource_policy=policy,
    )


@import_bundle.post("/v1/<workspace_id>/fhir/import", responses=responds(200, FhirImportResponse, errors=(409,)))
def post_import(workspace_id: UUID, body: FhirImportRequest):
    deps.authorize_fhir(import_bundle, workspace_id, IMPORT)
    check_body_size(len(_raw_body(import_bundle)), workspace_id=str(workspace_id), bucket=config.imports_bucket(), limit=SYNC_MAX_BODY_BYTES)
    options = _options(body.source, body.source_system, body.data_source_id, body.dedup, body.unsupported_resource_policy)
    result = deps.imports().import_bundle(str(workspace_id), body.bundle, options)
    return json_response(200, FhirImportResponse.model_validate(result))


@import_stream.post("/v1/<workspace_id>/fhir/import-stream", responses=responds(200, FhirImportResponse, errors=(409,)))
def post_import_stream(
    workspace_id: UUID,
    source: Annotated[str, Query(min_length=1, max_length=128)] = "fhir_import",
    source_system: Annotated[str | None, Query(max_length=128)] = None,
    data_source_id: Annotated[UUID | None, Query()] = None,
    dedup: Annotated[bool, Query()] = True,
    unsupported_resource_policy: Annotated[Literal["error", "skip"], Query()] = "error",
):
    deps.authorize_fhir(import_stream, workspace_id, IMPORT)
    raw = _raw_body(import_stream)
    check_body_size(len(raw), workspace_id=str(workspace_id), bucket=config.imports_bucket(), limit=STREAM_MAX_BODY_BYTES)
    options = _options(source, source_system, data_source_id, dedup, unsupported_resource_policy)
    result = deps.imports().import_stream(str(workspace_id), raw, options)
    return json_response(200, FhirImportResponse.model_validate(result))


@create_import_job.post("/v1/<workspace_id>/fhir/imports", responses=responds(201, CreateImportJobResponse, errors=(409,)))
def post_import_job(workspace_id: UUID, body: CreateImportJobRequest):
    deps.authorize_fhir(create_import_job, workspace_id, IMPORT)
    options = _options(body.source, body.source_system, body.data_source_id, body.dedup, body.unsupported_resource_policy)
    job = deps.imports().create_job(str(workspace_id), options, "json" if body.format == "bundle" else "ndjson")
    return json_response(201, CreateImportJobResponse.model_validate(job))


@list_import_jobs.get("/v1/<workspace_id>/fhir/imports", responses=responds(200, ImportJobPage, errors=(409,)))
def get_import_jobs(
    workspace_id: UUID,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
):
    deps.authorize_fhir(list_import_jobs, workspace_id, READ)
    jobs, has_more = deps.imports().list_jobs(str(workspace_id), limit, offset)
    page = ImportJobPage(
        jobs=[ImportJobResponse.model_validate(j) for j in jobs],
        has_more=has_more,
        next_offset=offset + len(jobs) if has_more else None,
    )
    return json_response(200, page)


@get_import_job.get("/v1/<workspace_id>/fhir/imports/<job_id>", responses=responds(200, ImportJobResponse, errors=(409,)))
def get_one_import_job(workspace_id: UUID, job_id: Annotated[str, Path(max_length=64)]):
    deps.authorize_fhir(get_import_job, workspace_id, READ)
    return json_response(200, ImportJobResponse.model_validate(deps.imports().get_job(str(workspace_id), job_id)))
