"""Request and response models of ``POST /v1/{ws}/fhir/patients/match`` (an addition to the
contract: the FHIR ``Patient/$match`` idea, nothing written)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from fhir_platform.api.models import BaseModel, Strict

MAX_MATCH_COUNT = 50


class PatientMatchRequest(Strict):
    example: ClassVar[dict[str, Any] | None] = {
        "resource": {"resourceType": "Patient", "name": [{"family": "Okafor", "given": ["Ngozi"]}], "birthDate": "1988-02-29"},
        "count": 5,
    }

    resource: dict[str, Any] = Field(description="A FHIR R4 Patient (not stored)")
    count: int = Field(5, ge=1, le=MAX_MATCH_COUNT, description="Most candidate entities returned (1-50)")


class MatchEvidence(BaseModel):
    field: str
    level: str
    weight: float = Field(description="Match weight of the level reached, in bits (log2 m/u)")
    tf_adjustment: float | None = Field(None, description="Term-frequency adjustment included in weight, when one applied")


class MatchCandidate(BaseModel):
    entity_id: UUID
    confidence: float = Field(description="Match probability (calibrated; identifier matches at least 0.99)")
    grade: Literal["certain", "probable", "possible", "certainly-not"] = Field(
        description="certain: at or above the workspace's link threshold; probable: in the review band; possible: below it; "
        "certainly-not: demographics contradict"
    )
    evidence: list[MatchEvidence]


class PatientMatchResponse(BaseModel):
    candidates: list[MatchCandidate] = Field(description="Best first; each entity once, scored at its best-matching record")
