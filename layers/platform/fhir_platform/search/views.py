"""Flattened view rows (``GET /fhir/views/*``) built from current resources at read time.

Rows are computed from the CURRENT item of the resource (``resource`` = parsed data, plus
``entity_id``/``created_at``/``source_system`` when the item has them) every time they are read, so
they are never stale. The patient row also needs the patient's partition
(:func:`~fhir_platform.search.indexing.patient_partition_pk`): its touch item (``last_event_at``,
``event_count``) and the *facts* the write path keeps there — one item per active Condition,
MedicationRequest/MedicationStatement, AllergyIntolerance and Coverage — which one Query returns.

Field names follow the contract's ``Fhir*View`` schemas; anything the resource does not carry is
``None`` (or ``[]``), never invented. Patient rows (list and view) give the phone in E.164
(:func:`_phone_e164`); the other views show it as written.
"""

from __future__ import annotations

from datetime import datetime

from fhir_platform.search.indexing import FACT_PREFIX, TOUCH_SK
from fhir_platform.search.normalize import format_phone

__all__ = [
    "appointment_row",
    "location_row",
    "organization_row",
    "patient_list_item",
    "patient_row",
    "practitioner_row",
    "slot_row",
]

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"


def _first(items: object) -> dict:
    if isinstance(items, list):
        return next((i for i in items if isinstance(i, dict)), {})
    return items if isinstance(items, dict) else {}


def _text(concept: object) -> str | None:
    c = _first(concept)
    codings = [x for x in c.get("coding") or [] if isinstance(x, dict)]
    return c.get("text") or c.get("display") or next((x["display"] for x in codings if x.get("display")), None)


def _name(resource: dict) -> tuple[str | None, str | None, str | None]:
    """``(full, first, last)`` from the official/usual (else first) HumanName."""
    names = [n for n in resource.get("name") or [] if isinstance(n, dict)]
    if not names:
        return None, None, None
    n = next((x for x in names if x.get("use") in ("official", "usual")), names[0])
    given = " ".join(g for g in n.get("given") or [] if isinstance(g, str)) or None
    family = n.get("family")
    full = n.get("text") or " ".join(p for p in (given, family) if p) or None
    return full, given, family


def _telecom(resource: dict, system: str) -> str | None:
    points = [
        t for t in resource.get("telecom") or [] if isinstance(t, dict) and t.get("system") == system and t.get("value")
    ]
    points.sort(key=lambda t: (t.get("use") == "old", t.get("rank", 99)))
    return points[0]["value"] if points else None


def _phone_e164(resource: dict) -> str | None:
    """The primary phone in E.164 (``+15555887087``; numbers without a country code are in
    ``DEFAULT_PHONE_REGION``), or as written when it is not a full-length number
    (:func:`~fhir_platform.search.normalize.format_phone`). Patient rows: the contract's patient
    phone is E.164."""
    value = _telecom(resource, "phone")
    return format_phone(value) if value is not None else None


def _mrn(resource: dict) -> str | None:
    for ident in resource.get("identifier") or []:
        codes = {c.get("code") for c in (ident.get("type") or {}).get("coding") or []}
        if "MR" in codes and ident.get("value"):
            return ident["value"]
    return None


def _address(resource: dict) -> dict | None:
    a = _first(resource.get("address"))
    return {k: v for k, v in a.items() if k != "extension"} or None


def _common(item: dict) -> dict:
    resource = item["resource"]
    return {
        "entity_id": item.get("entity_id"),
        "source_system": item.get("source_system"),
        "canonical_id": f"{resource['resourceType']}/{resource['id']}",
        "event_count": int(item.get("event_count", 0) or 0),
        "last_event_at": item.get("last_event_at") or item.get("last_updated"),
    }


def patient_row(item: dict, partition: list[dict]) -> dict:
    """``FhirPatientView`` from the Patient's CURRENT item and its partition's items."""
    p = item["resource"]
    full, first, last = _name(p)
    facts: dict[str, list[dict]] = {"condition": [], "medication": [], "allergy": [], "insurance": []}
    touch: dict = {}
    for it in partition:
        if it["SK"] == TOUCH_SK:
            touch = it
        elif it["SK"].startswith(FACT_PREFIX):
            facts.setdefault(it["SK"][len(FACT_PREFIX) :].split("#", 1)[0], []).append(it)
    insurance = sorted(facts["insurance"], key=lambda f: (int(f.get("order", 99)), f["SK"]))
    primary = insurance[0] if insurance else {}
    address = _address(p)
    return {
        **_common({**item, **{k: touch[k] for k in ("last_event_at", "event_count") if k in touch}}),
        "name": full,
        "first_name": first,
        "last_name": last,
        "birth_date": p.get("birthDate"),
        "gender": p.get("gender"),
        "phone": _phone_e164(p),
        "email": _telecom(p, "email"),
        "mrn": _mrn(p),
        "address": address,
        "address_state": (address or {}).get("state"),
        "address_postal_code": (address or {}).get("postalCode"),
        "address_city": (address or {}).get("city"),
        "active_conditions": sorted({f["d"] for f in facts["condition"]}),
        "active_medications": sorted({f["d"] for f in facts["medication"]}),
        "allergies": sorted({f["d"] for f in facts["allergy"]}),
        "insurance": [
            {k: f[k] for k in ("payer", "member_id", "relationship", "policyholder", "type") if f.get(k)}
            for f in insurance
        ],
        "primary_payer_name": primary.get("payer"),
        "practice_payer_id": None,
        "member_id": primary.get("member_id"),
        "policyholder_name": primary.get("policyholder"),
        "policyholder_relationship": primary.get("relationship"),
        "policyholder_dob": None,
        "confidence": float(item.get("confidence", 1.0)),
        "created_at": item.get("created_at"),
    }


