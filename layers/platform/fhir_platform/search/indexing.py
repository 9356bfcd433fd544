"""Search index items (written with the resource) and query plans over them.

All index items live in the one table, under partition keys ``WS#{ws}#IX#...`` (no GSIs: an index
item is a base-table item written in the same TransactWriteItems as the resource, so a search that
starts after a write returned sees it). Two layouts:

**exact families** (token, reference, phone; the value is the partition)::

    PK = WS#{ws}#IX#{type}#{family}#{shard}#{key}      SK = {resource id}
    key: token code (casefolded) | referenced id | phone digits;  attrs: id, k, sys | rt

One Query (``PK = ...``) per shard finds every resource with the value. Token systems (``sys``) and
reference types (``rt``) are attributes, checked on the index item, so ``system|code``, ``|code``,
``code``, ``Type/id`` and bare ``id`` all use the one item; for the same reason a typed reference
parameter over an untyped one's paths (``patient`` and ``subject``) reads the untyped family's items
(checking ``rt`` against its target types) instead of having its own. Families whose values are few and shared
(status, gender, code, category: ``HOT`` = 8 shards; practitioner/location/organization: 4) put
``crc32(id) % shards`` in the key, so one hot value is spread over that many partitions (write
sharding); readers query all shards in parallel and merge by SK.

**ordered families** (string prefix, ``q`` words, dates, the per-type list, patient sorts)::

    PK = WS#{ws}#IX#{type}#{family}#{shard}              SK = {sort key}#{resource id}

always 8 shards (``crc32(id) % 8``); a search is one Query per shard with an SK condition
(``begins_with`` for prefixes, ``BETWEEN``/``<``/``>=`` for dates), merged by SK. Every instant in
a sort key (``_lastUpdated``, dates, ``sort.created_at``, ``sort.last_event_at``, the ``lo``/``hi``
attributes, the touch item's ``last_event_at``) is the fixed-width UTC string
``YYYY-MM-DDTHH:MM:SS.mmmZ`` (:func:`~fhir_platform.search.normalize.format_instant`), so string
order is time order to the millisecond: resources written within one second keep their order.

==================  =============================  ==================================================
family              sort key / key                 serves
==================  =============================  ==================================================
``_lastUpdated``    meta.lastUpdated (instant)     every resource of a type, newest first (no
                                                   selective parameter); ``_lastUpdated`` ranges
string param        each prefix key (≤64 chars)    ``name=smi`` → ``begins_with(SK, "smi")``
``q``               each word (≤12 per resource)   longest query word → ``begins_with``
date param          range low bound                ``eq``/``lt``/``le``/``sa`` (+ ``gt``/``ge``/``eb``)
``{date}.hi``       range high bound, only for     ``gt``/``ge``/``eb`` on values spanning more than a
                    values longer than one day     day (periods, ``2024``); shorter values are found
                                                   in the low-bound family shifted by one day
token/ref/phone     exact (layout above)           ``code=…``, ``patient=…``, ``identifier=…``
``sort.created_at`` Patient created_at             patient list ``sort_by=created_at``
``sort.name``       "family given" folded          patient list ``sort_by=name``
``sort.last_event_at``  last compartment change    patient list ``sort_by=last_event_at`` (moved by
                                                   :func:`compartment_touch`, not by index_items)
``src.{source}``    meta.lastUpdated               a type's resources whose current version came
                                                   from data source ``source`` (views'
                                                   ``data_source_id`` with no other filter)
``sort.last_event_at.src.{source}``                the patients view's ``data_source_id``: the
                    last compartment change        ``sort.last_event_at`` list of one source's
                                                   Patients (kept by :func:`compartment_touch`)
==================  =============================  ==================================================

Every family item of a resource written from a data source carries ``src`` (its
``data_source_id``), so ``data_source_id`` combined with any other filter is checked on the index
item (``Plan.accepts``), never by reading events. ``q`` items carry ``w`` (the resource's words, one
space-separated string) so a several-word ``q`` is decided on the index item too.

Per-patient partition ``WS#{ws}#IX#@patient#{patient id}``: the touch item (``SK=LAST_EVENT``:
``last_event_at``, ``event_count``) and the patient view's *facts* — one item per active Condition,
active MedicationRequest/MedicationStatement, active AllergyIntolerance and active Coverage
(``SK=F#{kind}#{type}#{id}``, attribute ``d`` = display text), emitted by that resource's
``index_items`` and therefore removed in the same transaction when it stops being active. One Query
returns everything a patient-view row needs besides the Patient itself. (Active CareTeams are facts
too, for the patient summary.)

Per-patient timeline and vitals partitions (``@timeline#{patient}[#{domain}]``, ``@vitals#{patient}``)
hold one item per compartment resource / vital-sign Observation, sorted by clinical time
(:mod:`fhir_platform.search.timeline`); the touch item counts the timeline's events per domain
(``tl``), moved by :func:`compartment_touch` in the same transaction.

A resource yields at most ``MAX_INDEX_ITEMS`` (40) items so that old + new index items, the resource
items and the compartment touch fit one TransactWriteItems (100 items). Beyond the cap, items are
dropped lowest priority first: ``q`` words, then string prefix keys, then dates, then exact values
(per-type list, sort, facts and entity items are never dropped). Per family at most
``MAX_VALUES_PER_FAMILY`` values are indexed. What the index drops, search cannot find.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache

from fhir_platform.search.normalize import (
    date_range,
    format_instant,
    normalize_phone,
    normalize_string,
    normalize_token,
    parse_instant,
    prefix_keys,
    words,
)
from fhir_platform.search.parameters import (
    ORDERED_SHARDS,
    Extraction,
    Kind,
    SearchParam,
    compartment_patient_ids,
    family_params,
    params_for,
    select,
)
from fhir_platform.search.sorting import sort_items, sorted_date_families
from fhir_platform.search.timeline import timeline_items, vital_items
from fhir_platform.search.query import (
    Criterion,
    DateValue,
    PatientSearch,
    SearchQuery,
    StrValue,
    date_matches,
    ref_matches,
    text_matches,
)

__all__ = [
    "INDEX_VERSION",
    "KEEP",
    "KeyCondition",
    "MAX_INDEX_ITEMS",
    "Plan",
    "compartment_touch",
    "diff_index_items",
    "index_items",
    "PatientPlan",
    "compartment_forget",
    "patient_item_accepts",
    "patient_partition_pk",
    "patient_plan",
    "plan",
    "view_fact",
    "shard_of",
    "source_family",
    "source_sort_family",
    "touch_key",
]

# 3: instants in keys keep milliseconds (YYYY-MM-DDTHH:MM:SS.mmmZ); phone keys read by libphonenumber
# 4: patient timeline items (@timeline#{patient}[#{domain}]), vitals items (@vitals#{patient}), care-team
#    facts; the touch item keeps per-domain timeline counts (``tl``)
# 5: FHIR ``_sort`` items: ``sort._id`` for every resource, ``sort.{field}`` / ``sort.{field}.none`` per
#    sort field of the type (:mod:`fhir_platform.search.sorting`)
# 6: a typed reference parameter (``patient``, ``practitioner``, ...) over the same paths as an untyped
#    one (``subject``, ``performer``, ...) has no items of its own: it reads the untyped family's items
#    and checks their types (``rt``); a ``q`` item's words ``w`` are one space-separated string
# 7: no ``sort._id`` items: ``_sort=_id`` walks the ``TypeIndex`` GSI over the live ``CURRENT`` items
#    (``TPK``/``TSK``); the type history is that GSI over the event items (no ``TH#`` items either);
#    no ``sort.{date field}`` items: a date family's item of the resource's first value carries ``so``
INDEX_VERSION = 7
MAX_INDEX_ITEMS = 40
MAX_VALUES_PER_FAMILY = 12
MAX_STRING_KEY = 64
MAX_EXACT_KEY = 256
LONG_SPAN = timedelta(days=1)
LAST_UPDATED = "_lastUpdated"
TOUCH_SK = "LAST_EVENT"
FACT_PREFIX = "F#"


class _Keep:
    """``source`` argument of :func:`compartment_touch`: keep the patient's recorded source."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


