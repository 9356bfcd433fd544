"""The lists behind ``GET /fhir/views/*`` and ``GET /fhir/patients``: which index serves each,
their filters and totals, and the extra reads a row needs. Runs against a ``ResourceStore`` (its
table, its S3 loader, its counters and its event-metadata read); rows are built by
:mod:`fhir_platform.search.views` from the current versions at read time, so they never go stale.

==================  ===========================================================================
view                served by
==================  ===========================================================================
patients            :func:`~fhir_platform.search.executor.search_patients` (``-last_event_at``),
                    then one Query per row on the patient's partition (touch + active facts)
practitioners,      no filter: the type's ``_lastUpdated`` list (newest first), ``total`` from the
locations,          counters; ``q``: the type's ``q`` word index (word-prefix, every word)
organizations,
appointments
slots               as above, plus :mod:`fhir_platform.search.slots` filters (window on the
                    ``date`` index, provider/facility joined through Schedules, residual
                    status/specialty/service type); the slots' Schedules in one BatchGetItem
==================  ===========================================================================

Every row also needs its current version's event (``source_system``): one BatchGetItem (with a
projection) per page. ``data_source_id`` keeps the resources whose *current version* was written
from that data source. It is indexed (see :mod:`~fhir_platform.search.indexing`): alone, it walks
the source's own list (``src.{source}``; patients: ``sort.last_event_at.src.{source}``) with
``total`` from the per-source counters; with other filters it is checked on their index items. So
it costs what the unscoped list costs. Filtered lists report an exact ``total`` (the views'
``total`` is required): counted from index ids in full 1 MB pages when the index decides alone,
otherwise by checking every candidate within ``MAX_EXAMINED``. Rows of resources not linked to an entity yet carry
:func:`~fhir_platform.world.entities.anchor_entity_id` (the contract's ``entity_id`` is required).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fhir_platform.search.executor import (
    BATCH_GET_MAX,
    Keep,
    SearchTooBroad,
    patient_partitions,
    search_patients,
    search_resources,
)
from fhir_platform.search.parameters import params_for, parse_reference
from fhir_platform.search.query import Criterion, PatientSearch, RefValue, SearchQuery, parse_search
from fhir_platform.search.slots import (
    MAX_PROVIDERS,
    MAX_SCHEDULES,
    SlotFilters,
    actor_display_matches,
    schedule_criterion,
    slot_matches,
    window_criterion,
)
from fhir_platform.search.views import (
    appointment_row,
    location_row,
    organization_row,
    patient_list_item,
    patient_row,
    practitioner_row,
    slot_row,
)
from fhir_platform.world.entities import anchor_entity_id

__all__ = ["VIEW_TYPES", "ViewPage", "patient_list_page", "patient_view_page", "resource_view_page"]

VIEW_TYPES = {
    "patients": "Patient",
    "practitioners": "Practitioner",
    "locations": "Location",
    "organizations": "Organization",
    "appointments": "Appointment",
    "slots": "Slot",
}
_ROWS: dict[str, Callable[[dict], dict]] = {
    "Practitioner": practitioner_row,
    "Location": location_row,
    "Organization": organization_row,
    "Appointment": appointment_row,
}


class Store(Protocol):
    """What the lists need from :class:`~fhir_platform.storage.resources.ResourceStore`."""

    @property
    def table(self) -> Any: ...

    def load_data(self, item: dict[str, Any]) -> dict[str, Any]: ...

    def event_sources(self, ws: str, versions: list[tuple[str, str, int]]) -> dict[tuple[str, str], dict[str, Any]]: ...

    def counters(self, ws: str) -> dict[str, Any]: ...

    def batch_get(self, ws: str, refs: list[tuple[str, str]]) -> dict[tuple[str, str], Any]: ...


@dataclass
class ViewPage:
    rows: list[dict]
    total: int
    has_more: bool
    next_offset: int | None
    calls: Counter = field(default_factory=Counter)


def _ref(entry: dict) -> tuple[str, str]:
    resource = entry["resource"]
    return resource["resourceType"], resource["id"]


def _batches(n: int) -> int:
    return -(-n // BATCH_GET_MAX)


class _Sources:
    """The current versions' event metadata (the rows' ``source_system``), read once per resource
    per request."""

    def __init__(self, store: Store, ws: str, calls: Counter) -> None:
        self.store, self.ws, self.calls = store, ws, calls
        self.cache: dict[tuple[str, str], dict] = {}

    def of(self, entries: list[dict]) -> dict[tuple[str, str], dict]:
        missing = [(*_ref(e), int(e.get("version") or 1)) for e in entries if _ref(e) not in self.cache]
        if missing:
            self.calls["BatchGetItem"] += _batches(len(missing))
            found = self.store.event_sources(self.ws, missing)
            for rt, rid, _ in missing:
                self.cache[(rt, rid)] = found.get((rt, rid), {})
        return self.cache


class _Schedules:
    """Schedules by id (current data), fetched once per request."""

    def __init__(self, store: Store, ws: str, calls: Counter) -> None:
        self.store, self.ws, self.calls = store, ws, calls
        self.cache: dict[str, dict | None] = {}

    def of(self, ids: list[str]) -> dict[str, dict | None]:
        missing = list(dict.fromkeys(i for i in ids if i not in self.cache))
        if missing:
            self.calls["BatchGetItem"] += _batches(len(missing))
            found = self.store.batch_get(self.ws, [("Schedule", i) for i in missing])
            for i in missing:
                stored = found.get(("Schedule", i))
                self.cache[i] = stored.data if stored is not None and not stored.deleted else None
        return self.cache


def _schedule_id(slot: dict) -> str | None:
    ref = (slot.get("schedule") or {}).get("reference")
    parsed = parse_reference(ref) if isinstance(ref, str) else None
    return parsed[1] if parsed and parsed[0] in ("Schedule", "") else None


def _enrich(ws: str, entries: list[dict], sources: _Sources) -> None:
    """What the row builders read besides the resource: ``source_system`` from the current event,
    ``event_count`` (= versions) and an ``entity_id`` for resources not linked yet."""
    meta = sources.of(entries) if entries else {}
    for e in entries:
        rt, rid = _ref(e)
        e["source_system"] = meta.get((rt, rid), {}).get("source_system")
        e.setdefault("event_count", int(e.get("version") or 0))
        if not e.get("entity_id"):
            e["entity_id"] = anchor_entity_id(ws, rt, rid)


def _current(store: Store, ws: str, rows: list[dict], calls: Counter) -> list[dict]:
    """Rows' ``entity_id`` (the stored anchor) as the current entity: one BatchGetItem of the
    anchors' aliases per 100 distinct anchors (``docs/entities.md``)."""
    from fhir_platform.storage.entity_reads import map_current_entities

    anchors = {r["entity_id"] for r in rows if r.get("entity_id")}
    if anchors:
        calls["BatchGetItem"] += _batches(len(anchors))
        map_current_entities(store.table, ws, rows)
    return rows


