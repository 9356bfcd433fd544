"""``POST /v1/{ws}/fhir/patients/match``: ranked candidate entities for a Patient, without writing
anything (the FHIR ``$match`` idea). The Patient is validated like a write (422 naming the field
under ``body.resource``), then resolved exactly as a write would resolve it — features, blocking
members of its keys, their current entities, the workspace's model — and each candidate entity is
returned once, at its best record, with its confidence, grade and per-field evidence. Reads only:
≤ 14 blocking Queries + one alias BatchGetItem (+ the workspace's settings, cached 60 s)."""

from __future__ import annotations

from uuid import UUID

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform.api import deps
from fhir_platform.api.match_models import PatientMatchRequest, PatientMatchResponse
from fhir_platform.api.openapi import responds
from fhir_platform.api.resolver import json_response
from fhir_platform.auth.permissions import READ
from fhir_platform.errors import Unprocessable
from fhir_platform.fhir.validation import FhirValidationError, UnknownResourceTypeError, validate_resource

match_patients = APIGatewayHttpRouter()


@match_patients.post("/v1/<workspace_id>/fhir/patients/match", responses=responds(200, PatientMatchResponse))
def post_patient_match(workspace_id: UUID, body: PatientMatchRequest):
    deps.authorize_fhir(match_patients, workspace_id, READ)
    try:
        validate_resource(body.resource, expected_type="Patient")
    except (FhirValidationError, UnknownResourceTypeError) as exc:
        problems = getattr(exc, "problems", None) or []
        raise Unprocessable(
            f"Invalid Patient resource: {exc}",
            details=[{"loc": ["body", "resource", *_path(p.loc)], "msg": p.msg, "type": p.type} for p in problems]
            or [{"loc": ["body", "resource", "resourceType"], "msg": "must be Patient", "type": "value_error"}],
        ) from None
    candidates = deps.resources().resolver.match_patient(str(workspace_id), body.resource, body.count)
    return json_response(200, PatientMatchResponse.model_validate({"candidates": candidates}))


def _path(loc: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in loc.split(".") if p]