def source_family(data_source_id: str) -> str:
    """The ordered family listing one data source's resources of a type (newest first)."""
    return f"src.{data_source_id}"


def source_sort_family(data_source_id: str) -> str:
    """``sort.last_event_at`` restricted to the Patients whose current version came from a source."""
    return f"sort.last_event_at.src.{data_source_id}"


def shard_of(resource_id: str, shards: int) -> int:
    """Stable shard of a resource in a family: the same id always lands in the same partition."""
    return _crc(resource_id) % shards if shards > 1 else 0


@lru_cache(maxsize=1024)  # a resource's items ask once per family
def _crc(resource_id: str) -> int:
    return zlib.crc32(resource_id.encode())


def _exact_key(key: str) -> str:
    if len(key) <= MAX_EXACT_KEY // 4 or len(key.encode()) <= MAX_EXACT_KEY:  # ≤ 4 bytes per character
        return key
    return "~" + hashlib.sha256(key.encode()).hexdigest()


def ordered_pk(ws: str, resource_type: str, family: str, shard: int) -> str:
    return f"WS#{ws}#IX#{resource_type}#{family}#{shard}"


def exact_pk(ws: str, resource_type: str, family: str, shard: int, key: str) -> str:
    return f"WS#{ws}#IX#{resource_type}#{family}#{shard}#{_exact_key(key)}"


def patient_partition_pk(ws: str, patient_id: str) -> str:
    """The per-patient partition: touch item + patient-view facts."""
    return f"WS#{ws}#IX#@patient#{patient_id}"


def touch_key(ws: str, patient_id: str) -> dict:
    return {"PK": patient_partition_pk(ws, patient_id), "SK": TOUCH_SK}


@lru_cache(maxsize=4096)  # pure; every date item asks, and an encounter's resources share their instants
def _is_long(low: str, high: str) -> bool:
    return _dt(high) - _dt(low) > LONG_SPAN


def _dt(iso: str) -> datetime:
    return datetime.fromisoformat(iso)  # reads the "Z" of UTC itself (Python ≥ 3.11, the runtime)


def _shift(iso: str, delta: timedelta) -> str:
    try:
        moved = _dt(iso) + delta
    except OverflowError:
        return iso
    return format_instant(moved)


# --- items -------------------------------------------------------------------------------------

# Priority when the cap bites (lower survives).
_P_CORE, _P_EXACT, _P_DATE, _P_STRING, _P_TEXT = range(5)
_KIND_PRIORITY = {
    Kind.TOKEN: _P_EXACT,
    Kind.REFERENCE: _P_EXACT,
    Kind.PHONE: _P_EXACT,
    Kind.DATE: _P_DATE,
    Kind.STRING: _P_STRING,
    Kind.TEXT: _P_TEXT,
}


