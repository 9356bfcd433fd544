"""Search parameters per resource type, and how their values are extracted from FHIR JSON.

A :class:`SearchParam` names a parameter, its kind and the element paths it reads. Paths are a tiny
FHIRPath subset evaluated over the JSON dict (lists are flattened at every step):

- ``name.given`` — child elements;
- ``effective[x]`` — a choice element (``effectiveDateTime``, ``effectivePeriod``, ...);
- ``telecom(system=phone|sms)`` — keep the elements whose sub-path ``system`` has one of the values
  (the sub-path may be dotted: ``identifier(type.coding.code=MR)``).

Values are then read according to the kind and the element's shape:

==========  ======================================================================================
kind        values extracted
==========  ======================================================================================
string      raw strings: a string, HumanName parts (text/family/given/prefix/suffix), Address parts,
            CodeableConcept text + coding displays, Coding/Reference display
text        (``q``) the same strings; matching is on their words
token       ``(system, code)``: Coding, CodeableConcept codings, Identifier/ContactPoint
            ``(system, value)``, plain codes/booleans with system ``""``
date        ``(low, high)`` UTC ranges (:func:`~fhir_platform.search.normalize.date_range`); a Period
            is ``[start.low, end.high)`` with open ends unbounded
reference   ``(type, id)``: ``Type/id``, absolute ``.../Type/id``, ``urn:uuid:id`` (type ``""``);
            ``#contained`` references are skipped; ``targets`` keeps only those types (or ``""``)
phone       normalised digits (:func:`~fhir_platform.search.normalize.normalize_phone`)
id          the resource id (``_id``; served by GetItem, never indexed)
==========  ======================================================================================

Types listed in ``_REGISTRY`` have hand-written parameter sets; any other storable type gets the
common ones (``_id``, ``_lastUpdated``, ``q`` and, when the type has the element, ``identifier``,
``status``, ``patient``, ``subject``, ``encounter``). Params of one type whose extraction is
identical share an index *family* (``Condition.status`` and ``clinical-status`` are one family), so
they cost one set of index items.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache, lru_cache
from typing import Any

from fhir_platform.search.normalize import DATE_MAX, DATE_MIN, DateRange, date_range, normalize_phone

__all__ = [
    "Extraction",
    "Kind",
    "SearchParam",
    "compartment_patient_ids",
    "extract",
    "family_params",
    "params_for",
    "parse_reference",
]

ORDERED_SHARDS = 8  # string / text / date / _lastUpdated families: writes spread over 8 partitions
HOT = 8  # exact families whose values are few and shared by many resources (status, code, gender)
WARM = 4  # references many resources share (practitioner, location, organization)


class Kind(StrEnum):
    STRING = "string"
    TEXT = "text"
    TOKEN = "token"
    DATE = "date"
    REFERENCE = "reference"
    PHONE = "phone"
    ID = "id"


ORDERED_KINDS = frozenset({Kind.STRING, Kind.TEXT, Kind.DATE})


@dataclass(frozen=True)
class SearchParam:
    name: str
    kind: Kind
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()
    shards: int = 1
    family: str = field(default="", compare=False)

    @property
    def ordered(self) -> bool:
        return self.kind in ORDERED_KINDS

    @property
    def shard_count(self) -> int:
        return ORDERED_SHARDS if self.ordered else self.shards


# --- path evaluation ---------------------------------------------------------------------------

_SEGMENT = re.compile(r"(\w+)(\[x\])?(?:\(([\w.]+)=([^)]*)\))?")


@cache
def _compile(path: str) -> tuple[tuple[str, bool, str | None, frozenset[str]], ...]:
    segments = []
    for name, choice, fpath, fvals in _SEGMENT.findall(path):
        segments.append((name, bool(choice), fpath or None, frozenset(fvals.split("|")) if fpath else frozenset()))
    return tuple(segments)


def _flat(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _step(nodes: list[Any], segment: tuple[str, bool, str | None, frozenset[str]]) -> list[Any]:
    """One path segment applied to ``nodes``."""
    name, choice, fpath, fvals = segment
    out: list[Any] = []
    for n in nodes:
        if not isinstance(n, dict):
            continue
        if choice:
            for key, value in n.items():
                if key.startswith(name) and key[len(name) : len(name) + 1].isupper():
                    out.extend(_flat(value))
        else:
            value = n.get(name)
            if value is not None:
                if isinstance(value, list):
                    out.extend(value)
                else:
                    out.append(value)
    if fpath:
        out = [o for o in out if any(isinstance(v, str) and v in fvals for v in select(o, fpath))]
    return out


def select(node: Any, path: str) -> list[Any]:
    """Evaluate a path (see module docstring) over a JSON value; always a flat list."""
    nodes = [node]
    for segment in _compile(path):
        nodes = _step(nodes, segment)
    return nodes


@cache
def _prefixes(path: str) -> tuple[tuple[str, tuple[str, bool, str | None, frozenset[str]]], ...]:
    """``(the path up to and including the segment, the segment)`` for each segment of ``path``."""
    return tuple((path[: m.end()], segment) for m, segment in zip(_SEGMENT.finditer(path), _compile(path)))


# --- value readers per kind --------------------------------------------------------------------

_ADDRESS_KEYS = ("line", "city", "district", "state", "postalCode", "country")


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if not isinstance(node, dict):
        return []
    if "coding" in node:  # CodeableConcept
        return [s for s in [node.get("text"), *(c.get("display") for c in _flat(node["coding"]))] if isinstance(s, str)]
    if any(k in node for k in _ADDRESS_KEYS):
        parts = [node.get("text"), *_flat(node.get("line")), *(node.get(k) for k in _ADDRESS_KEYS[1:])]
        return [s for s in parts if isinstance(s, str)]
    if any(k in node for k in ("family", "given", "prefix", "suffix")):  # HumanName
        parts = [node.get("text"), node.get("family"), *_flat(node.get("given"))]
        parts += [*_flat(node.get("prefix")), *_flat(node.get("suffix"))]
        return [s for s in parts if isinstance(s, str)]
    for key in ("display", "text", "name"):
        if isinstance(node.get(key), str):
            return [node[key]]
    return []


def _tokens(node: Any) -> list[tuple[str, str]]:
    if isinstance(node, bool):
        return [("", "true" if node else "false")]
    if isinstance(node, (str, int)):
        return [("", str(node))]
    if not isinstance(node, dict):
        return []
    if "coding" in node:
        return [t for c in _flat(node["coding"]) for t in _tokens(c)]
    code = node.get("code") if "code" in node else node.get("value")
    if isinstance(code, (str, int)) and not isinstance(code, bool):
        system = node.get("system")
        return [(system if isinstance(system, str) else "", str(code))]
    return []


def _dates(node: Any) -> list[DateRange]:
    if isinstance(node, str):
        try:
            return [date_range(node)]
        except ValueError:
            return []
    if isinstance(node, dict) and ("start" in node or "end" in node):
        try:
            low = date_range(node["start"])[0] if isinstance(node.get("start"), str) else DATE_MIN
            high = date_range(node["end"])[1] if isinstance(node.get("end"), str) else DATE_MAX
        except ValueError:
            return []
        return [(low, high)] if low < high else []
    return []


_ABSOLUTE = re.compile(r"^https?://.*/([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


@lru_cache(maxsize=8192)  # pure; a batch repeats its references (every resource of a patient names it)
def parse_reference(ref: str) -> tuple[str, str] | None:
    """``(type, id)`` of a reference string; type ``""`` when the string does not say (urn, bare id).

    ``Patient/1``, ``http://x/fhir/Patient/1``, ``Patient/1/_history/3`` → ``("Patient", "1")``;
    ``urn:uuid:abc`` and ``abc`` → ``("", "abc")``; ``#contained`` → ``None``.
    """
    ref = ref.strip()
    if not ref or ref.startswith("#"):
        return None
    ref = re.sub(r"/_history/[^/]+$", "", ref)
    if ref.startswith(("urn:uuid:", "urn:oid:")):
        return "", ref.split(":", 2)[2]
    match = _RELATIVE.match(ref) or _ABSOLUTE.match(ref)
    if match:
        return match.group(1), match.group(2)
    if _ID.match(ref):
        return "", ref
    return None


def _references(node: Any) -> list[tuple[str, str]]:
    if isinstance(node, dict):
        node = node.get("reference")
    if isinstance(node, str):
        parsed = parse_reference(node)
        return [parsed] if parsed else []
    return []


def _phones(node: Any) -> list[str]:
    value = node.get("value") if isinstance(node, dict) else node
    if isinstance(value, str):
        digits = normalize_phone(value)
        return [digits] if digits else []
    return []


_READERS = {
    Kind.STRING: _strings,
    Kind.TEXT: _strings,
    Kind.TOKEN: _tokens,
    Kind.DATE: _dates,
    Kind.REFERENCE: _references,
    Kind.PHONE: _phones,
}


def extract(param: SearchParam, resource: dict) -> list[Any]:
    """The values of ``param`` in ``resource`` (kind-specific, see module docstring), de-duplicated."""
    if param.kind is Kind.ID:
        return [resource["id"]] if isinstance(resource.get("id"), str) else []
    read = _READERS[param.kind]
    out: list[Any] = []
    for path in param.paths:
        for node in select(resource, path):
            for value in read(node):
                if param.targets and param.kind is Kind.REFERENCE and value[0] and value[0] not in param.targets:
                    continue
                if value not in out:
                    out.append(value)
    return out


class Extraction:
    """The search values of one resource, every path walked once: :meth:`select` keeps the nodes
    of each path prefix, so paths sharing one (``name``, ``name.family``, ``name.given``) share its
    walk; :meth:`extract` reads each (kind, path) once and keeps each parameter's values. The same
    results as :func:`select` / :func:`extract` (tested over every fixture resource), for one
    version of a resource that is not changed while it is in use (:func:`index_items` builds all
    its families from one). Results are shared: callers must not change them."""

    __slots__ = ("resource", "_nodes", "_read", "_values")

    def __init__(self, resource: dict) -> None:
        self.resource = resource
        self._nodes: dict[str, list[Any]] = {}
        self._read: dict[tuple[Any, str], list[Any]] = {}
        self._values: dict[int, tuple[SearchParam, list[Any]]] = {}

    def select(self, path: str) -> list[Any]:
        cache = self._nodes
        nodes = cache.get(path)
        if nodes is not None:
            return nodes
        nodes = [self.resource]
        for prefix, segment in _prefixes(path):
            got = cache.get(prefix)
            if got is None:
                got = cache[prefix] = _step(nodes, segment)
            nodes = got
        return nodes

    def extract(self, param: SearchParam) -> list[Any]:
        hit = self._values.get(id(param))
        if hit is not None and hit[0] is param:
            return hit[1]
        if param.kind is Kind.ID:
            out = extract(param, self.resource)
        else:
            read = _READERS[param.kind]
            targets = param.targets if param.kind is Kind.REFERENCE else ()
            out = []
            for path in param.paths:
                key = (read, path)
                values = self._read.get(key)
                if values is None:
                    values = self._read[key] = [value for node in self.select(path) for value in read(node)]
                for value in values:
                    if targets and value[0] and value[0] not in targets:
                        continue
                    if value not in out:
                        out.append(value)
        self._values[id(param)] = (param, out)
        return out


# --- the registry ------------------------------------------------------------------------------


def _s(name: str, *paths: str) -> SearchParam:
    return SearchParam(name, Kind.STRING, paths)


def _q(*paths: str) -> SearchParam:
    return SearchParam("q", Kind.TEXT, paths)


def _t(name: str, *paths: str, shards: int = 1) -> SearchParam:
    return SearchParam(name, Kind.TOKEN, paths, shards=shards)


def _d(name: str, *paths: str) -> SearchParam:
    return SearchParam(name, Kind.DATE, paths)


def _r(name: str, *paths: str, targets: tuple[str, ...] = (), shards: int = 1) -> SearchParam:
    return SearchParam(name, Kind.REFERENCE, paths, targets=targets, shards=shards)


def _phone(path: str = "telecom(system=phone|sms)") -> SearchParam:
    return SearchParam("phone", Kind.PHONE, (path,))


PT, PR, ORG, LOC = ("Patient",), ("Practitioner",), ("Organization",), ("Location",)


def _email() -> SearchParam:
    return _t("email", "telecom(system=email)")


def _status(path: str = "status") -> SearchParam:
    return _t("status", path, shards=HOT)


def _subject_pair(path: str = "subject") -> list[SearchParam]:
    return [_r("patient", path, targets=PT), _r("subject", path)]


def _person(*extra: SearchParam) -> list[SearchParam]:
    return [
        _s("name", "name"),
        _s("family", "name.family"),
        _s("given", "name.given"),
        _t("gender", "gender", shards=HOT),
        _phone(),
        _email(),
        _t("active", "active", shards=HOT),
        _s("address-city", "address.city"),
        _s("address-state", "address.state"),
        _s("address-postalcode", "address.postalCode"),
        _q("name"),
        *extra,
    ]


_REGISTRY: dict[str, list[SearchParam]] = {
    "Patient": _person(
        _d("birthdate", "birthDate"),
        _r("organization", "managingOrganization", targets=ORG, shards=WARM),
        _r("general-practitioner", "generalPractitioner", shards=WARM),
        _r("practitioner", "generalPractitioner", targets=PR, shards=WARM),
        _t("mrn", "identifier(type.coding.code=MR)"),
    ),
    "Practitioner": _person(),
    "PractitionerRole": [
        _t("active", "active", shards=HOT),
        _r("practitioner", "practitioner", shards=WARM),
        _r("organization", "organization", shards=WARM),
        _r("location", "location", shards=WARM),
        _r("service", "healthcareService"),
        _t("specialty", "specialty", shards=HOT),
        _t("role", "code", shards=HOT),
        _phone(),
        _email(),
        _q("code", "specialty", "practitioner", "organization"),
    ],
    "Organization": [
        _s("name", "name", "alias"),
        _t("active", "active", shards=HOT),
        _t("type", "type", shards=HOT),
        _r("partof", "partOf"),
        _phone(),
        _email(),
        _s("address-city", "address.city"),
        _s("address-state", "address.state"),
        _s("address-postalcode", "address.postalCode"),
        _q("name", "alias"),
    ],
    "Location": [
        _s("name", "name", "alias"),
        _status(),
        _t("type", "type", shards=HOT),
        _r("organization", "managingOrganization", shards=WARM),
        _r("partof", "partOf"),
        _phone(),
        _s("address-city", "address.city"),
        _s("address-state", "address.state"),
        _s("address-postalcode", "address.postalCode"),
        _q("name", "alias"),
    ],
    "Encounter": [
        _status(),
        _t("class", "class", shards=HOT),
        _t("type", "type", shards=HOT),
        *_subject_pair(),
        _d("date", "period"),
        _r("practitioner", "participant.individual", targets=PR, shards=WARM),
        _r("participant", "participant.individual", shards=WARM),
        _r("location", "location.location", shards=WARM),
        _r("organization", "serviceProvider", shards=WARM),
        _r("service-provider", "serviceProvider", shards=WARM),
        _t("reason-code", "reasonCode", shards=HOT),
        _q("type", "reasonCode", "serviceType"),
    ],
    "Observation": [
        _status(),
        _t("code", "code", shards=HOT),
        _t("category", "category", shards=HOT),
        *_subject_pair(),
        _r("encounter", "encounter"),
        _d("date", "effective[x]", "issued"),
        _r("performer", "performer", shards=WARM),
        _r("practitioner", "performer", targets=PR, shards=WARM),
        _r("organization", "performer", targets=ORG, shards=WARM),
        _t("value-concept", "valueCodeableConcept", shards=HOT),
        _q("code"),
    ],
    "Condition": [
        _t("clinical-status", "clinicalStatus", shards=HOT),
        _status("clinicalStatus"),
        _t("verification-status", "verificationStatus", shards=HOT),
        _t("category", "category", shards=HOT),
        _t("code", "code", shards=HOT),
        _t("severity", "severity", shards=HOT),
        *_subject_pair(),
        _r("encounter", "encounter"),
        _d("date", "onset[x]", "recordedDate"),
        _d("onset-date", "onset[x]"),
        _d("recorded-date", "recordedDate"),
        _d("abatement-date", "abatement[x]"),
        _r("practitioner", "asserter", "recorder", targets=PR, shards=WARM),
        _q("code"),
    ],
    "Procedure": [
        _status(),
        _t("code", "code", shards=HOT),
        _t("category", "category", shards=HOT),
        *_subject_pair(),
        _r("encounter", "encounter"),
        _d("date", "performed[x]"),
        _r("practitioner", "performer.actor", targets=PR, shards=WARM),
        _r("performer", "performer.actor", shards=WARM),
        _r("location", "location", shards=WARM),
        _t("reason-code", "reasonCode", shards=HOT),
        _q("code"),
    ],
    "MedicationRequest": [
        _status(),
        _t("intent", "intent", shards=HOT),
        _t("category", "category", shards=HOT),
        _t("code", "medicationCodeableConcept", shards=HOT),
        _r("medication", "medicationReference"),
        *_subject_pair(),
        _r("encounter", "encounter"),
        _d("date", "authoredOn"),
        _d("authoredon", "authoredOn"),
        _r("practitioner", "requester", "performer", targets=PR, shards=WARM),
        _r("requester", "requester", shards=WARM),
        _q("medicationCodeableConcept", "medicationReference"),
    ],
    "MedicationStatement": [
        _status(),
        _t("category", "category", shards=HOT),
        _t("code", "medicationCodeableConcept", shards=HOT),
        _r("medication", "medicationReference"),
        *_subject_pair(),
        _r("encounter", "context"),
        _r("context", "context"),
        _d("date", "effective[x]", "dateAsserted"),
        _d("effective", "effective[x]"),
        _r("source", "informationSource", shards=WARM),
        _r("practitioner", "informationSource", targets=PR, shards=WARM),
        _q("medicationCodeableConcept", "medicationReference"),
    ],
    "AllergyIntolerance": [
        _t("clinical-status", "clinicalStatus", shards=HOT),
        _status("clinicalStatus"),
        _t("verification-status", "verificationStatus", shards=HOT),
        _t("type", "type", shards=HOT),
        _t("category", "category", shards=HOT),
        _t("criticality", "criticality", shards=HOT),
        _t("code", "code", "reaction.substance", shards=HOT),
        _r("patient", "patient", targets=PT),
        _r("encounter", "encounter"),
        _d("date", "recordedDate"),
        _d("onset", "onset[x]", "reaction.onset"),
        _r("practitioner", "recorder", "asserter", targets=PR, shards=WARM),
        _q("code", "reaction.substance", "reaction.manifestation"),
    ],
    "Immunization": [
        _status(),
        _t("vaccine-code", "vaccineCode", shards=HOT),
        _t("code", "vaccineCode", shards=HOT),
        _r("patient", "patient", targets=PT),
        _r("encounter", "encounter"),
        _d("date", "occurrence[x]"),
        _r("location", "location", shards=WARM),
        _r("practitioner", "performer.actor", targets=PR, shards=WARM),
        _r("performer", "performer.actor", shards=WARM),
        _t("reason-code", "reasonCode", shards=HOT),
        _t("lot-number", "lotNumber"),
        _q("vaccineCode"),
    ],
    "DiagnosticReport": [
        _status(),
        _t("code", "code", shards=HOT),
        _t("category", "category", shards=HOT),
        *_subject_pair(),
        _r("encounter", "encounter"),
        _d("date", "effective[x]"),
        _d("issued", "issued"),
        _r("practitioner", "performer", "resultsInterpreter", targets=PR, shards=WARM),
        _r("performer", "performer", shards=WARM),
        _r("result", "result"),
        _t("conclusion", "conclusionCode", shards=HOT),
        _q("code"),
    ],
    "Appointment": [
        _status(),
        _d("date", "start"),
        _r("patient", "participant.actor", targets=PT),
        _r("practitioner", "participant.actor", targets=PR, shards=WARM),
        _r("location", "participant.actor", targets=LOC, shards=WARM),
        _r("actor", "participant.actor", shards=WARM),
        _t("service-type", "serviceType", shards=HOT),
        _t("appointment-type", "appointmentType", shards=HOT),
        _t("specialty", "specialty", shards=HOT),
        _t("reason-code", "reasonCode", shards=HOT),
        _r("slot", "slot"),
        _q("description", "serviceType", "appointmentType", "reasonCode", "participant.actor"),
    ],
    "Slot": [
        _status(),
        _d("date", "start"),
        _d("start", "start"),
        _r("schedule", "schedule", shards=WARM),
        _t("service-type", "serviceType", shards=HOT),
        _t("specialty", "specialty", shards=HOT),
        _t("appointment-type", "appointmentType", shards=HOT),
        _q("serviceType", "specialty", "appointmentType", "comment"),
    ],
    "Schedule": [
        _t("active", "active", shards=HOT),
        _r("actor", "actor", shards=WARM),
        _r("practitioner", "actor", targets=PR, shards=WARM),
        _r("location", "actor", targets=LOC, shards=WARM),
        _d("date", "planningHorizon"),
        _t("service-type", "serviceType", shards=HOT),
        _t("specialty", "specialty", shards=HOT),
        _q("serviceType", "specialty", "actor", "comment"),
    ],
    "Coverage": [
        _status(),
        _t("type", "type", shards=HOT),
        _r("patient", "beneficiary", targets=PT),
        _r("beneficiary", "beneficiary"),
        _r("subscriber", "subscriber"),
        _r("policy-holder", "policyHolder"),
        _r("payor", "payor", shards=WARM),
        _r("organization", "payor", targets=ORG, shards=WARM),
        _d("date", "period"),
        _q("type", "payor", "class.name", "class.value"),
    ],
    "CarePlan": [
        _status(),
        _t("intent", "intent", shards=HOT),
        _t("category", "category", shards=HOT),
        *_subject_pair(),
        _r("encounter", "encounter"),
        _d("date", "period"),
        _r("practitioner", "author", "contributor", "activity.detail.performer", targets=PR, shards=WARM),
        _r("care-team", "careTeam"),
        _r("condition", "addresses"),
        _t("activity-code", "activity.detail.code", shards=HOT),
        _q("category", "title", "description", "activity.detail.code"),
    ],
    "Goal": [
        _t("lifecycle-status", "lifecycleStatus", shards=HOT),
        _status("lifecycleStatus"),
        _t("achievement-status", "achievementStatus", shards=HOT),
        _t("category", "category", shards=HOT),
        *_subject_pair(),
        _d("date", "start[x]", "target.due[x]"),
        _d("start-date", "start[x]"),
        _d("target-date", "target.due[x]"),
        _q("description", "category"),
    ],
    "Claim": [
        _status(),
        _t("use", "use", shards=HOT),
        _t("priority", "priority", shards=HOT),
        _r("patient", "patient", targets=PT),
        _d("date", "created"),
        _d("created", "created"),
        _r("encounter", "item.encounter"),
        _r("provider", "provider", shards=WARM),
        _r("practitioner", "provider", "careTeam.provider", targets=PR, shards=WARM),
        _r("organization", "provider", "insurer", targets=ORG, shards=WARM),
        _r("insurer", "insurer", shards=WARM),
        _r("facility", "facility", shards=WARM),
        _r("location", "facility", targets=LOC, shards=WARM),
        _q("type", "item.productOrService"),
    ],
    "ExplanationOfBenefit": [
        _status(),
        _r("patient", "patient", targets=PT),
        _d("date", "created"),
        _d("created", "created"),
        _r("claim", "claim"),
        _r("coverage", "insurance.coverage"),
        _r("provider", "provider", shards=WARM),
        _r("practitioner", "provider", "careTeam.provider", targets=PR, shards=WARM),
        _r("organization", "provider", "insurer", targets=ORG, shards=WARM),
        _r("encounter", "item.encounter"),
        _r("facility", "facility", shards=WARM),
        _r("location", "facility", targets=LOC, shards=WARM),
        _q("type", "item.productOrService"),
    ],
    "DocumentReference": [
        _status(),
        _t("type", "type", shards=HOT),
        _t("category", "category", shards=HOT),
        *_subject_pair(),
        _r("encounter", "context.encounter"),
        _d("date", "date"),
        _d("period", "context.period"),
        _r("author", "author", shards=WARM),
        _r("practitioner", "author", targets=PR, shards=WARM),
        _r("organization", "custodian", targets=ORG, shards=WARM),
        _q("type", "category", "description", "content.attachment.title"),
    ],
    "ImagingStudy": [
        _status(),
        *_subject_pair(),
        _r("encounter", "encounter"),
        _d("date", "started"),
        _d("started", "started"),
        _t("modality", "series.modality", shards=HOT),
        _t("bodysite", "series.bodySite", shards=HOT),
        _r("practitioner", "referrer", "interpreter", targets=PR, shards=WARM),
        _r("location", "location", shards=WARM),
        _q("procedureCode", "description", "series.bodySite", "series.description"),
    ],
}

_COMMON = [
    SearchParam("_id", Kind.ID, ("id",)),
    _d("_lastUpdated", "meta.lastUpdated"),
]
_DEFAULT_Q = _q("code", "type", "category", "name", "title", "description")


@cache
def _model_fields(resource_type: str) -> frozenset[str]:
    """JSON element names of the type's R4B model (imported lazily, only for unregistered types)."""
    try:
        module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
        model = getattr(module, resource_type)
    except (ImportError, AttributeError):
        return frozenset()
    return frozenset(f.alias or name for name, f in model.model_fields.items())


