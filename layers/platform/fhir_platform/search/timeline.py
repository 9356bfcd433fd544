"""Patient timeline and clinical-summary index items (pure; written by ``index_items``).

Every resource in a patient's compartment (except the Patient itself) is an *event* of that
patient's timeline: one item in the patient's timeline partition and one in its domain's, both
sorted by clinical time, written and removed in the resource's own transaction (they are index
items: recomputed and diffed like the others)::

    PK = WS#{ws}#IX#@timeline#{patient}             SK = {occurred_at}#{Type}#{id}
    PK = WS#{ws}#IX#@timeline#{patient}#{domain}    SK = {occurred_at}#{Type}#{id}

Each item carries the whole timeline event, so a page is one Query (newest first, ``Limit``).
Everything on it is derived from the index inputs ``(ws, type, id, data, entity_id,
last_updated, created_at, data_source_id)`` only, deterministically:

- ``occurred_at``: the resource's own clinical time (:data:`CLINICAL_TIME` paths in order, the low
  bound of the first readable one), else ``meta.lastUpdated``; fixed-width UTC milliseconds.
- ``event_id``: :func:`event_uuid` = ``uuid5(ws/Type/id/versionId)`` — the write path gives the
  event of that version the same id, so a timeline event's ``event_id`` equals the history
  entry's.
- ``event_type``: ``created`` when the current version is the resource's first
  (``created_at == last_updated``), else ``updated``; deleted resources are not on the timeline.
- ``source``: the ``data_source_id`` of the current version when it came from a data source, else
  ``platform`` (written through the API or an import without a data source).

Observations of the vital signs the summary shows (:data:`VITALS`, LOINC) also get one item in the
patient's vitals partition, newest first per kind, so "latest weight" is a ``Limit 1`` Query::

    PK = WS#{ws}#IX#@vitals#{patient}               SK = {kind}#{occurred_at}#{id}
"""

from __future__ import annotations

import json
import re
import uuid
from functools import lru_cache
from typing import Any

from fhir_platform.search.normalize import date_range

__all__ = [
    "DOMAINS",
    "VITALS",
    "domain_of",
    "event_uuid",
    "occurred_at",
    "timeline_items",
    "timeline_patients",
    "timeline_pk",
    "vital_items",
    "vitals_pk",
    "display",
]

_EVENT_NAMESPACE = uuid.UUID("0b6f7c1e-58a4-5d0e-9a35-6d2f1c8e4b70")

# resource type -> timeline domain (compartment types not listed are "other")
_DOMAIN_OF = {
    "Encounter": "encounter",
    "Condition": "condition",
    "Observation": "observation",
    "Procedure": "procedure",
    "MedicationRequest": "medication",
    "MedicationStatement": "medication",
    "MedicationAdministration": "medication",
    "MedicationDispense": "medication",
    "Immunization": "immunization",
    "AllergyIntolerance": "allergy",
    "DiagnosticReport": "diagnostic_report",
    "DocumentReference": "document",
    "Appointment": "appointment",
    "Claim": "claim",
    "ExplanationOfBenefit": "claim",
    "CarePlan": "care_plan",
    "CareTeam": "care_plan",
    "Goal": "care_plan",
}
DOMAINS = tuple(sorted({*_DOMAIN_OF.values(), "other"}))