def _family_items(
    ws: str, rtype: str, rid: str, param: SearchParam, ex: Extraction, extra: dict, typed: tuple[SearchParam, ...] = ()
) -> list[dict]:
    fam, n = param.family, param.shard_count
    shard = shard_of(rid, n)
    values = ex.extract(param)
    items: list[dict] = []
    if param.kind is Kind.TOKEN:
        systems: dict[str, set[str]] = {}
        for system, code in values:
            systems.setdefault(normalize_token(code), set()).add(system)
        for key, sys in list(systems.items())[:MAX_VALUES_PER_FAMILY]:
            if key:
                items.append({"PK": exact_pk(ws, rtype, fam, shard, key), "SK": rid, "k": key, "sys": sorted(sys)})
    elif param.kind is Kind.REFERENCE:
        types: dict[str, set[str]] = {}
        for rt, ref_id in values:
            types.setdefault(ref_id, set()).add(rt)
        indexed = list(types)[:MAX_VALUES_PER_FAMILY]
        for t in typed:  # the ids a typed parameter reading these items would have indexed itself
            ids = dict.fromkeys(ref_id for rt, ref_id in values if not rt or rt in t.targets)
            indexed += [ref_id for ref_id in list(ids)[:MAX_VALUES_PER_FAMILY] if ref_id not in indexed]
        for key in indexed:
            items.append({"PK": exact_pk(ws, rtype, fam, shard, key), "SK": rid, "k": key, "rt": sorted(types[key])})
    elif param.kind is Kind.PHONE:
        for digits in values[:MAX_VALUES_PER_FAMILY]:
            items.append({"PK": exact_pk(ws, rtype, fam, shard, digits), "SK": rid, "k": digits})
    elif param.kind is Kind.STRING:
        keys = dict.fromkeys(k[:MAX_STRING_KEY] for s in values for k in prefix_keys(normalize_string(s)) if k)
        for key in list(keys)[:MAX_VALUES_PER_FAMILY]:
            items.append({"PK": ordered_pk(ws, rtype, fam, shard), "SK": f"{key}#{rid}"})
    elif param.kind is Kind.TEXT:
        ws_ = list(dict.fromkeys(w[:MAX_STRING_KEY] for s in values for w in words(s)))[:MAX_VALUES_PER_FAMILY]
        joined = " ".join(ws_)  # one string attribute, not a list: words never contain spaces
        for w in ws_:
            items.append({"PK": ordered_pk(ws, rtype, fam, shard), "SK": f"{w}#{rid}", "w": joined})
    elif param.kind is Kind.DATE:
        # one item per key: values sharing a start (e.g. an Observation's effective second and its
        # issued millisecond) keep the widest end, and long ranges sharing an end the earliest start
        # (a transaction may not write one item twice)
        by_low: dict[str, str] = {}
        for low, high in values[: MAX_VALUES_PER_FAMILY // 3]:
            by_low[low] = max(high, by_low.get(low, high))
        by_high: dict[str, str] = {}
        first = values[0][0] if values else None  # the sort value (search.sorting): its item is marked ``so``
        for low, high in by_low.items():
            item = {"PK": ordered_pk(ws, rtype, fam, shard), "SK": f"{low}#{rid}", "lo": low, "hi": high}
            if low == first:
                item["so"] = 1
            items.append(item)
            if _is_long(low, high):
                by_high[high] = min(low, by_high.get(high, low))
        for high, low in by_high.items():
            items.append({"PK": ordered_pk(ws, rtype, f"{fam}.hi", shard), "SK": f"{high}#{rid}", "lo": low, "hi": high})
    for item in items:
        item["id"] = rid
        item.update(extra)
    return items


COMPOSITE = "patient+code"


def _composite_items(ws: str, rtype: str, rid: str, ex: Extraction, extra: dict) -> list[dict]:
    """``patient+code`` items: the commonest clinical query (a patient's observations of one code)
    becomes one exact Query instead of a patient partition filtered by code."""
    params = params_for(rtype)
    patient, code = params.get("patient"), params.get("code")
    if patient is None or code is None:
        return []
    refs: dict[str, set[str]] = {}
    for rt, pid in ex.extract(patient):
        refs.setdefault(pid, set()).add(rt)
    codes: dict[str, set[str]] = {}
    for system, value in ex.extract(code):
        codes.setdefault(normalize_token(value), set()).add(system)
    items = []
    for pid, rts in list(refs.items())[:2]:
        for key, sys in list(codes.items())[:4]:
            if key:
                items.append(
                    {
                        "PK": exact_pk(ws, rtype, COMPOSITE, 0, f"{pid}|{key}"),
                        "SK": rid,
                        "id": rid,
                        "p": pid,
                        "k": key,
                        "rt": sorted(rts),
                        "sys": sorted(sys),
                        **extra,
                    }
                )
    return items


def _sort_name(data: dict) -> str:
    names = [n for n in data.get("name") or [] if isinstance(n, dict)]
    if not names:
        return ""
    name = next((n for n in names if n.get("use") in ("official", "usual")), names[0])
    parts = [name.get("family") or "", *(name.get("given") or [])]
    text = " ".join(p for p in parts if isinstance(p, str) and p) or name.get("text") or ""
    return normalize_string(text)[:MAX_STRING_KEY]


# What the patient view lists, and when a resource counts as active.
_FACT_TYPES = frozenset({"Condition", "MedicationRequest", "MedicationStatement", "AllergyIntolerance", "Coverage", "CareTeam"})
_ACTIVE_CLINICAL = {"active", "recurrence", "relapse"}
_REFUTED = {"refuted", "entered-in-error"}


def _codes(data: dict, path: str) -> set[str]:
    return {c for _, c in (t for node in select(data, path) for t in _token_pairs(node))}


def _token_pairs(node: object) -> list[tuple[str, str]]:
    if isinstance(node, str):
        return [("", node)]
    if isinstance(node, dict):
        return [(c.get("system", ""), c["code"]) for c in node.get("coding") or [] if isinstance(c.get("code"), str)]
    return []


def _display(data: dict, *paths: str) -> str | None:
    """First human-readable text at the paths: text, display, a coding's display, else its code.
    A ``#id`` reference is looked up in ``contained`` (Synthea/HL7 medications are often there)."""
    for path in paths:
        for node in select(data, path):
            if isinstance(node, str) and node:
                return node
            if not isinstance(node, dict):
                continue
            ref = node.get("reference")
            if isinstance(ref, str) and ref.startswith("#") and not node.get("display"):
                node = next((c.get("code") for c in data.get("contained") or [] if c.get("id") == ref[1:]), None) or {}
            codings = [c for c in node.get("coding") or [] if isinstance(c, dict)]
            text = node.get("text") or node.get("display")
            text = text or next((c["display"] for c in codings if c.get("display")), None)
            text = text or next((c["code"] for c in codings if c.get("code")), None)
            if text:
                return text
    return None


def view_fact(resource_type: str, data: dict) -> tuple[str, dict] | None:
    """``(kind, attributes)`` when ``data`` is an active fact the patient view lists, else ``None``."""
    if resource_type not in _FACT_TYPES:
        return None
    if resource_type == "Condition":
        if _codes(data, "verificationStatus") & _REFUTED:
            return None
        if _codes(data, "clinicalStatus") & _ACTIVE_CLINICAL:
            return "condition", {"d": _display(data, "code") or "Unknown condition"}
    elif resource_type in ("MedicationRequest", "MedicationStatement"):
        if data.get("status") == "active":
            return "medication", {"d": _display(data, "medicationCodeableConcept", "medicationReference") or "Unknown"}
    elif resource_type == "AllergyIntolerance":
        if _codes(data, "verificationStatus") & _REFUTED:
            return None
        clinical = _codes(data, "clinicalStatus")
        if not clinical or "active" in clinical:
            return "allergy", {"d": _display(data, "code") or "Unknown allergy"}
    elif resource_type == "Coverage":
        if data.get("status") == "active":
            attrs = {
                "d": _display(data, "payor", "type") or "Coverage",
                "payer": _display(data, "payor"),
                "member_id": data.get("subscriberId")
                or next((i.get("value") for i in data.get("identifier") or [] if isinstance(i, dict)), None),
                "relationship": _display(data, "relationship"),
                "policyholder": _display(data, "policyHolder", "subscriber"),
                "type": _display(data, "type"),
                "order": data.get("order"),
            }
            return "insurance", {k: v for k, v in attrs.items() if v is not None}
    elif resource_type == "CareTeam":
        if data.get("status") in (None, "active"):
            members = []
            for part in data.get("participant") or []:
                if not isinstance(part, dict):
                    continue
                who = _display(part, "member") or str((part.get("member") or {}).get("reference") or "")
                role = _display(part, "role")
                if who:
                    members.append(f"{who} ({role})" if role else who)
            return "care_team", {"d": _display(data, "name", "category") or "Care team", "members": members[:MAX_VALUES_PER_FAMILY]}
    return None


def index_items(
    workspace_id: str,
    resource_type: str,
    resource_id: str,
    data: dict,
    *,
    entity_id: str | None,
    last_updated: str,
    created_at: str,
    data_source_id: str | None = None,
    extraction: Extraction | None = None,
) -> list[dict]:
    """The index items that must exist for this version of the resource (see module docstring).

    Deterministic: the same arguments give the same items, so the write path can recompute the old
    version's items from the stored CURRENT (``data``, ``entity_id``, ``last_updated``,
    ``created_at``, ``data_source_id``) and apply :func:`diff_index_items`. ``last_updated`` must equal the
    ``meta.lastUpdated`` stamped on ``data``. Values are str / int / list of str only.
    ``extraction``: ``data``'s :class:`~fhir_platform.search.parameters.Extraction`, when the caller
    made one (its values are shared); else one is made here.
    """
    ws, rtype, rid = workspace_id, resource_type, resource_id
    ex = extraction if extraction is not None and extraction.resource is data else Extraction(data)  # one walk for every family
    lu, lu_high = date_range(last_updated)  # an instant: [lu, lu + 1 ms) for the write path's clock
    core: list[dict] = [
        {
            "PK": ordered_pk(ws, rtype, LAST_UPDATED, shard_of(rid, ORDERED_SHARDS)),
            "SK": f"{lu}#{rid}",
            "id": rid,
            "lo": lu,
            "hi": lu_high,
        }
    ]
    src = {"src": data_source_id} if data_source_id else {}
    patient_extra: dict = {}
    if rtype == "Patient":
        ca = parse_instant(created_at)
        nm = _sort_name(data)
        patient_extra = {"ca": ca, "nm": nm, **({"e": entity_id} if entity_id else {}), **src}
        shard = shard_of(rid, ORDERED_SHARDS)
        core.append(
            {"PK": ordered_pk(ws, rtype, "sort.created_at", shard), "SK": f"{ca}#{rid}", "id": rid, **patient_extra}
        )
        core.append({"PK": ordered_pk(ws, rtype, "sort.name", shard), "SK": f"{nm}#{rid}", "id": rid, **patient_extra})
        if entity_id:
            core.append(
                {
                    "PK": exact_pk(ws, rtype, "entity", 0, entity_id),
                    "SK": rid,
                    "id": rid,
                    "k": entity_id,
                    **patient_extra,
                }
            )
    if data_source_id:
        core.append(
            {
                "PK": ordered_pk(ws, rtype, source_family(data_source_id), shard_of(rid, ORDERED_SHARDS)),
                "SK": f"{lu}#{rid}",
                "id": rid,
                **src,
                **patient_extra,
            }
        )
    fact = view_fact(rtype, data)
    if fact:
        kind, attrs = fact
        for pid in compartment_patient_ids(rtype, data, ex)[:2]:
            core.append(
                {"PK": patient_partition_pk(ws, pid), "SK": f"{FACT_PREFIX}{kind}#{rtype}#{rid}", "id": rid, **attrs}
            )
    core += sort_items(ws, rtype, rid, data, extraction=ex)
    core += timeline_items(
        ws, rtype, rid, data, entity_id=entity_id, last_updated=last_updated, created_at=created_at, data_source_id=data_source_id, extraction=ex
    )
    core += vital_items(ws, rtype, rid, data, last_updated=last_updated, extraction=ex)

    ranked: list[tuple[int, dict]] = []
    sorted_dates = sorted_date_families(rtype)
    for param, typed in family_params(rtype):
        if param.kind is Kind.ID or param.family == LAST_UPDATED:
            continue
        extra = patient_extra if rtype == "Patient" and param.family in ("q", "mrn", "phone", "identifier") else src
        prio = _KIND_PRIORITY[param.kind]
        if param.family in sorted_dates:  # the marked item is a _sort item: core, never dropped
            ranked += [(_P_CORE if "so" in it else prio, it) for it in _family_items(ws, rtype, rid, param, ex, extra, typed)]
        else:
            ranked += [(prio, it) for it in _family_items(ws, rtype, rid, param, ex, extra, typed)]
    ranked = [(_P_EXACT, it) for it in _composite_items(ws, rtype, rid, ex, src)] + ranked
    ranked.sort(key=lambda pair: pair[0])  # stable: keeps registry order within a priority
    room = max(0, MAX_INDEX_ITEMS - len(core))
    return core + [item for _, item in ranked[:room]]


def diff_index_items(old: list[dict], new: list[dict]) -> tuple[list[dict], list[dict]]:
    """``(puts, delete_keys)`` turning the ``old`` index items into the ``new`` ones.

    An item whose key and attributes are unchanged is neither put nor deleted; a changed item is put
    (overwriting); an item whose key vanished is deleted. Keys are ``{"PK", "SK"}`` dicts.
    """
    if not old:  # a create: every item is put
        return list(new), []
    key = lambda it: (it["PK"], it["SK"])  # noqa: E731
    old_by_key = {key(it): it for it in old}
    new_keys = {key(it) for it in new}
    puts = [it for it in new if old_by_key.get(key(it)) != it]
    deletes = [{"PK": pk, "SK": sk} for (pk, sk) in old_by_key if (pk, sk) not in new_keys]
    return puts, deletes


# --- compartment touch (patient last_event_at) -------------------------------------------------


def compartment_touch(
    workspace_id: str,
    patient_id: str,
    *,
    event_time: str,
    previous: dict | None,
    entity_id: str | None = None,
    count: int = 1,
    source: str | None | _Keep = KEEP,
    deleted: bool = False,
    timeline: dict[str, int] | None = None,
) -> list[dict]:
    """Transaction operations that record ``count`` changes in ``patient_id``'s compartment, the
    latest at ``event_time``. ``source``: the ``data_source_id`` of the Patient's new version when
    the Patient itself is among the changes (``None``: written from no source), else ``KEEP``. (A transaction may not touch one item twice: when several changes
    packed into one transaction share a patient, call this once with their number and latest time.)

    ``previous`` is the patient's touch item as read before the transaction (``GetItem``/
    ``BatchGetItem`` of :func:`touch_key`), ``None`` when absent. Returns operations shaped like
    TransactWriteItems entries with plain Python values: add ``TableName`` and send them through
    the Table resource's client (``table.meta.client``), which serialises plain values:

    - ``Put`` of the touch item (``last_event_at`` = max(previous, event_time), ``event_count`` +
      ``count``),
      conditioned on the touch item being exactly as read (``attribute_not_exists(PK)`` or the same
      ``event_count``), so concurrent writers in one compartment serialise: the loser's transaction is
      cancelled and the write path retries it after re-reading;
    - when ``last_event_at`` moves: ``Delete`` of the old ``sort.last_event_at`` entry and ``Put`` of
      the new one; likewise the ``sort.last_event_at.src.{source}`` entry when the time or the
      Patient's source moves (at most 5 operations).

    ``timeline``: per timeline domain, how many resources these changes add to (+) or remove from
    (−) the patient's timeline; the touch item keeps the running counts in ``tl`` (the timeline's
    exact ``total``, in the same transaction as the timeline items themselves).

    ``deleted``: the Patient itself is being deleted. The touch item stays (counted as above) but is
    marked ``deleted`` and its ``sort.last_event_at`` entries are removed, so the patient lists no
    longer walk it; later changes in the compartment only count on the touch item, until a write
    of the Patient (``source`` given) lists it again.
    """
    ws = workspace_id
    prev_time = (previous or {}).get("last_event_at")  # as stored: the key of the entries to move
    prev_count = int((previous or {}).get("event_count", 0))
    now = parse_instant(event_time)
    # compared in today's key format (an item written before milliseconds were kept has
    # ``…:SSZ``); a stored time in the old format differs from ``new_time`` and so is rewritten
    new_time = max(parse_instant(prev_time), now) if prev_time else now
    touch = {
        **touch_key(ws, patient_id),
        "id": patient_id,
        "last_event_at": new_time,
        "event_count": prev_count + count,
        **({"e": entity_id} if entity_id else ({"e": previous["e"]} if previous and previous.get("e") else {})),
    }
    prev_src = (previous or {}).get("src")
    new_src = prev_src if isinstance(source, _Keep) else source
    if new_src:
        touch["src"] = new_src
    counts = {k: int(v) for k, v in ((previous or {}).get("tl") or {}).items()}
    for domain, delta in (timeline or {}).items():
        counts[domain] = max(0, counts.get(domain, 0) + delta)
    if counts:
        touch["tl"] = counts
    gone = bool(previous and previous.get("deleted"))  # sort entries already removed
    unlisted = deleted or (gone and isinstance(source, _Keep))
    if unlisted:
        touch["deleted"] = True
    if gone:
        prev_time, prev_src = None, None  # nothing of the previous listing is left to move
    if previous is None:
        ops = [{"Put": {"Item": touch, "ConditionExpression": "attribute_not_exists(PK)"}}]
    else:
        ops = [
            {
                "Put": {
                    "Item": touch,
                    "ConditionExpression": "event_count = :prev_count",
                    "ExpressionAttributeValues": {":prev_count": prev_count},
                }
            }
        ]
    if unlisted:
        if prev_time:
            shard = shard_of(patient_id, ORDERED_SHARDS)
            families = ["sort.last_event_at"] + ([source_sort_family(prev_src)] if prev_src else [])
            for family in families:
                pk = ordered_pk(ws, "Patient", family, shard)
                ops.append({"Delete": {"Key": {"PK": pk, "SK": f"{prev_time}#{patient_id}"}}})
        return ops
    if new_time != prev_time:
        shard = shard_of(patient_id, ORDERED_SHARDS)
        pk = ordered_pk(ws, "Patient", "sort.last_event_at", shard)
        if prev_time:
            ops.append({"Delete": {"Key": {"PK": pk, "SK": f"{prev_time}#{patient_id}"}}})
        ops.append(
            {
                "Put": {
                    "Item": {
                        "PK": pk,
                        "SK": f"{new_time}#{patient_id}",
                        "id": patient_id,
                        **({"e": touch["e"]} if "e" in touch else {}),
                    }
                }
            }
        )
    if new_time != prev_time or new_src != prev_src:
        shard = shard_of(patient_id, ORDERED_SHARDS)
        if prev_src and prev_time:
            pk = ordered_pk(ws, "Patient", source_sort_family(prev_src), shard)
            ops.append({"Delete": {"Key": {"PK": pk, "SK": f"{prev_time}#{patient_id}"}}})
        if new_src:
            pk = ordered_pk(ws, "Patient", source_sort_family(new_src), shard)
            item = {"PK": pk, "SK": f"{new_time}#{patient_id}", "id": patient_id, "src": new_src}
            ops.append({"Put": {"Item": {**item, **({"e": touch["e"]} if "e" in touch else {})}}})
    return ops


def compartment_forget(workspace_id: str, patient_id: str, previous: dict | None) -> list[dict]:
    """Keys to delete when a Patient is deleted: its touch item and ``sort.last_event_at`` entry."""
    keys = [touch_key(workspace_id, patient_id)]
    if previous and previous.get("last_event_at"):
        shard = shard_of(patient_id, ORDERED_SHARDS)
        families = ["sort.last_event_at"] + ([source_sort_family(previous["src"])] if previous.get("src") else [])
        for family in families:
            pk = ordered_pk(workspace_id, "Patient", family, shard)
            keys.append({"PK": pk, "SK": f"{previous['last_event_at']}#{patient_id}"})
    return keys


# --- query plans -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyCondition:
    """One DynamoDB Query: ``PK = pk`` and, unless ``op == "all"``, an SK condition.

    ``op``: ``begins_with`` (values[0]), ``between`` (values[0]..values[1] inclusive), ``<``, ``>=``.
    ``index``: a Query of the table's ``TypeIndex`` (``TPK``/``TSK``, eventually consistent)
    instead of the table's ``PK``/``SK``.
    """

    pk: str
    op: str = "all"
    values: tuple[str, ...] = ()
    index: str | None = None


@dataclass(frozen=True)
class Plan:
    """How to run a search: Query every ``queries`` entry (``ScanIndexForward=forward``), merge the
    streams by SK, keep index items ``accepts()`` approves, de-duplicate resource ids (first wins),
    fetch the current resources and keep those ``matches(residual, ...)``. When ``ids`` is set there
    is nothing to query: fetch those resources directly (``_id``). ``source``: only index items
    (and, for ``ids``, current versions) of that ``data_source_id``."""

    resource_type: str
    queries: tuple[KeyCondition, ...] = ()
    forward: bool = True
    driver: Criterion | tuple[Criterion, Criterion] | None = None
    residual: tuple[Criterion, ...] = ()
    ids: tuple[str, ...] | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)
    source: str | None = None
    words: tuple[str, ...] = ()

    def accepts(self, item: dict) -> bool:
        """Checks the driving criterion can make on the index item alone (systems, types, ranges,
        every ``q`` word, the data source)."""
        if self.source is not None and item.get("src") != self.source:
            return False
        c = self.driver
        if c is None:
            return True
        if isinstance(c, tuple):  # (patient, code) composite
            ref_c, code_c = c
            return any(ref_matches(v, rt, item["p"]) for v in ref_c.values for rt in item["rt"]) and any(
                v.code == item["k"] and (v.system is None or v.system in item["sys"]) for v in code_c.values
            )
        kind = c.param.kind
        if kind is Kind.TEXT:
            return "w" not in item or text_matches(self.words, item_words(item))
        if kind is Kind.TOKEN:
            return any(v.code == item.get("k") and (v.system is None or v.system in item["sys"]) for v in c.values)
        if kind is Kind.REFERENCE:
            # a typed parameter (``patient``) may read an untyped family's items: only its types count
            targets = c.param.targets
            rts = [rt for rt in item.get("rt", []) if not targets or not rt or rt in targets]
            return any(ref_matches(v, rt, item.get("k")) for v in c.values for rt in rts)
        if kind is Kind.DATE:
            lo, hi = item["lo"], item["hi"]
            in_hi_family = item["SK"].startswith(hi + "#")
            for v in c.values:
                if not date_matches(v.prefix, v.low, v.high, lo, hi):
                    continue
                if v.prefix in ("gt", "ge", "eb") and _is_long(lo, hi) != in_hi_family:
                    continue  # long values are answered by the .hi family, short ones by the low-bound family
                return True
            return False
        return True