def _defaults(resource_type: str) -> list[SearchParam]:
    fields = _model_fields(resource_type)
    params = [_DEFAULT_Q]
    if "status" in fields:
        params.append(_status())
    if "subject" in fields:
        params += _subject_pair()
    elif "patient" in fields:
        params.append(_r("patient", "patient", targets=PT))
    if "encounter" in fields:
        params.append(_r("encounter", "encounter"))
    elif "context" in fields:
        params.append(_r("encounter", "context", targets=("Encounter",)))
    return params


@cache
def params_for(resource_type: str) -> dict[str, SearchParam]:
    """``name → SearchParam`` for a type (every type has ``_id``, ``_lastUpdated``, ``identifier``
    when it has one, and ``q``), each with its index ``family`` set."""
    specific = _REGISTRY.get(resource_type)
    params = list(_COMMON)
    if specific is not None or "identifier" in _model_fields(resource_type):
        params.append(_t("identifier", "identifier"))
    params += specific if specific is not None else _defaults(resource_type)
    out: dict[str, SearchParam] = {}
    families: dict[tuple, str] = {}
    # a typed reference (``patient``: ``subject`` restricted to Patient) reads the items of the
    # untyped parameter over the same paths when the type has one: its values are a subset, and the
    # items carry each value's types (``rt``), checked by the plan
    untyped = {p.paths: p for p in params if p.kind is Kind.REFERENCE and not p.targets}
    for p in params:
        owner = untyped.get(p.paths) if p.kind is Kind.REFERENCE and p.targets else None
        if owner is not None and owner.shards == p.shards:
            p = replace(p, family=families.setdefault((p.kind, p.paths, ()), owner.name))
            out[p.name] = p
            continue
        sig = (p.kind, p.paths, p.targets)
        fam = families.setdefault(sig, p.name)
        out[p.name] = replace(p, family=fam, shards=out[fam].shards if fam in out else p.shards)
    return out