# The resource's own clinical time, first readable path wins (dotted; lists read their first item).
CLINICAL_TIME: dict[str, tuple[str, ...]] = {
    "Encounter": ("period.start", "period.end"),
    "Condition": ("onsetDateTime", "onsetPeriod.start", "recordedDate"),
    "Observation": ("effectiveDateTime", "effectivePeriod.start", "effectiveInstant", "issued"),
    "Procedure": ("performedDateTime", "performedPeriod.start"),
    "MedicationRequest": ("authoredOn",),
    "MedicationStatement": ("effectiveDateTime", "effectivePeriod.start", "dateAsserted"),
    "MedicationAdministration": ("effectiveDateTime", "effectivePeriod.start"),
    "MedicationDispense": ("whenHandedOver", "whenPrepared"),
    "Immunization": ("occurrenceDateTime", "recorded"),
    "AllergyIntolerance": ("onsetDateTime", "onsetPeriod.start", "recordedDate"),
    "DiagnosticReport": ("effectiveDateTime", "effectivePeriod.start", "issued"),
    "DocumentReference": ("context.period.start", "date"),
    "Appointment": ("start", "created"),
    "Claim": ("billablePeriod.start", "created"),
    "ExplanationOfBenefit": ("billablePeriod.start", "created"),
    "CarePlan": ("period.start", "created"),
    "CareTeam": ("period.start",),
    "Goal": ("startDate", "statusDate"),
    "ImagingStudy": ("started",),
    "Device": ("manufactureDate",),
    "ServiceRequest": ("occurrenceDateTime", "occurrencePeriod.start", "authoredOn"),
    "Coverage": ("period.start",),
}

# What the event is about (first readable concept / text), per type.
_WHAT: dict[str, tuple[str, ...]] = {
    "Encounter": ("type", "serviceType", "class.display", "class.code"),
    "MedicationRequest": ("medicationCodeableConcept", "medicationReference"),
    "MedicationStatement": ("medicationCodeableConcept", "medicationReference"),
    "MedicationAdministration": ("medicationCodeableConcept", "medicationReference"),
    "MedicationDispense": ("medicationCodeableConcept", "medicationReference"),
    "Immunization": ("vaccineCode",),
    "DocumentReference": ("type", "description", "category"),
    "Appointment": ("serviceType", "appointmentType", "description", "reasonCode"),
    "Claim": ("type",),
    "ExplanationOfBenefit": ("type",),
    "CarePlan": ("title", "category"),
    "CareTeam": ("name", "category"),
    "Goal": ("description",),
    "ImagingStudy": ("procedureCode", "description", "modality"),
    "Device": ("type", "deviceName.name"),
    "Coverage": ("type", "payor"),
}
_LABEL = {
    "AllergyIntolerance": "Allergy",
    "DocumentReference": "Document",
    "ExplanationOfBenefit": "Explanation of benefit",
}

# LOINC code -> vital kind shown in the summary
VITALS = {
    "85354-9": "blood_pressure",
    "55284-4": "blood_pressure",  # the older LOINC panel code Synthea's sample data uses

    "8480-6": "systolic",
    "8462-4": "diastolic",
    "8867-4": "heart_rate",
    "29463-7": "weight",
    "8302-2": "height",
    "39156-5": "bmi",
    "8310-5": "temperature",
    "8331-1": "temperature",  # oral temperature
}
VITAL_KINDS = tuple(dict.fromkeys(VITALS.values()))
_NOT_RECORDED = {"cancelled", "entered-in-error"}
MAX_PATIENTS = 2  # timeline items per resource are written for at most its first 2 compartment patients


def domain_of(resource_type: str) -> str:
    return _DOMAIN_OF.get(resource_type, "other")


def timeline_pk(ws: str, patient_id: str, domain: str | None = None) -> str:
    return f"WS#{ws}#IX#@timeline#{patient_id}" + (f"#{domain}" if domain else "")


def vitals_pk(ws: str, patient_id: str) -> str:
    return f"WS#{ws}#IX#@vitals#{patient_id}"


def event_uuid(ws: str, resource_type: str, resource_id: str, version: int | str) -> str:
    """The event id of version ``version`` of a resource (the write path uses the same)."""
    return _event_uuid(f"{ws}/{resource_type}/{resource_id}/{version}")


@lru_cache(maxsize=1024)  # pure; a write asks twice per version (its event, its timeline items)
def _event_uuid(name: str) -> str:
    return str(uuid.uuid5(_EVENT_NAMESPACE, name))