def _string_conditions(pk_of, value: StrValue) -> tuple[list[KeyCondition], bool]:
    prefix = value.norm[:MAX_STRING_KEY]
    return [KeyCondition(pk, "begins_with", (prefix,)) for pk in pk_of()], len(value.norm) > MAX_STRING_KEY


def _date_conditions(ws: str, rtype: str, param: SearchParam, v: DateValue) -> list[KeyCondition]:
    lo_pks = [ordered_pk(ws, rtype, param.family, s) for s in range(ORDERED_SHARDS)]
    hi_pks = (
        []
        if param.family == LAST_UPDATED
        else [ordered_pk(ws, rtype, f"{param.family}.hi", s) for s in range(ORDERED_SHARDS)]
    )
    day = LONG_SPAN
    if v.prefix == "eq":
        return [KeyCondition(pk, "between", (v.low, v.high)) for pk in lo_pks]
    if v.prefix == "lt":
        return [KeyCondition(pk, "<", (v.low,)) for pk in lo_pks]
    if v.prefix == "le":
        return [KeyCondition(pk, "<", (v.high,)) for pk in lo_pks]
    if v.prefix == "sa":
        return [KeyCondition(pk, ">=", (v.high,)) for pk in lo_pks]
    if v.prefix == "gt":
        return [KeyCondition(pk, ">=", (_shift(v.high, -day),)) for pk in lo_pks] + [
            KeyCondition(pk, ">=", (v.high,)) for pk in hi_pks
        ]
    if v.prefix == "ge":
        return [KeyCondition(pk, ">=", (_shift(v.low, -day),)) for pk in lo_pks] + [
            KeyCondition(pk, ">=", (v.low,)) for pk in hi_pks
        ]
    if v.prefix == "eb":
        return [KeyCondition(pk, "<", (v.low,)) for pk in lo_pks] + [
            KeyCondition(pk, "<", (v.low + "$",)) for pk in hi_pks
        ]
    raise ValueError(v.prefix)