def patient_list_item(item: dict) -> dict:
    """``PatientListItem`` (``GET /fhir/patients``) from a patient page row (CURRENT item +
    ``resource`` + ``last_event_at``/``event_count`` from the touch item)."""
    p = item["resource"]
    return {
        "entity_id": item.get("entity_id"),
        "name": _name(p)[0],
        "birth_date": p.get("birthDate"),
        "gender": p.get("gender"),
        "phone": _phone_e164(p),
        "email": _telecom(p, "email"),
        "mrn": _mrn(p),
        "event_count": int(item.get("event_count", 0) or 0),
        "last_event_at": item.get("last_event_at"),
    }


def practitioner_row(item: dict, role: dict | None = None) -> dict:
    """``FhirPractitionerView``; ``role`` (a PractitionerRole) supplies the specialty when given."""
    p = item["resource"]
    npi = next((i.get("value") for i in p.get("identifier") or [] if i.get("system") == NPI_SYSTEM), None)
    specialty = _text((role or {}).get("specialty")) or _text(_first(p.get("qualification")).get("code"))
    return {
        **_common(item),
        "name": _name(p)[0],
        "npi": npi,
        "specialty": specialty,
        "phone": _telecom(p, "phone") or _telecom(role or {}, "phone"),
        "email": _telecom(p, "email") or _telecom(role or {}, "email"),
        "member_id": None,
        "scheduling_eligible": p.get("active") if isinstance(p.get("active"), bool) else None,
    }


def location_row(item: dict) -> dict:
    """``FhirLocationView``."""
    loc = item["resource"]
    address = _address(loc) or {}
    position = loc.get("position") or {}
    hours = loc.get("hoursOfOperation")
    return {
        **_common(item),
        "name": loc.get("name"),
        "address": address or None,
        "address_line": ", ".join(address.get("line") or []) or None,
        "city": address.get("city"),
        "state": address.get("state"),
        "postal_code": address.get("postalCode"),
        "country": address.get("country"),
        "latitude": position.get("latitude"),
        "longitude": position.get("longitude"),
        "timezone": next(
            (e.get("valueCode") for e in loc.get("extension") or [] if str(e.get("url", "")).endswith("timezone")), None
        ),
        # the Location's id: what slots report as their facility and what ?facility_id= filters by
        "facility_id": loc.get("id"),
        "phone": _telecom(loc, "phone"),
        "hours": {"hoursOfOperation": hours} if hours else None,
    }


def organization_row(item: dict) -> dict:
    """``FhirOrganizationView``."""
    org = item["resource"]
    email = _telecom(org, "email")
    url = _telecom(org, "url")
    domain = email.rsplit("@", 1)[1].lower() if email and "@" in email else None
    if domain is None and url:
        domain = url.split("//", 1)[-1].split("/", 1)[0].lower()
    return {
        **_common(item),
        "name": org.get("name"),
        "phone": _telecom(org, "phone"),
        "domain": domain,
        "industry": _text(org.get("type")),
        "address": _address(org),
    }


def _actor(resource: dict, rtype: str) -> dict:
    for part in resource.get("participant") or []:
        actor = part.get("actor") or {}
        if str(actor.get("reference", "")).startswith(f"{rtype}/") or actor.get("type") == rtype:
            return actor
    return {}


def _minutes(start: str | None, end: str | None) -> int | None:
    try:
        return int((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() // 60)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def appointment_row(item: dict) -> dict:
    """``FhirAppointmentView``; names come from the participants' reference displays."""
    a = item["resource"]
    reason = _text(a.get("reasonCode")) or _first(a.get("reasonReference")).get("display")
    return {
        **_common(item),
        "status": a.get("status"),
        "start": a.get("start"),
        "end": a.get("end"),
        "patient_name": _actor(a, "Patient").get("display"),
        "practitioner_name": _actor(a, "Practitioner").get("display"),
        "location_name": _actor(a, "Location").get("display"),
        "reason": reason,
        "cancel_reason": _text(a.get("cancelationReason")),
        "appointment_type": _text(a.get("appointmentType")),
        "duration_minutes": a.get("minutesDuration") or _minutes(a.get("start"), a.get("end")),
        "modality": _text(a.get("serviceCategory")),
    }


def slot_row(item: dict, schedule: dict | None = None) -> dict:
    """``FhirSlotView``; ``schedule`` (the Slot's Schedule) supplies provider and facility."""
    s = item["resource"]
    actors = (schedule or {}).get("actor") or []
    provider = next(
        (x for x in actors if str(x.get("reference", "")).startswith(("Practitioner/", "PractitionerRole/"))), {}
    )
    facility = next((x for x in actors if str(x.get("reference", "")).startswith("Location/")), {})
    types = [c for c in (s.get("serviceType") or []) + ([s["appointmentType"]] if s.get("appointmentType") else [])]
    codes = [x.get("code") for c in types for x in c.get("coding") or [] if x.get("code")]
    names = [n for n in (_text(c) for c in types) if n]
    return {
        **_common(item),
        "status": s.get("status"),
        "start": s.get("start"),
        "end": s.get("end"),
        "schedule_ref": (s.get("schedule") or {}).get("reference"),
        "provider_name": provider.get("display"),
        "provider_id": str(provider.get("reference", "")).split("/")[-1] or None,
        "facility_id": str(facility.get("reference", "")).split("/")[-1] or None,
        "specialty": _text(s.get("specialty")) or _text((schedule or {}).get("specialty")),
        "visit_type_ids": ",".join(codes) or None,
        "visit_type_names": ", ".join(names) or None,
    }