def timeline_patients(resource_type: str, data: dict, extraction: Any = None) -> list[str]:
    """The patients whose timeline this resource is on (the ones its timeline items are written
    for; the touch item's per-domain counts move with exactly these). ``extraction``: the
    resource's :class:`~fhir_platform.search.parameters.Extraction`, if any."""
    from fhir_platform.search.parameters import compartment_patient_ids

    if resource_type == "Patient":
        return []
    return list(dict.fromkeys(compartment_patient_ids(resource_type, data, extraction)))[:MAX_PATIENTS]


# --- reading resources ---------------------------------------------------------------------------


def _get(data: Any, path: str) -> Any:
    node = data
    for name in path.split("."):
        if isinstance(node, list):
            node = next((n for n in node if isinstance(n, dict)), None)
        if not isinstance(node, dict):
            return None
        node = node.get(name)
    return node


def concept_text(data: dict, node: Any) -> str | None:
    """Human text of a CodeableConcept / Coding / Reference / string (a ``#id`` reference is looked
    up in ``contained``); a coding's code when nothing else is written."""
    if isinstance(node, list):
        for n in node:
            if (text := concept_text(data, n)) is not None:
                return text
        return None
    if isinstance(node, str):
        return node or None
    if not isinstance(node, dict):
        return None
    ref = node.get("reference")
    if isinstance(ref, str) and ref.startswith("#") and not node.get("display"):
        contained = next((c for c in data.get("contained") or [] if isinstance(c, dict) and c.get("id") == ref[1:]), {})
        node = contained.get("code") or {}
    codings = [c for c in node.get("coding") or [] if isinstance(c, dict)]
    for text in (node.get("text"), node.get("display"), *(c.get("display") for c in codings), *(c.get("code") for c in codings)):
        if isinstance(text, str) and text:
            return text
    return None


def _first_text(data: dict, paths: tuple[str, ...]) -> str | None:
    for path in paths:
        if (text := concept_text(data, _get(data, path))) is not None:
            return text
    return None


def occurred_at(resource_type: str, data: dict, last_updated: str) -> str:
    """Clinical time of the resource as a sort-key instant, else ``last_updated``'s."""
    for path in CLINICAL_TIME.get(resource_type, ("effectiveDateTime", "occurrenceDateTime", "date", "created")):
        value = _get(data, path)
        if isinstance(value, str):
            try:
                return date_range(value)[0]
            except ValueError:
                continue
    return date_range(last_updated)[0]


def _codes(node: Any) -> list[str]:
    nodes = node if isinstance(node, list) else [node]
    return [c["code"] for n in nodes if isinstance(n, dict) for c in n.get("coding") or [] if isinstance(c, dict) and isinstance(c.get("code"), str)]


def _status(resource_type: str, data: dict) -> str | None:
    if resource_type in ("Condition", "AllergyIntolerance"):
        codes = _codes(data.get("clinicalStatus"))
        return codes[0] if codes else None
    if resource_type == "Goal":
        return data.get("lifecycleStatus")
    status = data.get("status")
    return status if isinstance(status, str) else None