# Token families with a handful of values, each shared by a large part of the type (every final
# Observation, every female Patient): such a criterion drives a search only when nothing else can,
# otherwise ``status=final&code=X&date=2020`` would walk every final Observation.
FEW_VALUED = frozenset(
    {"status", "clinical-status", "verification-status", "lifecycle-status", "achievement-status", "gender",
     "active", "intent", "use", "priority", "criticality", "class", "category"}
)


def _score(c: Criterion) -> float | None:
    """Lower is more selective; ``None``: this criterion cannot drive an index query."""
    kind, mod = c.param.kind, c.modifier
    n = len(c.values)
    if kind is Kind.ID:
        return 0
    if kind is Kind.TOKEN and (mod == "not" or any(v.code is None for v in c.values)):
        return None
    if kind is Kind.TOKEN and c.param.family in FEW_VALUED:
        return 40 + 2 * (n - 1)  # a handful of values shared by everything: after codes and date ranges
    if kind in (Kind.TOKEN, Kind.REFERENCE, Kind.PHONE):
        return (10 if c.param.shard_count == 1 else 30) + 2 * (n - 1)
    if kind is Kind.STRING:
        return 30 - min(min(len(v.norm) for v in c.values), 8) + 2 * (n - 1)
    if kind is Kind.TEXT:
        return 30 - min(min(max(len(w) for w in v) for v in c.values), 8) + 2 * (n - 1)
    if kind is Kind.DATE:
        if any(v.prefix == "ne" for v in c.values):
            return None
        narrow = all(v.prefix == "eq" and not _is_long(v.low, v.high) for v in c.values)
        return (25 if narrow else 35 if all(v.prefix == "eq" for v in c.values) else 45) + 2 * (n - 1)
    return None