def _q_criteria(resource_type: str, q: str | None) -> list[Criterion]:
    return list(parse_search(resource_type, {"q": q}).criteria) if q is not None and q.strip() else []


def _ids_or_too_broad(page: Any, what: str, cap: int) -> list[str]:
    if page.has_more:
        raise SearchTooBroad(f"more than {cap} {what} match; use more of the name or another filter")
    return [e["resource"]["id"] for e in page.entries]


def _matching_schedules(store: Store, ws: str, f: SlotFilters, calls: Counter) -> list[str]:
    """Schedules a provider / facility filter selects (joined through the index; see ``slots``)."""
    table, load = store.table, store.load_data
    sets: list[set[str]] = []
    if f.provider:
        words_q = " ".join(f.provider)
        found: set[str] = set()
        prac = search_resources(
            table, ws, SearchQuery("Practitioner", tuple(_q_criteria("Practitioner", words_q)), MAX_PROVIDERS), load_data=load
        )
        calls.update(prac.calls)
        prac_ids = _ids_or_too_broad(prac, "practitioners", MAX_PROVIDERS)
        if prac_ids:
            by_actor = Criterion(params_for("Schedule")["practitioner"], tuple(RefValue("Practitioner", i) for i in prac_ids))
            sched = search_resources(table, ws, SearchQuery("Schedule", (by_actor,), MAX_SCHEDULES), load_data=load)
            calls.update(sched.calls)
            found.update(_ids_or_too_broad(sched, "schedules", MAX_SCHEDULES))
        by_display = search_resources(
            table,
            ws,
            SearchQuery("Schedule", tuple(_q_criteria("Schedule", words_q)), MAX_SCHEDULES),
            load_data=load,
            keep=lambda es: [e for e in es if actor_display_matches(f.provider, e["resource"])],
        )
        calls.update(by_display.calls)
        found.update(_ids_or_too_broad(by_display, "schedules", MAX_SCHEDULES))
        sets.append(found)
    if f.facility_id is not None:
        at = Criterion(params_for("Schedule")["location"], (RefValue("Location", f.facility_id),))
        sched = search_resources(table, ws, SearchQuery("Schedule", (at,), MAX_SCHEDULES), load_data=load)
        calls.update(sched.calls)
        sets.append(set(_ids_or_too_broad(sched, "schedules", MAX_SCHEDULES)))
    ids = set.intersection(*sets) if sets else set()
    if len(ids) > MAX_SCHEDULES:
        raise SearchTooBroad(f"more than {MAX_SCHEDULES} schedules match; narrow the provider or facility")
    return sorted(ids)


