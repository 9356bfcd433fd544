"""The patient record: timeline and summary."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field, model_validator

from fhir_platform.api.models.common import BaseModel


class PatientTimelineResponse(BaseModel):
    """``GET .../fhir/patients/{patient_id}/timeline``: ``events`` newest first by clinical time
    (each: ``event_id``, ``occurred_at``, ``domain``, ``resource_type``, ``resource_id``,
    ``reference``, ``event_type``, ``display``, ``status``, ``source``, ``data_source_id``,
    ``entity_id``, ``version``, ``last_updated``); ``total`` exact (of the ``domain`` when given)."""

    entity_id: UUID
    patient_id: str
    events: list[dict[str, Any]]
    total: int
    has_more: bool = False
    next_offset: int | None = None


class PatientSummaryResponse(BaseModel):
    """``GET .../fhir/patients/{patient_id}/summary``: the contract's fields plus ``clinical``
    (active problems, medications, allergies, latest vital signs, recent encounters,
    immunizations, care team, coverage; every item with its resource ``reference``)."""

    entity_id: UUID
    entity_type: str
    display_name: str | None
    event_count: int
    last_event_at: str | None
    patient_id: str
    reference: str
    name: str | None = None
    phone: str | None = Field(default=None, description="Primary phone number (E.164 when it is a full number, else as written)")
    email: str | None = None
    birth_date: str | None = None
    gender: str | None = None
    mrn: str | None = None
    clinical: dict[str, Any]
    state: dict[str, Any] = Field(
        default_factory=dict,
        description="Deprecated (contract): the patient's demographics as one object; use the typed fields.",
        json_schema_extra={"deprecated": True},
    )

    @model_validator(mode="after")
    def _state(self) -> PatientSummaryResponse:
        if not self.state:
            self.state = {k: getattr(self, k) for k in ("name", "birth_date", "gender", "phone", "email", "mrn") if getattr(self, k) is not None}
        return self