def _composite_plan(ws: str, query: SearchQuery) -> Plan | None:
    by_name = {c.param.name: c for c in query.criteria}
    ref_c, code_c = by_name.get("patient"), by_name.get("code")
    if ref_c is None or code_c is None or _score(code_c) is None or "_id" in by_name:
        return None
    if len(ref_c.values) * len(code_c.values) > 20:
        return None
    conds = [
        KeyCondition(exact_pk(ws, query.resource_type, COMPOSITE, 0, f"{r.id}|{t.code}"))
        for r in ref_c.values
        for t in code_c.values
    ]
    residual = tuple(c for c in query.criteria if c is not ref_c and c is not code_c)
    return Plan(query.resource_type, tuple(conds), True, (ref_c, code_c), residual)


def plan(workspace_id: str, query: SearchQuery, source: str | None = None) -> Plan:
    """Pick the most selective criterion's index partition(s); the rest become residual filters.

    No usable criterion (none, or only ``ne``/``:not``/``system|``): the per-type ``_lastUpdated``
    family (or, with ``source``, that source's ``src.{source}`` family), newest first, every
    criterion residual. ``source`` (a view's ``data_source_id``) is checked on every index item.
    """
    ws, rtype = workspace_id, query.resource_type
    scored = [(s, i, c) for i, c in enumerate(query.criteria) if (s := _score(c)) is not None]
    if not scored:
        family = source_family(source) if source else LAST_UPDATED
        pks = [ordered_pk(ws, rtype, family, s) for s in range(ORDERED_SHARDS)]
        return Plan(rtype, tuple(KeyCondition(pk) for pk in pks), False, None, query.criteria, notes=("type-list",), source=source)
    composite = _composite_plan(ws, query)
    if composite is not None:
        return replace(composite, source=source)
    _, index, driver = min(scored)
    residual = [c for i, c in enumerate(query.criteria) if i != index]
    param = driver.param
    if param.kind is Kind.ID:
        return Plan(rtype, (), True, None, tuple(residual), ids=tuple(driver.values))
    conditions: list[KeyCondition] = []
    keep_driver_residual = False
    words_: tuple[str, ...] = ()
    shards = range(param.shard_count)
    for v in driver.values:
        if param.kind is Kind.TOKEN:
            conditions += [KeyCondition(exact_pk(ws, rtype, param.family, s, v.code)) for s in shards]
        elif param.kind is Kind.REFERENCE:
            conditions += [KeyCondition(exact_pk(ws, rtype, param.family, s, v.id)) for s in shards]
        elif param.kind is Kind.PHONE:
            conditions += [KeyCondition(exact_pk(ws, rtype, param.family, s, v)) for s in shards]
        elif param.kind is Kind.STRING:
            conds, truncated = _string_conditions(lambda: [ordered_pk(ws, rtype, param.family, s) for s in shards], v)
            conditions += conds
            keep_driver_residual |= truncated or driver.modifier == "exact"
        elif param.kind is Kind.TEXT:
            longest = max(v, key=len)[:MAX_STRING_KEY]
            conditions += [
                KeyCondition(ordered_pk(ws, rtype, param.family, s), "begins_with", (longest,)) for s in shards
            ]
            # the other words are checked on the index item's ``w``; only over-long ones need the resource
            words_ = tuple(v)
            keep_driver_residual |= len(driver.values) > 1 or len(longest) < len(max(v, key=len))
        elif param.kind is Kind.DATE:
            conditions += _date_conditions(ws, rtype, param, v)
    if keep_driver_residual:
        residual.insert(0, driver)
        words_ = ()
    return Plan(rtype, tuple(dict.fromkeys(conditions)), True, driver, tuple(residual), source=source, words=words_)


