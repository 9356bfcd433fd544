#!/usr/bin/env python3
"""Generate a synthetic FHIR R4 import file: Patients plus Observations and Conditions that
reference them, with Synthea-like sizes (Patient ~1.6 KB, Observation ~0.8 KB, Condition ~0.7 KB
as compact JSON). Deterministic for a given seed; written as a stream (bounded memory), so files
of any size can be made.

    python bench/gen_ndjson.py /tmp/import.ndjson                  # 100,000 resources, NDJSON
    python bench/gen_ndjson.py /tmp/big.ndjson --count 1000000 --seed 7
    python bench/gen_ndjson.py /tmp/tx.json --bundle transaction   # one Bundle, urn:uuid refs
    python bench/gen_ndjson.py /tmp/x.ndjson --target-mb 50        # until ~50 MB

NDJSON references are ``Patient/<id>`` (pre-resolved, as the stream endpoint expects); in
``--bundle`` mode every entry has a ``urn:uuid:`` fullUrl and references use it (as Synthea does),
so the import has to resolve them. Every resource validates against the R4B models.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from typing import Any, Iterator

OBS_PER_PATIENT = 18
COND_PER_PATIENT = 4

_GIVEN = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
          "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Maria",
          "Wei", "Aisha", "Olga", "Kenji", "Fatima", "Liam", "Noah", "Emma", "Olivia", "Ava"]
_FAMILY = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
           "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
           "Lee", "Nguyen", "Kim", "Patel", "Cohen", "Okafor", "Schmidt", "Rossi", "Kowalski", "Haddad"]
_CITIES = [("Boston", "MA", "02108"), ("Worcester", "MA", "01608"), ("Springfield", "MA", "01103"),
           ("Cambridge", "MA", "02139"), ("Lowell", "MA", "01852"), ("Quincy", "MA", "02169")]
_STREETS = ["Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Elm St", "Washington Blvd", "Park Rd", "Lake View Ter"]
# (LOINC code, display, unit, low, high, category)
_OBS = [
    ("8302-2", "Body Height", "cm", 150.0, 195.0, "vital-signs"),
    ("29463-7", "Body Weight", "kg", 45.0, 120.0, "vital-signs"),
    ("39156-5", "Body Mass Index", "kg/m2", 18.0, 38.0, "vital-signs"),
    ("8867-4", "Heart rate", "/min", 50.0, 110.0, "vital-signs"),
    ("9279-1", "Respiratory rate", "/min", 10.0, 22.0, "vital-signs"),
    ("8310-5", "Body temperature", "Cel", 36.0, 38.5, "vital-signs"),
    ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 65.0, 180.0, "laboratory"),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 120.0, 280.0, "laboratory"),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.5, 9.5, "laboratory"),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.5, 1.6, "laboratory"),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 11.0, 17.5, "laboratory"),
]
_COND = [
    ("44054006", "Diabetes mellitus type 2 (disorder)"),
    ("38341003", "Hypertensive disorder, systemic arterial (disorder)"),
    ("195662009", "Acute viral pharyngitis (disorder)"),
    ("10509002", "Acute bronchitis (disorder)"),
    ("162864005", "Body mass index 30+ - obesity (finding)"),
    ("40055000", "Chronic sinusitis (disorder)"),
    ("444814009", "Viral sinusitis (disorder)"),
    ("15777000", "Prediabetes (finding)"),
    ("59621000", "Essential hypertension (disorder)"),
    ("233604007", "Pneumonia (disorder)"),
]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _date(rng: random.Random, start_year: int, end_year: int) -> str:
    return f"{rng.randint(start_year, end_year):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _instant(rng: random.Random) -> str:
    return f"{_date(rng, 2010, 2024)}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}+00:00"


def patient(rng: random.Random, pid: str) -> dict[str, Any]:
    given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
    city, state, zipc = rng.choice(_CITIES)
    gender = rng.choice(["male", "female"])
    mrn = f"{rng.randint(10**7, 10**8 - 1)}"
    return {
        "resourceType": "Patient",
        "id": pid,
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "text": {"status": "generated", "div": f"<div xmlns=\"http://www.w3.org/1999/xhtml\">{given} {family}</div>"},
        "extension": [
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
                "valueCode": "M" if gender == "male" else "F",
            }
        ],
        "identifier": [
            {"system": "https://github.com/synthetichealth/synthea", "value": pid},
            {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR", "display": "Medical Record Number"}], "text": "Medical Record Number"},
                "system": "http://hospital.smarthealthit.org",
                "value": mrn,
            },
            {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS", "display": "Social Security Number"}], "text": "Social Security Number"},
                "system": "http://hl7.org/fhir/sid/us-ssn",
                "value": f"999-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
            },
        ],
        "name": [{"use": "official", "family": family, "given": [given, rng.choice(_GIVEN)], "prefix": [rng.choice(["Mr.", "Ms.", "Mrs.", "Dr."])]}],
        "telecom": [{"system": "phone", "value": f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}", "use": "home"},
                    {"system": "email", "value": f"{given.lower()}.{family.lower()}{rng.randint(1, 999)}@example.com"}],
        "gender": gender,
        "birthDate": _date(rng, 1930, 2020),
        "address": [{"line": [f"{rng.randint(1, 9999)} {rng.choice(_STREETS)}"], "city": city, "state": state, "postalCode": zipc, "country": "US"}],
        "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": rng.choice("MSDW"), "display": "Marital status"}]},
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US", "display": "English (United States)"}], "text": "English"}}],
    }


def observation(rng: random.Random, oid: str, subject: str) -> dict[str, Any]:
    code, display, unit, low, high, category = rng.choice(_OBS)
    when = _instant(rng)
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category, "display": category.replace("-", " ").title()}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        "issued": when,
        "valueQuantity": {"value": round(rng.uniform(low, high), 1), "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    }


def condition(rng: random.Random, cid: str, subject: str) -> dict[str, Any]:
    code, display = rng.choice(_COND)
    onset = _instant(rng)
    resolved = rng.random() < 0.5
    data: dict[str, Any] = {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved" if resolved else "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis", "display": "Encounter Diagnosis"}]}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}], "text": display},
        "subject": {"reference": subject},
        "onsetDateTime": onset,
        "recordedDate": onset,
    }
    if resolved:
        data["abatementDateTime"] = _instant(rng)
    return data


def iter_resources(count: int | None, seed: int = 0, *, bundle_refs: bool = False) -> Iterator[dict[str, Any]]:
    """Yield resources: each Patient followed by its Observations and Conditions; ``count`` None
    = endless. ``bundle_refs``: subjects reference ``urn:uuid:<patient id>`` (for a Bundle)."""
    rng = random.Random(seed)
    n = 0
    per_patient = 1 + OBS_PER_PATIENT + COND_PER_PATIENT
    while count is None or n < count:
        pid = _uuid(rng)
        subject = f"urn:uuid:{pid}" if bundle_refs else f"Patient/{pid}"
        for k in range(per_patient):
            if count is not None and n >= count:
                return
            if k == 0:
                yield patient(rng, pid)
            elif k <= OBS_PER_PATIENT:
                yield observation(rng, _uuid(rng), subject)
            else:
                yield condition(rng, _uuid(rng), subject)
            n += 1


def generate(path: str, count: int | None = 100_000, seed: int = 0, *, bundle: str | None = None,
             target_bytes: int | None = None) -> dict[str, Any]:
    """Write the file; stop at ``count`` resources or once ``target_bytes`` are written.
    Returns ``{"resources": n, "bytes": size, "by_type": {...}}``."""
    by_type: dict[str, int] = {}
    written = 0
    n = 0
    limit = None if target_bytes is not None else count
    with open(path, "wb") as out:
        if bundle:
            head = json.dumps({"resourceType": "Bundle", "type": bundle})[:-1] + ', "entry": [\n'
            out.write(head.encode())
            written += len(head)
        for res in iter_resources(limit, seed, bundle_refs=bool(bundle)):
            if target_bytes is not None and written >= target_bytes:
                break
            if bundle:
                entry: dict[str, Any] = {"fullUrl": f"urn:uuid:{res['id']}", "resource": res}
                if bundle in ("transaction", "batch"):
                    entry["request"] = {"method": "POST", "url": res["resourceType"]}
                line = ("" if n == 0 else ",\n") + json.dumps(entry, separators=(",", ":"))
            else:
                line = json.dumps(res, separators=(",", ":")) + "\n"
            data = line.encode("utf-8")
            out.write(data)
            written += len(data)
            n += 1
            by_type[res["resourceType"]] = by_type.get(res["resourceType"], 0) + 1
        if bundle:
            out.write(b"\n]}\n")
            written += 4
    return {"resources": n, "bytes": written, "by_type": by_type}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path")
    ap.add_argument("--count", type=int, default=100_000, help="number of resources (default 100,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bundle", choices=["transaction", "batch", "collection"], help="write one Bundle instead of NDJSON")
    ap.add_argument("--target-mb", type=float, help="write until the file reaches this size (overrides --count)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    target = int(args.target_mb * 1024 * 1024) if args.target_mb else None
    stats = generate(args.path, args.count, args.seed, bundle=args.bundle, target_bytes=target)
    secs = time.perf_counter() - t0
    print(f"wrote {stats['resources']:,} resources, {stats['bytes'] / 1048576:.1f} MiB to {args.path} in {secs:.1f} s")
    print("  " + ", ".join(f"{k} {v:,}" for k, v in sorted(stats["by_type"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