def _number(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _quantity(q: Any) -> str | None:
    if not isinstance(q, dict) or q.get("value") is None:
        return None
    unit = q.get("unit") or q.get("code")
    return f"{_number(q['value'])} {unit}" if unit else _number(q["value"])


def observation_value(data: dict) -> str | None:
    """An Observation's value as text: ``72 /min``, ``120/80 mmHg`` (a blood-pressure panel), a
    concept's text, a string."""
    if (q := _quantity(data.get("valueQuantity"))) is not None:
        return q
    bp = _blood_pressure(data)
    if bp:
        return f"{bp['systolic']}/{bp['diastolic']} {bp['unit']}".strip()
    for key in ("valueCodeableConcept", "valueString", "valueBoolean", "valueInteger"):
        if key in data:
            return concept_text(data, data[key]) if key == "valueCodeableConcept" else _number(data[key])
    return None


def _label(resource_type: str) -> str:
    if resource_type in _LABEL:
        return _LABEL[resource_type]
    words = re.findall(r"[A-Z][a-z]*", resource_type)
    return " ".join([words[0], *(w.lower() for w in words[1:])]) if words else resource_type


def subject(resource_type: str, data: dict) -> str | None:
    """What the resource is about: ``General examination``, ``Heart rate``, ``Influenza vaccine``."""
    return _first_text(data, _WHAT.get(resource_type, ("code", "type", "category")))


def display(resource_type: str, data: dict) -> str:
    """One line a person reads: ``Encounter · General examination · finished``,
    ``Observation · Heart rate · 72 /min``."""
    what = subject(resource_type, data)
    detail = observation_value(data) if resource_type == "Observation" else None
    detail = detail or _status(resource_type, data)
    return " · ".join(p for p in (_label(resource_type), what, detail) if p)


# --- items -----------------------------------------------------------------------------------------


def timeline_items(
    ws: str,
    resource_type: str,
    resource_id: str,
    data: dict,
    *,
    entity_id: str | None,
    last_updated: str,
    created_at: str,
    data_source_id: str | None,
    extraction: Any = None,
) -> list[dict]:
    """The timeline items of this version (two per timeline patient; none for a Patient)."""
    patients = timeline_patients(resource_type, data, extraction)
    if not patients:
        return []
    at = occurred_at(resource_type, data, last_updated)
    domain = domain_of(resource_type)
    version = (data.get("meta") or {}).get("versionId") or last_updated
    event = {
        "id": resource_id,
        "rt": resource_type,
        "dm": domain,
        "at": at,
        "d": display(resource_type, data),
        **({"w": w} if (w := subject(resource_type, data)) else {}),
        "et": "created" if date_range(created_at)[0] == date_range(last_updated)[0] else "updated",
        "ev": event_uuid(ws, resource_type, resource_id, version),
        "v": str(version),
        "lu": date_range(last_updated)[0],
        **({"st": s} if (s := _status(resource_type, data)) else {}),
        **({"src": data_source_id} if data_source_id else {}),
        **({"e": entity_id} if entity_id else {}),
    }
    sk = f"{at}#{resource_type}#{resource_id}"
    items = []
    for pid in patients:
        items.append({"PK": timeline_pk(ws, pid), "SK": sk, "p": pid, **event})
        items.append({"PK": timeline_pk(ws, pid, domain), "SK": sk, "p": pid, **event})
    return items


def _blood_pressure(data: dict) -> dict | None:
    parts: dict[str, str] = {}
    unit = ""
    for comp in data.get("component") or []:
        if not isinstance(comp, dict):
            continue
        codes = _codes(comp.get("code"))
        q = comp.get("valueQuantity") or {}
        if q.get("value") is None:
            continue
        for code, name in (("8480-6", "systolic"), ("8462-4", "diastolic")):
            if code in codes:
                parts[name] = _number(q["value"])
                unit = unit or q.get("unit") or q.get("code") or ""
    if "systolic" in parts and "diastolic" in parts:
        return {**parts, "unit": unit}
    return None


def vital_items(ws: str, resource_type: str, resource_id: str, data: dict, *, last_updated: str, extraction: Any = None) -> list[dict]:
    """One vitals item per timeline patient for an Observation of a :data:`VITALS` code with a value
    (not cancelled / entered in error)."""
    if resource_type != "Observation" or data.get("status") in _NOT_RECORDED:
        return []
    kind = next((VITALS[c] for c in _codes(data.get("code")) if c in VITALS), None)
    if kind is None:
        return []
    attrs: dict[str, Any]
    if kind == "blood_pressure":
        bp = _blood_pressure(data)
        if bp is None:
            return []
        attrs = {"sys": bp["systolic"], "dia": bp["diastolic"], "u": bp["unit"]}
    else:
        q = data.get("valueQuantity")
        if not isinstance(q, dict) or q.get("value") is None:
            return []
        attrs = {"val": _number(q["value"]), "u": q.get("unit") or q.get("code") or ""}
    at = occurred_at(resource_type, data, last_updated)
    return [
        {"PK": vitals_pk(ws, pid), "SK": f"{kind}#{at}#{resource_id}", "id": resource_id, "kind": kind, "at": at, **attrs}
        for pid in timeline_patients(resource_type, data, extraction)
    ]