def resource_view_page(
    store: Store,
    ws: str,
    resource_type: str,
    *,
    q: str | None = None,
    limit: int = 20,
    offset: int = 0,
    data_source_id: str | None = None,
    slots: SlotFilters | None = None,
) -> ViewPage:
    """One page of a directory view (practitioners, locations, organizations, appointments, slots)."""
    calls: Counter = Counter()
    sources = _Sources(store, ws, calls)
    schedules = _Schedules(store, ws, calls)
    criteria = _q_criteria(resource_type, q)
    slot_keep: Keep | None = None
    if resource_type == "Slot" and slots is not None:
        window = window_criterion(slots)
        if window is not None:
            criteria.append(window)
        if slots.needs_schedules:
            ids = _matching_schedules(store, ws, slots, calls)
            if not ids:
                return ViewPage([], 0, False, None, calls)
            criteria.append(schedule_criterion(ids))
        if slots.residual:
            f = slots

            def keep_slots(entries: list[dict]) -> list[dict]:
                by_id = schedules.of([s for e in entries if (s := _schedule_id(e["resource"]))]) if f.specialty else {}
                return [e for e in entries if slot_matches(f, e["resource"], by_id.get(_schedule_id(e["resource"]) or ""))]

            slot_keep = keep_slots

    known_total = None
    if not criteria and slot_keep is None:
        calls["Query"] += 1
        known_total = _counted(store.counters(ws), resource_type, data_source_id)
    page = search_resources(
        store.table,
        ws,
        SearchQuery(resource_type, tuple(criteria), limit, offset),
        known_total=known_total,
        load_data=store.load_data,
        keep=slot_keep,
        exact_total=True,
        source=data_source_id,
    )
    calls.update(page.calls)
    _enrich(ws, page.entries, sources)
    if resource_type == "Slot":
        by_id = schedules.of([s for e in page.entries if (s := _schedule_id(e["resource"]))])
        rows = [slot_row(e, by_id.get(_schedule_id(e["resource"]) or "")) for e in page.entries]
    else:
        rows = [_ROWS[resource_type](e) for e in page.entries]
    _current(store, ws, rows, calls)
    total = page.total if page.total is not None else offset + len(rows)
    return ViewPage(rows, total, page.has_more, page.next_offset, calls)


def _counted(counters: dict[str, Any], resource_type: str, data_source_id: str | None) -> int:
    """The number of a type's resources (of one data source's, when given) from the counters."""
    if data_source_id:
        return max(0, counters["data_source_counts"].get(data_source_id, {}).get(resource_type, 0))
    return counters["resource_type_counts"].get(resource_type, 0)


def _patient_page(store: Store, ws: str, search: PatientSearch, data_source_id: str | None, calls: Counter):
    filtered = bool(search.q or search.mrn or search.phone)
    total_patients = None
    if not filtered:
        calls["Query"] += 1
        total_patients = _counted(store.counters(ws), "Patient", data_source_id)
    def patient_count() -> int:  # asked only when ordering many matches by last_event_at
        calls["Query"] += 1
        return _counted(store.counters(ws), "Patient", data_source_id)

    page = search_patients(
        store.table,
        ws,
        search,
        total_patients=total_patients,
        load_data=store.load_data,
        source=data_source_id,
        patient_count=patient_count,
    )
    calls.update(page.calls)
    return page


def patient_list_page(store: Store, ws: str, search: PatientSearch) -> ViewPage:
    """``GET /fhir/patients``: ``PatientListItem`` rows."""
    calls: Counter = Counter()
    page = _patient_page(store, ws, search, None, calls)
    rows = []
    for row in page.rows:
        item = patient_list_item(row)
        item["entity_id"] = item["entity_id"] or anchor_entity_id(ws, "Patient", row["resource"]["id"])
        rows.append(item)
    _current(store, ws, rows, calls)
    return ViewPage(rows, page.total, page.has_more, page.next_offset, calls)


def patient_view_page(store: Store, ws: str, search: PatientSearch, *, data_source_id: str | None = None) -> ViewPage:
    """``GET /fhir/views/patients``: ``FhirPatientView`` rows (patient page + each row's partition)."""
    calls: Counter = Counter()
    sources = _Sources(store, ws, calls)
    page = _patient_page(store, ws, search, data_source_id, calls)
    _enrich(ws, page.rows, sources)
    ids = [row["resource"]["id"] for row in page.rows]
    partitions = patient_partitions(store.table, ws, ids, calls)
    rows = [patient_row(row, partitions.get(pid, [])) for row, pid in zip(page.rows, ids, strict=True)]
    _current(store, ws, rows, calls)
    return ViewPage(rows, page.total, page.has_more, page.next_offset, calls)
