"""A patient's timeline (``GET /fhir/patients/{id}/timeline``) and clinical summary
(``GET /fhir/patients/{id}/summary``), read from the index items the write path keeps with each
resource (:mod:`fhir_platform.search.timeline`; ``docs/search.md`` *Patient timeline and summary*).

Both start with :func:`resolve_patient`: one BatchGetItem of the Patient's CURRENT item, its
touch item and its anchor's ``ALIAS`` (``patient_id`` is a Patient id; the alias gives the current
entity after merges and splits), or, when no Patient has that id, one Query of the entity's own
items per ``merged_into`` hop (``patient_id`` is an entity id, current or merged away) and one
BatchGetItem of its member Patients' CURRENT + touch items.

- Timeline page: one Query on the patient's timeline partition (or the domain's), newest first,
  ``Limit`` = offset + limit (continuation pages of 1 MB only for offsets of thousands); ``total``
  from the touch item's per-domain counts (``tl``), kept in the same transactions as the items.
  So a page costs 2 calls whatever the length of the patient's history. An entity id of several
  member Patients: one such Query per member (≤ :data:`MAX_MEMBER_PATIENTS`), merged newest first.
- Summary: the patient partition's facts (active problems, medications, allergies, coverage, care
  teams: one Query), the newest encounters and immunizations (their domains' timeline partitions,
  one ``Limit`` Query each) and the latest value of each vital sign (one ``Limit 1`` Query per kind
  on the vitals partition), issued concurrently: 11 Queries whatever the history.
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.conditions import Key

from fhir_platform.errors import Gone, NotFound
from fhir_platform.search.indexing import FACT_PREFIX, exact_pk, patient_partition_pk, touch_key
from fhir_platform.search.query import QueryError
from fhir_platform.search.timeline import DOMAINS, VITAL_KINDS, timeline_pk, vitals_pk
from fhir_platform.search.views import _mrn, _name, _phone_e164, _telecom
from fhir_platform.storage import keys
from fhir_platform.storage.base import plain
from fhir_platform.world.entities import anchor_entity_id

__all__ = ["PatientRef", "TimelinePage", "check_domain", "patient_summary", "resolve_patient", "timeline_page"]

RECENT_ENCOUNTERS = 5
RECENT_IMMUNIZATIONS = 20
PAGE_LIMIT = 1000  # items per continuation Query when walking a deep offset
MAX_MEMBER_PATIENTS = 30  # Patients of one entity read for its timeline (a decision moves at most 30)


@dataclass
class PatientRef:
    patient_id: str
    entity_id: str  # the current entity (after merges and splits)
    data: dict
    touch: dict
    members: dict[str, dict] = field(default_factory=dict)  # entity lookups: every live member Patient's touch item


@dataclass
class TimelinePage:
    entity_id: str
    patient_id: str
    events: list[dict]
    total: int
    has_more: bool
    next_offset: int | None
    calls: Counter = field(default_factory=Counter)


def check_domain(domain: str | None) -> None:
    if domain is not None and domain not in DOMAINS:
        raise QueryError("domain", f"unknown domain {domain!r} (valid: {', '.join(DOMAINS)})")


def _loc(msg: str) -> list[dict]:
    return [{"loc": ["path", "patient_id"], "msg": msg, "type": "value_error"}]


def resolve_patient(store: Any, ws: str, patient_id: str, calls: Counter) -> PatientRef:
    """The Patient whose id, or whose entity id, is ``patient_id``, with its *current* entity id
    (the stored anchor through its alias, ``docs/entities.md``). :class:`NotFound` when neither;
    :class:`Gone` when that Patient was deleted.

    An entity id is looked up on the entity's own items (following ``merged_into`` when it was
    merged away, so an id from before a merge still answers): the entity's member Patients are
    ``members`` (the timeline shows them all); the one answered is the entity's anchor Patient when
    it is a member, else the first by id. Entities from before link items fall back to the Patient
    ``entity`` index."""
    from fhir_platform.storage.entity_reads import MAX_MERGE_HOPS, EntityReader

    aliases: dict[str, str] = {}

    def read(pids: list[str], with_alias: bool = False) -> dict[str, tuple[dict | None, dict]]:
        item_keys = [k for pid in pids for k in ({"PK": keys.resource_pk(ws, "Patient", pid), "SK": keys.CURRENT_SK}, touch_key(ws, pid))]
        anchor = anchor_entity_id(ws, "Patient", pids[0])
        if with_alias:  # a Patient's stored entity id is its own anchor: its alias item rides along
            item_keys.append({"PK": keys.entity_pk(ws, anchor), "SK": keys.ALIAS_SK})
        calls["BatchGetItem"] += -(-len(item_keys) // 100)
        found = store.get_items(item_keys)
        if with_alias and (alias := found.get((keys.entity_pk(ws, anchor), keys.ALIAS_SK))):
            aliases[anchor] = str(alias["entity_id"])
        out = {}
        for pid in pids:
            tk = touch_key(ws, pid)
            out[pid] = (found.get((keys.resource_pk(ws, "Patient", pid), keys.CURRENT_SK)), found.get((tk["PK"], tk["SK"])) or {})
        return out

    reader = EntityReader(store.table)
    current, touch = read([patient_id], with_alias=True)[patient_id]
    if current is not None:
        if current.get("deleted"):
            raise Gone(f"Patient/{current['resource_id']} was deleted", details=_loc("deleted patient"))
        pid = current["resource_id"]
        anchor = current.get("entity_id") or anchor_entity_id(ws, "Patient", pid)
        if anchor == anchor_entity_id(ws, "Patient", pid):
            entity = aliases.get(anchor, anchor)
        else:  # a Patient stored with another anchor (not written by today's resolvers): one more read
            calls["BatchGetItem"] += 1
            entity = reader.current_entity(ws, anchor) or anchor
        return PatientRef(pid, entity, store.load_data(current), touch)

    found_entity, eid = None, patient_id
    for _ in range(MAX_MERGE_HOPS):
        calls["Query"] += 1
        found_entity = reader.entity(ws, eid)
        if found_entity is None or found_entity.status != "merged" or not found_entity.merged_into:
            break
        eid = found_entity.merged_into
    if found_entity is None:  # no entity items: the Patient ``entity`` index (anchor = entity id)
        calls["Query"] += 1
        items = store.table.query(
            KeyConditionExpression=Key("PK").eq(exact_pk(ws, "Patient", "entity", 0, patient_id)),
            ConsistentRead=True,
            Limit=10,
        )["Items"]
        ids = sorted(str(i["id"]) for i in items)
        if not ids:
            raise NotFound(f"No patient with id or entity id {patient_id!r}", details=_loc("unknown patient"))
        current, touch = read(ids[:1])[ids[0]]  # several Patients of one entity: the first by id (stable)
        if current is None:
            raise NotFound(f"No patient with id or entity id {patient_id!r}", details=_loc("unknown patient"))
        if current.get("deleted"):
            raise Gone(f"Patient/{current['resource_id']} was deleted", details=_loc("deleted patient"))
        return PatientRef(current["resource_id"], current.get("entity_id") or patient_id, store.load_data(current), touch)

    entity_id = found_entity.entity_id
    pids = sorted(str(link["resource_id"]) for link in found_entity.links if link["resource_type"] == "Patient")
    if not pids:
        raise NotFound(f"No patient with id or entity id {patient_id!r}", details=_loc("entity has no Patient"))
    got = read(pids[:MAX_MEMBER_PATIENTS])
    live = [p for p in got if got[p][0] is not None and not got[p][0].get("deleted")]
    if not live:
        raise Gone(f"Every Patient of entity {entity_id} was deleted", details=_loc("deleted patient"))
    primary = next((p for p in live if anchor_entity_id(ws, "Patient", p) == entity_id), live[0])
    current, touch = got[primary]
    members = {p: got[p][1] for p in live}
    return PatientRef(primary, entity_id, store.load_data(current), touch, members)


def _query(table: Any, calls: Counter, pk: str, *, want: int | None, prefix: str | None = None) -> list[dict]:
    """Items of one partition newest (largest SK) first: ``want`` of them (``None``: all)."""
    cond = Key("PK").eq(pk)
    if prefix is not None:
        cond = cond & Key("SK").begins_with(prefix)
    kwargs: dict[str, Any] = {"KeyConditionExpression": cond, "ScanIndexForward": False, "ConsistentRead": True}
    out: list[dict] = []
    while True:
        if want is not None:
            kwargs["Limit"] = min(want - len(out), PAGE_LIMIT)
        calls["Query"] += 1
        page = table.query(**kwargs)
        out += [plain(i) for i in page["Items"]]
        if "LastEvaluatedKey" not in page or (want is not None and len(out) >= want):
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _event(item: dict, entity_id: str) -> dict:
    version = item.get("v")
    return {
        "event_id": item["ev"],
        "occurred_at": item["at"],
        "domain": item["dm"],
        "resource_type": item["rt"],
        "resource_id": item["id"],
        "reference": f"{item['rt']}/{item['id']}",
        "event_type": item["et"],
        "display": item["d"],
        "status": item.get("st"),
        "source": "data_source" if item.get("src") else "platform",
        "data_source_id": item.get("src"),
        "entity_id": entity_id,  # the patient's current entity (the stored ``e`` is the anchor at write time)
        "version": int(version) if isinstance(version, str) and version.isdigit() else version,
        "last_updated": item.get("lu"),
    }


def timeline_page(store: Any, ws: str, patient_id: str, *, domain: str | None, limit: int, offset: int) -> TimelinePage:
    """One page of the timeline. ``patient_id`` a Patient id: that Patient's compartment. An entity
    id (current, or merged away): the compartments of every Patient of the entity, merged newest
    first (one Query per member Patient; the entity's ``total`` is the sum of theirs)."""
    check_domain(domain)
    calls: Counter = Counter()
    patient = resolve_patient(store, ws, patient_id, calls)
    members = patient.members or {patient.patient_id: patient.touch}

    def count(touch: dict) -> int:
        counts = {k: int(v) for k, v in (touch.get("tl") or {}).items()}
        return counts.get(domain, 0) if domain else sum(counts.values())

    totals = {pid: count(touch) for pid, touch in members.items()}
    total = sum(totals.values())
    items: list[dict] = []
    if offset < total:
        for pid, n in totals.items():
            if n:
                items += _query(store.table, calls, timeline_pk(ws, pid, domain), want=offset + limit)
        if len(members) > 1:
            items.sort(key=lambda i: i["SK"], reverse=True)
        items = items[offset : offset + limit]
    events = [_event(i, patient.entity_id) for i in items]
    has_more = offset + len(events) < total
    return TimelinePage(patient.entity_id, patient.patient_id, events, total, has_more, offset + len(events) if has_more else None, calls)


def _ref_parts(sk: str) -> tuple[str, str, str]:
    kind, rtype, rid = sk[len(FACT_PREFIX) :].split("#", 2)
    return kind, rtype, rid


def _number(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return text


def _vital(items: list[dict]) -> dict | None:
    if not items:
        return None
    it = items[0]
    return {"value": _number(it.get("val")), "unit": it.get("u") or None, "date": it["at"], "reference": f"Observation/{it['id']}"}


def _blood_pressure(panel: list[dict], systolic: list[dict], diastolic: list[dict]) -> dict | None:
    if panel and (not systolic or not diastolic or panel[0]["at"] >= max(systolic[0]["at"], diastolic[0]["at"])):
        it = panel[0]
        s, d = _number(it.get("sys")), _number(it.get("dia"))
        return {"value": f"{s}/{d}", "systolic": s, "diastolic": d, "unit": it.get("u") or None, "date": it["at"], "reference": f"Observation/{it['id']}"}
    if systolic and diastolic:
        s, d = systolic[0], diastolic[0]
        newest = max(s, d, key=lambda x: x["at"])
        sv, dv = _number(s.get("val")), _number(d.get("val"))
        return {
            "value": f"{sv}/{dv}",
            "systolic": sv,
            "diastolic": dv,
            "unit": s.get("u") or d.get("u") or None,
            "date": newest["at"],
            "reference": f"Observation/{newest['id']}",
            "references": [f"Observation/{s['id']}", f"Observation/{d['id']}"],
        }
    return None


def _what(item: dict) -> str:
    """What the event is about (its subject), else its whole display line."""
    return item.get("w") or item["d"]


def patient_summary(store: Any, ws: str, patient_id: str) -> tuple[dict, Counter]:
    """``PatientSummaryResponse`` fields plus ``clinical`` (see module docstring)."""
    calls: Counter = Counter()
    patient = resolve_patient(store, ws, patient_id, calls)
    pid, table = patient.patient_id, store.table
    reads: dict[str, tuple[str, int | None, str | None]] = {
        "facts": (patient_partition_pk(ws, pid), None, FACT_PREFIX),
        "encounters": (timeline_pk(ws, pid, "encounter"), RECENT_ENCOUNTERS, None),
        "immunizations": (timeline_pk(ws, pid, "immunization"), RECENT_IMMUNIZATIONS, None),
        **{f"vital:{k}": (vitals_pk(ws, pid), 1, f"{k}#") for k in VITAL_KINDS},
    }
    counters = {name: Counter() for name in reads}
    with ThreadPoolExecutor(max_workers=len(reads)) as pool:
        futures = {
            name: pool.submit(_query, table, counters[name], pk, want=want, prefix=prefix)
            for name, (pk, want, prefix) in reads.items()
        }
        got = {name: f.result() for name, f in futures.items()}
    for c in counters.values():
        calls.update(c)

    facts: dict[str, list[dict]] = {}
    for it in got["facts"]:
        kind, rtype, rid = _ref_parts(it["SK"])
        facts.setdefault(kind, []).append({**it, "reference": f"{rtype}/{rid}"})

    def listed(kind: str) -> list[dict]:
        return sorted(({"display": f["d"], "reference": f["reference"]} for f in facts.get(kind, [])), key=lambda x: (x["display"], x["reference"]))

    vitals = {k: got[f"vital:{k}"] for k in VITAL_KINDS}
    p = patient.data
    care_team = [
        {"display": f["d"], "members": list(f.get("members") or []), "reference": f["reference"]}
        for f in sorted(facts.get("care_team", []), key=lambda f: f["reference"])
    ]
    for gp in p.get("generalPractitioner") or []:
        if isinstance(gp, dict) and (gp.get("display") or gp.get("reference")):
            care_team.append({"display": gp.get("display") or gp.get("reference"), "role": "general practitioner", "reference": gp.get("reference")})
    coverage = [
        {
            "display": f["d"],
            **{k: f.get(k) for k in ("payer", "member_id", "type", "relationship", "policyholder")},
            "reference": f["reference"],
        }
        for f in sorted(facts.get("insurance", []), key=lambda f: (int(f.get("order", 99)), f["reference"]))
    ]
    clinical = {
        "active_problems": listed("condition"),
        "active_medications": listed("medication"),
        "allergies": listed("allergy"),
        "vital_signs": {
            "blood_pressure": _blood_pressure(vitals["blood_pressure"], vitals["systolic"], vitals["diastolic"]),
            **{k: _vital(vitals[k]) for k in ("heart_rate", "weight", "height", "bmi", "temperature")},
        },
        "recent_encounters": [
            {"display": _what(it), "date": it["at"], "status": it.get("st"), "reference": f"{it['rt']}/{it['id']}"}
            for it in got["encounters"]
        ],
        "immunizations": [
            {"display": _what(it), "date": it["at"], "status": it.get("st"), "reference": f"{it['rt']}/{it['id']}"}
            for it in got["immunizations"]
        ],
        "care_team": care_team,
        "coverage": coverage,
    }
    name = _name(p)[0]
    summary = {
        "entity_id": patient.entity_id,
        "entity_type": "patient",
        "display_name": name,
        "event_count": int(patient.touch.get("event_count", 0) or 0),
        "last_event_at": patient.touch.get("last_event_at"),
        "patient_id": pid,
        "reference": f"Patient/{pid}",
        "name": name,
        "phone": _phone_e164(p),
        "email": _telecom(p, "email"),
        "birth_date": p.get("birthDate"),
        "gender": p.get("gender"),
        "mrn": _mrn(p),
        "clinical": clinical,
    }
    return summary, calls
