"""The entity views: ``GET .../fhir/views/{patients,practitioners,locations,appointments,slots,organizations}``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import Field

from fhir_platform.api.models.common import BaseModel


class FhirPatientView(BaseModel):
    entity_id: UUID
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    birth_date: str | None = None
    gender: str | None = None
    phone: str | None = None
    email: str | None = None
    mrn: str | None = None
    address: dict[str, Any] | None = None
    address_state: str | None = None
    address_postal_code: str | None = None
    address_city: str | None = None
    active_conditions: list[str] = Field(default_factory=list)
    active_medications: list[str] = Field(default_factory=list)
    allergies: list[str] = Field(default_factory=list)
    insurance: list[dict[str, Any]] = Field(default_factory=list)
    primary_payer_name: str | None = None
    practice_payer_id: str | None = None
    member_id: str | None = None
    policyholder_name: str | None = None
    policyholder_relationship: str | None = None
    policyholder_dob: str | None = None
    source_system: str | None = None
    canonical_id: str | None = None
    event_count: int = 0
    confidence: float = 1.0
    last_event_at: str | None = None
    created_at: str | None = None


class FhirPractitionerView(BaseModel):
    entity_id: UUID
    name: str | None = None
    npi: str | None = None
    specialty: str | None = None
    phone: str | None = None
    email: str | None = None
    member_id: str | None = None
    scheduling_eligible: bool | None = None
    source_system: str | None = None
    canonical_id: str | None = None
    event_count: int = 0
    last_event_at: str | None = None


class FhirLocationView(BaseModel):
    entity_id: UUID
    name: str | None = None
    address: dict[str, Any] | None = None
    address_line: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    timezone: str | None = None
    facility_id: str | None = None
    phone: str | None = None
    hours: dict[str, Any] | None = None
    source_system: str | None = None
    canonical_id: str | None = None
    event_count: int = 0
    last_event_at: str | None = None


class FhirAppointmentView(BaseModel):
    entity_id: UUID
    status: str | None = None
    start: str | None = None
    end: str | None = None
    patient_name: str | None = None
    practitioner_name: str | None = None
    location_name: str | None = None
    reason: str | None = None
    cancel_reason: str | None = None
    appointment_type: str | None = None
    duration_minutes: int | None = None
    modality: str | None = None
    source_system: str | None = None
    canonical_id: str | None = None
    event_count: int = 0
    last_event_at: str | None = None


class FhirSlotView(BaseModel):
    entity_id: UUID
    status: str | None = None
    start: str | None = None
    end: str | None = None
    schedule_ref: str | None = None
    provider_name: str | None = None
    provider_id: str | None = None
    facility_id: str | None = None
    specialty: str | None = None
    visit_type_ids: str | None = None
    visit_type_names: str | None = None
    source_system: str | None = None
    canonical_id: str | None = None
    event_count: int = 0
    last_event_at: str | None = None


class FhirOrganizationView(BaseModel):
    entity_id: UUID
    name: str | None = None
    phone: str | None = None
    domain: str | None = None
    industry: str | None = None
    address: dict[str, Any] | None = None
    source_system: str | None = None
    canonical_id: str | None = None
    event_count: int = 0
    last_event_at: str | None = None


class _ViewList(BaseModel):
    """What every view list carries besides its rows (the views' ``total`` is required)."""

    total: int
    has_more: bool = False
    next_offset: int | None = None


class FhirPatientListResponse(_ViewList):
    patients: list[FhirPatientView]


class FhirPractitionerListResponse(_ViewList):
    practitioners: list[FhirPractitionerView]


class FhirLocationListResponse(_ViewList):
    locations: list[FhirLocationView]


class FhirAppointmentListResponse(_ViewList):
    appointments: list[FhirAppointmentView]


class FhirSlotListResponse(_ViewList):
    slots: list[FhirSlotView]


class FhirOrganizationListResponse(_ViewList):
    organizations: list[FhirOrganizationView]