# --- the patient list (GET /fhir/patients) -----------------------------------------------------


@dataclass(frozen=True)
class PatientPlan:
    """How to list patients: with no ``groups``, walk ``sort`` (the sort family's shard Queries,
    merged by SK in ``forward`` order) and page. Otherwise each group is a union of Queries for one
    filter; a patient matches when it is in every group (items of ``q`` Queries must also pass
    :func:`patient_item_accepts`); matches are then ordered by ``sort_field``.

    ``source`` (the patients view's ``data_source_id``): every item must carry it; with no filter
    the walk is the source's own ``sort.last_event_at.src.{source}`` list, for other sort fields
    the source's ``src.{source}`` Patients become a group."""

    sort_field: str
    forward: bool
    sort: tuple[KeyCondition, ...]
    groups: tuple[tuple[KeyCondition, ...], ...] = ()
    q_words: tuple[str, ...] = ()
    source: str | None = None


def patient_plan(workspace_id: str, search: PatientSearch, source: str | None = None) -> PatientPlan:
    ws = workspace_id
    family = f"sort.{search.sort_field}"
    if source and search.sort_field == "last_event_at":
        family = source_sort_family(source)
    sort = tuple(KeyCondition(ordered_pk(ws, "Patient", family, s)) for s in range(ORDERED_SHARDS))
    groups: list[tuple[KeyCondition, ...]] = []
    q_words: tuple[str, ...] = ()
    if search.q:
        q_words = tuple(words(search.q))
        group: list[KeyCondition] = []
        if q_words:
            longest = max(q_words, key=len)[:MAX_STRING_KEY]
            group += [
                KeyCondition(ordered_pk(ws, "Patient", "q", s), "begins_with", (longest,))
                for s in range(ORDERED_SHARDS)
            ]
        group.append(KeyCondition(exact_pk(ws, "Patient", "identifier", 0, normalize_token(search.q))))
        group.append(KeyCondition(exact_pk(ws, "Patient", "entity", 0, search.q.strip())))
        digits = normalize_phone(search.q)
        if len(digits) >= 7 and not any(c.isalpha() for c in search.q):
            group.append(KeyCondition(exact_pk(ws, "Patient", "phone", 0, digits)))
        groups.append(tuple(group))
    if search.mrn:
        groups.append((KeyCondition(exact_pk(ws, "Patient", "mrn", 0, normalize_token(search.mrn))),))
    if search.phone:
        groups.append((KeyCondition(exact_pk(ws, "Patient", "phone", 0, normalize_phone(search.phone))),))
    if source and not groups and search.sort_field != "last_event_at":
        groups.append(tuple(KeyCondition(ordered_pk(ws, "Patient", source_family(source), s)) for s in range(ORDERED_SHARDS)))
    return PatientPlan(search.sort_field, not search.descending, sort, tuple(groups), q_words, source)


def patient_item_accepts(plan_: PatientPlan, item: dict) -> bool:
    """An item of the plan's source (if any); a ``q`` name-word item only if every query word
    prefixes one of the name's words."""
    if plan_.source is not None and item.get("src") != plan_.source:
        return False
    return "w" not in item or text_matches(plan_.q_words, item_words(item))


def item_words(item: dict) -> set[str]:
    """The resource words on a ``q`` item: one space-separated string (a list before index version 5)."""
    w = item["w"]
    return set(w.split(" ")) if isinstance(w, str) else set(w)