@cache
def family_params(resource_type: str) -> tuple[tuple[SearchParam, tuple[SearchParam, ...]], ...]:
    """Each index family of a type once, in registry order: ``(param, typed)`` where ``param``
    extracts the family's values and ``typed`` are the typed reference parameters reading the same
    items (see :func:`params_for`)."""
    params = params_for(resource_type)
    owners: dict[str, SearchParam] = {}
    typed: dict[str, list[SearchParam]] = {}
    for p in params.values():
        if p.kind is Kind.REFERENCE and p.targets and p.family != p.name and not params[p.family].targets:
            typed.setdefault(p.family, []).append(p)
        elif p.family not in owners:
            owners[p.family] = params[p.family]
    return tuple((owner, tuple(typed.get(fam, ()))) for fam, owner in owners.items())


def compartment_patient_ids(resource_type: str, resource: dict, extraction: Extraction | None = None) -> list[str]:
    """Ids of the Patients whose compartment ``resource`` is in (its own id for a Patient).
    ``extraction``: the resource's :class:`Extraction`, when the caller has one.

    The write path touches each of these patients' ``last_event_at``.
    """
    if resource_type == "Patient":
        return [resource["id"]] if isinstance(resource.get("id"), str) else []
    param = params_for(resource_type).get("patient")
    if param is None:
        return []
    return [rid for _, rid in (extraction.extract(param) if extraction is not None else extract(param, resource))]
