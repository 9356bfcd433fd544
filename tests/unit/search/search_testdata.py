"""Test data for the search unit tests: official HL7 R4 examples and Synthea bundles."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from fhir_platform.search.indexing import KEEP, compartment_touch, diff_index_items, index_items, touch_key
from fhir_platform.search.parameters import compartment_patient_ids
from fhir_platform.storage.keys import CURRENT_SK, resource_pk

from tests.support.shared import FIXTURES
HL7 = FIXTURES / "hl7-fhir-r4-examples"
SYNTHEA_SMALL = (
    FIXTURES / "synthea/smart-on-fhir_generated-sample-data/Buster_Hoeger_ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423.json"
)
SYNTHEA_HIV = next((FIXTURES / "synthea/google_fhir-data-pipes_synthea-hiv").glob("Bob965_*.json"))


@cache
def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def hl7(name: str) -> dict:
    """An official HL7 R4 example resource, e.g. ``hl7("Patient-example")`` (a fresh copy)."""
    return json.loads(json.dumps(_load(HL7 / f"{name}.json")))


def bundle_resources(path: Path) -> list[dict]:
    return [json.loads(json.dumps(e["resource"])) for e in _load(path)["entry"]]


def all_hl7_resources() -> list[dict]:
    out = []
    for path in sorted(HL7.glob("*.json")):
        if path.name == "package.json" or path.name.startswith("Bundle-"):
            continue
        data = _load(path)
        if isinstance(data, dict) and "resourceType" in data and "id" in data:
            out.append(json.loads(json.dumps(data)))
    return out


# --- writing to a (moto) table the way the write path will ------------------------------------

WS = "0b6d0a59-3f0e-4a57-9f57-1c1b2a0f7c11"


def current_item(
    resource: dict, lu: str, created: str, entity: str | None, version: int = 1, source: str | None = None
) -> dict:
    resource.setdefault("meta", {})["lastUpdated"] = lu
    return {
        **({"data_source_id": source} if source else {}),
        "PK": resource_pk(WS, resource["resourceType"], resource["id"]),
        "SK": CURRENT_SK,
        "data": json.dumps(resource),
        "version": version,
        "entity_id": entity,
        "last_updated": lu,
        "created_at": created,
    }


def write(
    table, resource: dict, lu: str, *, created: str | None = None, entity: str | None = "e-1", source: str | None = None
) -> None:
    """What the write path does: diff the index against the stored version, one transaction with the
    resource, its index changes and the compartment touch. ``source``: the write's data_source_id."""
    rtype, rid = resource["resourceType"], resource["id"]
    stored = table.get_item(Key={"PK": resource_pk(WS, rtype, rid), "SK": CURRENT_SK}, ConsistentRead=True).get("Item")
    old_items, version = [], 1
    if stored:
        old = json.loads(stored["data"])
        old_items = index_items(
            WS,
            rtype,
            rid,
            old,
            entity_id=stored["entity_id"],
            last_updated=stored["last_updated"],
            created_at=stored["created_at"],
            data_source_id=stored.get("data_source_id"),
        )
        created, version = stored["created_at"], int(stored["version"]) + 1
    created = created or lu
    new_items = index_items(
        WS, rtype, rid, resource, entity_id=entity, last_updated=lu, created_at=created, data_source_id=source
    )
    puts, deletes = diff_index_items(old_items, new_items)
    ops = [{"Put": {"Item": current_item(resource, lu, created, entity, version, source)}}]
    ops += [{"Put": {"Item": it}} for it in puts] + [{"Delete": {"Key": k}} for k in deletes]
    for pid in compartment_patient_ids(rtype, resource):
        previous = table.get_item(Key=touch_key(WS, pid), ConsistentRead=True).get("Item")
        ops += compartment_touch(
            WS,
            pid,
            event_time=lu,
            previous=previous,
            entity_id=entity if rtype == "Patient" else None,
            source=source if rtype == "Patient" else KEEP,
        )
    for op in ops:
        next(iter(op.values()))["TableName"] = table.name
    assert len(ops) <= 100
    table.meta.client.transact_write_items(TransactItems=ops)


def bulk_load(
    table, resources: list[dict], *, families: tuple[str, ...] | None = None, first: int = 0, touch: bool = False
) -> None:
    """Fast loading for volume tests (BatchWriteItem; the transaction path is tested above). The
    n-th resource is stamped ``first + n`` seconds past 2024-01-01T00:00:00Z; ``touch``: Patients also
    get their compartment touch items (as their first write would)."""
    with table.batch_writer() as bw:
        for i, r in enumerate(resources, start=first):
            lu = f"2024-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z"
            bw.put_item(Item=current_item(r, lu, lu, "e-1"))
            for it in index_items(WS, r["resourceType"], r["id"], r, entity_id="e-1", last_updated=lu, created_at=lu):
                if families is None or it["PK"].split("#")[4] in families:
                    bw.put_item(Item=it)
            if touch and r["resourceType"] == "Patient":
                for op in compartment_touch(WS, r["id"], event_time=lu, previous=None, entity_id="e-1"):
                    bw.put_item(Item=op["Put"]["Item"])


def obs(i, patient="p1", status="final", code="8302-2", when="2024-01-01"):
    return {
        "resourceType": "Observation",
        "id": f"obs-{i:04d}",
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
    }
