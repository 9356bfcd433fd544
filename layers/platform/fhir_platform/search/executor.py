"""Run search plans against the table: Query the index partitions, confirm, page.

``search_resources(table, ws, query)`` runs :func:`~fhir_platform.search.indexing.plan`: one Query
per planned key condition (all shards, issued concurrently for the first page), merged by SK,
index-item checks (``Plan.accepts``), de-duplication, then ``BatchGetItem`` of the current resources
(``ConsistentRead``) to apply the residual criteria with
:func:`~fhir_platform.search.query.matches` and return the page. Index Queries are paged with
``LastEvaluatedKey`` (so more than one 1 MB DynamoDB page is fine) and use ``ConsistentRead``:
index items are base-table items written in the resource's transaction, so a search sees every
write that returned before it started.

``search_patients(table, ws, search)`` serves ``GET /fhir/patients``: without filters it walks the
requested sort family; with ``q``/``mrn``/``phone`` it reads the (bounded) match set from their
exact/prefix partitions in full 1 MB pages and orders it by the sort field.

Cost per request is bounded, not a function of workspace size: ``offset + count`` ids are read from
the index (≈ 7,000 ids per 1 MB Query page; walks that must read a whole match set or count it use
full 1 MB pages, so their calls grow with megabytes matched, not with items) and at most
``MAX_EXAMINED`` resources are fetched to evaluate residual criteria; a search that needs more raises :class:`SearchTooBroad` (a 400 asking
for a more selective parameter). ``calls`` on each result counts the DynamoDB calls made.
"""

from __future__ import annotations

import heapq
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from fhir_platform.search.indexing import (
    KeyCondition,
    PatientPlan,
    Plan,
    patient_item_accepts,
    patient_partition_pk,
    patient_plan,
    plan,
    touch_key,
)
from fhir_platform.search.parameters import ORDERED_SHARDS
from fhir_platform.search.query import PatientSearch, SearchQuery, matches
from fhir_platform.storage.keys import CURRENT_SK, resource_pk

__all__ = [
    "Keep",
    "PatientPage",
    "SearchPage",
    "SearchTooBroad",
    "patient_partitions",
    "search_patients",
    "search_resources",
]

MAX_EXAMINED = 1000  # resources fetched to apply residual criteria, per request
MAX_INDEX_READ = 50_000  # index items read per request
MAX_PATIENT_MATCHES = 25_000  # filtered patient lists are ordered in memory up to this many matches
FIRST_PAGE_LIMIT = 100
NEXT_PAGE_LIMIT = 1000
BATCH_GET_MAX = 100


# An extra residual filter: given fetched entries (CURRENT item + ``resource``), those to keep, in order.
Keep = Callable[[list[dict]], list[dict]]


class SearchTooBroad(Exception):
    """The search would read more than the per-request budget; the client should narrow it."""


@dataclass
class SearchPage:
    entries: list[dict]  # CURRENT items with ``data`` replaced by ``resource`` (the parsed JSON)
    total: int | None
    has_more: bool
    next_offset: int | None
    calls: Counter = field(default_factory=Counter)


@dataclass
class PatientPage:
    rows: list[dict]  # CURRENT item + ``resource`` + ``last_event_at``/``event_count`` from the touch item
    total: int
    has_more: bool
    next_offset: int | None
    calls: Counter = field(default_factory=Counter)


class _Reader:
    """Reads through the Table resource's client: thread-safe (unlike the resource) and, being the
    resource's client, it (de)serialises plain Python values itself."""

    def __init__(self, table: Any, calls: Counter, load_data: Callable[[dict], dict] | None = None):
        self.client = table.meta.client
        self.name = table.name
        self.calls = calls
        self.load_data = load_data
        self.index_read = 0
        self._lock = threading.Lock()
        self.next_limit: int | None = NEXT_PAGE_LIMIT

    def _query_page(self, cond: KeyCondition, forward: bool, limit: int | None, start: dict | None) -> dict:
        pk, sk = ("TPK", "TSK") if cond.index else ("PK", "SK")
        expr = f"{pk} = :pk"
        values: dict[str, str] = {":pk": cond.pk}
        if cond.op == "begins_with":
            expr += f" AND begins_with({sk}, :a)"
        elif cond.op == "between":
            expr += f" AND {sk} BETWEEN :a AND :b"
        elif cond.op in ("<", ">="):
            expr += f" AND {sk} {cond.op} :a"
        elif cond.op != "all":
            raise ValueError(cond.op)
        for name, value in zip((":a", ":b"), cond.values, strict=False):
            values[name] = value
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": expr,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": forward,
        }
        if cond.index:  # a global secondary index: eventually consistent only
            kwargs["IndexName"] = cond.index
        else:
            kwargs["ConsistentRead"] = True
        if limit is not None:  # None: a full 1 MB page
            kwargs["Limit"] = limit
        if start:
            kwargs["ExclusiveStartKey"] = start
        self._count("Query")
        return self.client.query(**kwargs)

    def stream(self, cond: KeyCondition, forward: bool, first: dict | None = None, whole: bool = False) -> Iterator[dict]:
        """Every item of one key condition, in SK order, page after page (LastEvaluatedKey).
        Later pages hold ``next_limit`` items, or full 1 MB pages when ``whole`` or once the
        reader's ``next_limit`` is ``None`` (a walk that reads on to count)."""
        page = first if first is not None else self._query_page(cond, forward, FIRST_PAGE_LIMIT, None)
        while True:
            for raw in page.get("Items", []):
                with self._lock:  # streams are consumed from pool threads too: count exactly
                    self.index_read += 1
                    too_many = self.index_read > MAX_INDEX_READ
                if too_many:
                    raise SearchTooBroad("the search reads too many index entries; add a more selective parameter")
                yield raw
            start = page.get("LastEvaluatedKey")
            if not start:
                return
            page = self._query_page(cond, forward, None if whole else self.next_limit, start)

    def merged(self, conds: Iterable[KeyCondition], forward: bool, *, whole: bool = False) -> Iterator[dict]:
        """All conditions' items merged by SK; first pages fetched concurrently. ``whole``: the
        caller reads every item (a match set, a count), so every page is a full 1 MB page and the
        calls grow with the bytes matched (~5,000 index items per call per partition), not with
        a page size."""
        conds = list(conds)
        if not conds:
            return iter(())
        first_limit = None if whole else FIRST_PAGE_LIMIT
        with ThreadPoolExecutor(max_workers=min(16, len(conds))) as pool:
            firsts = list(pool.map(lambda c: self._query_page(c, forward, first_limit, None), conds))
        streams = [self.stream(c, forward, f, whole) for c, f in zip(conds, firsts, strict=True)]
        sk = "TSK" if conds[0].index else "SK"  # one key space per merge: the table's or the index's
        return heapq.merge(*streams, key=lambda it: it[sk], reverse=not forward)

    def _count(self, op: str) -> None:
        with self._lock:  # calls are made from pool threads too
            self.calls[op] += 1

    def _batch_get_chunk(self, keys: list[dict]) -> list[dict]:
        out: list[dict] = []
        pending = {self.name: {"Keys": [{"PK": k["PK"], "SK": k["SK"]} for k in keys], "ConsistentRead": True}}
        while pending:
            self._count("BatchGetItem")
            resp = self.client.batch_get_item(RequestItems=pending)
            out.extend(resp.get("Responses", {}).get(self.name, []))
            pending = resp.get("UnprocessedKeys") or {}
        return out

    def batch_get(self, keys: list[dict]) -> list[dict]:
        """BatchGetItem (ConsistentRead) in chunks of 100 (concurrently), retrying unprocessed keys."""
        chunks = [keys[i : i + BATCH_GET_MAX] for i in range(0, len(keys), BATCH_GET_MAX)]
        if len(chunks) <= 1:
            return self._batch_get_chunk(chunks[0]) if chunks else []
        with ThreadPoolExecutor(max_workers=min(8, len(chunks))) as pool:
            return [item for part in pool.map(self._batch_get_chunk, chunks) for item in part]

    def current(self, ws: str, resource_type: str, ids: list[str]) -> dict[str, dict]:
        """``id → CURRENT item`` with ``resource`` parsed; missing and deleted resources left out."""
        items = self.batch_get([{"PK": resource_pk(ws, resource_type, i), "SK": CURRENT_SK} for i in ids])
        out: dict[str, dict] = {}
        for item in items:
            if item.get("deleted"):
                continue
            if isinstance(item.get("data"), str):
                resource = json.loads(item["data"])
            elif self.load_data is not None:  # large resources live in S3 (``data_s3_key``)
                resource = self.load_data(item)
            else:
                continue
            if item.get("last_updated") and not (resource.get("meta") or {}).get("lastUpdated"):
                resource.setdefault("meta", {})["lastUpdated"] = item["last_updated"]
            item = {k: v for k, v in item.items() if k not in ("data", "data_s3_key", "TPK", "TSK")}
            out[item.get("resource_id") or item["PK"].rsplit("#", 1)[1]] = {**item, "resource": resource}
        return out


def _chunks(it: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for x in it:
        chunk.append(x)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ids(reader: _Reader, p: Plan) -> Iterator[str]:
    seen: set[str] = set()
    for item in reader.merged(p.queries, p.forward):
        rid = item.get("id") or item["SK"].rsplit("#", 1)[-1]
        if rid in seen or not p.accepts(item):
            continue
        seen.add(rid)
        yield rid


def search_resources(
    table: Any,
    workspace_id: str,
    query: SearchQuery,
    *,
    known_total: int | None = None,
    load_data: Callable[[dict], dict] | None = None,
    keep: Keep | None = None,
    exact_total: bool = False,
    source: str | None = None,
) -> SearchPage:
    """One page of ``GET /fhir/resources/{type}``.

    ``known_total``: the type's resource count from the counters, used as ``total`` when the search
    has no criteria. Otherwise ``total`` is exact when the walk reached the end of the index and
    ``None`` when more results remain (FHIR allows an absent total). ``load_data(item)`` returns the
    resource of a CURRENT item kept in S3 (``data_s3_key``); without it such resources are skipped.

    ``keep(entries)``: an extra residual filter over each fetched batch of matching entries (in
    order; it may read more, e.g. the current versions' events for ``data_source_id``); it forces the
    residual path, so the ``MAX_EXAMINED`` budget applies. ``exact_total``: when more results remain,
    walk on to count them (ids only when the index decides; otherwise fetching candidates within
    ``MAX_EXAMINED``, else :class:`SearchTooBroad`) — the views' ``total`` is required.
    ``source``: only resources whose current version came from that data source (the views'
    ``data_source_id``), decided on the index items (see :func:`~fhir_platform.search.indexing.plan`).
    """
    calls: Counter = Counter()
    reader = _Reader(table, calls, load_data)
    p = plan(workspace_id, query, source)
    rtype, offset, count = query.resource_type, query.offset, query.count
    if p.ids is not None:
        found = reader.current(workspace_id, rtype, list(dict.fromkeys(p.ids)))
        hits = [
            found[i]
            for i in dict.fromkeys(p.ids)
            if i in found
            and (source is None or found[i].get("data_source_id") == source)
            and matches(p.residual, found[i]["resource"])
        ]
        if keep is not None and hits:
            hits = keep(hits)
        page = hits[offset : offset + count]
        more = len(hits) > offset + count
        return SearchPage(page, len(hits), more, offset + count if more else None, calls)

    stream = _ids(reader, p)
    if not p.residual and keep is None:  # the index alone decides: skip ``offset`` ids without fetching them
        skipped = sum(1 for _ in islice(stream, offset))
        page_ids = list(islice(stream, count + 1))
        found = reader.current(workspace_id, rtype, page_ids[:count])
        has_more = len(page_ids) > count
        entries = [found[i] for i in page_ids[:count] if i in found]
        total = None if has_more else skipped + len(page_ids)
        if not query.criteria and known_total is not None:
            total = known_total
        elif total is None and exact_total:
            reader.next_limit = None  # counting the rest: full 1 MB pages
            total = skipped + len(page_ids) + sum(1 for _ in stream)
        return SearchPage(entries, total, has_more, offset + count if has_more else None, calls)

    matched = examined = 0
    page: list[dict] = []
    for batch in _chunks(stream, BATCH_GET_MAX):
        examined += len(batch)
        if examined > MAX_EXAMINED:
            what = "to count the results" if len(page) > count else "for this page"
            raise SearchTooBroad(
                f"more than {MAX_EXAMINED} candidates must be checked {what}; add a more selective parameter"
            )
        found = reader.current(workspace_id, rtype, batch)
        hits = [found[rid] for rid in batch if rid in found and matches(p.residual, found[rid]["resource"])]
        if keep is not None and hits:
            hits = keep(hits)
        for entry in hits:
            matched += 1
            if matched > offset and len(page) <= count:
                page.append(entry)
        if len(page) > count and not exact_total:
            break
    has_more = len(page) > count
    total = matched if exact_total or not has_more else None
    return SearchPage(page[:count], total, has_more, offset + count if has_more else None, calls)


# --- GET /fhir/patients ------------------------------------------------------------------------


def _with_touch(reader: _Reader, ws: str, ids: list[str], current: dict[str, dict]) -> list[dict]:
    touches = {t["id"]: t for t in reader.batch_get([touch_key(ws, i) for i in ids])} if ids else {}
    rows = []
    for pid in ids:
        if pid in current:
            touch = touches.get(pid, {})
            rows.append(
                {
                    **current[pid],
                    "last_event_at": touch.get("last_event_at"),
                    "event_count": int(touch.get("event_count", 0)),
                }
            )
    return rows


def _count_patients(reader: _Reader, ws: str) -> int:
    total = 0
    for shard_cond in patient_plan(ws, PatientSearch(sort_field="created_at")).sort:
        start = None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": reader.name,
                "KeyConditionExpression": "PK = :pk",
                "ExpressionAttributeValues": {":pk": shard_cond.pk},
                "Select": "COUNT",
                "ConsistentRead": True,
            }
            if start:
                kwargs["ExclusiveStartKey"] = start
            reader._count("Query")
            resp = reader.client.query(**kwargs)
            total += resp["Count"]
            start = resp.get("LastEvaluatedKey")
            if not start:
                break
    return total


def search_patients(
    table: Any,
    workspace_id: str,
    search: PatientSearch,
    *,
    total_patients: int | None = None,
    load_data: Callable[[dict], dict] | None = None,
    source: str | None = None,
    patient_count: Callable[[], int] | None = None,
) -> PatientPage:
    """One page of ``GET /fhir/patients`` (and of the patients view).

    ``total_patients``: the number of patients an unfiltered list covers, from the counters (the
    workspace's Patients, or ``source``'s); without it the sort family is counted with
    ``Select=COUNT``, which reads the whole family: pass the counter. ``load_data`` as for
    :func:`search_resources`. ``source``: only Patients whose current version came from that data
    source (checked on the index items).

    Filtered lists (``q``/``mrn``/``phone``) read their whole match set from the index in full 1 MB
    pages, every filter's partitions concurrently (the calls grow with the bytes matched, ~5,000
    matches per call per shard, not with the workspace; more than ``MAX_PATIENT_MATCHES`` matches →
    :class:`SearchTooBroad`), so ``total`` is exact; the page is then ordered by the sort value the
    index items carry (``created_at``, ``name``) or, for ``last_event_at``, by
    :func:`_last_event_order`, which may ask ``patient_count()`` (the counters: patients the sort
    family holds) to choose between its two ways.
    """
    calls: Counter = Counter()
    reader = _Reader(table, calls, load_data)
    ws, limit, offset = workspace_id, search.limit, search.offset
    pp: PatientPlan = patient_plan(ws, search, source)
    if not pp.groups:
        ids: list[str] = []
        seen: set[str] = set()
        skipped = 0
        for item in reader.merged(pp.sort, pp.forward):
            pid = item["id"]
            if pid in seen:
                continue
            seen.add(pid)
            if skipped < offset:
                skipped += 1
                continue
            ids.append(pid)
            if len(ids) > limit:
                break
        has_more = len(ids) > limit
        ids = ids[:limit]
        rows = _with_touch(reader, ws, ids, reader.current(ws, "Patient", ids))
        total = total_patients if total_patients is not None else _count_patients(reader, ws)
        return PatientPage(rows, total, has_more, offset + limit if has_more else None, calls)

    groups_of: dict[str, set[int]] = {}  # a partition may serve two filters (q=<digits>&phone=<digits>)
    for i, group in enumerate(pp.groups):
        for cond in group:
            groups_of.setdefault(cond.pk, set()).add(i)
    found: list[set[str]] = [set() for _ in pp.groups]
    attrs: dict[str, dict] = {}
    conds = list(dict.fromkeys(c for group in pp.groups for c in group))
    for item in reader.merged(conds, True, whole=True):
        if not patient_item_accepts(pp, item):
            continue
        attrs.setdefault(item["id"], item)
        for i in groups_of[item["PK"]]:
            found[i].add(item["id"])
            if len(found[i]) > MAX_PATIENT_MATCHES:
                raise SearchTooBroad(f"more than {MAX_PATIENT_MATCHES} patients match; refine the search")
    matched = set.intersection(*found)
    if pp.sort_field == "last_event_at":
        ordered = _last_event_order(reader, pp, ws, matched, offset + limit, patient_count)
    else:
        value = {i: attrs[i].get("ca" if pp.sort_field == "created_at" else "nm", "") for i in matched}
        # the same order as the sort family's SKs ("{value}#{id}"), so filtered and unfiltered lists agree
        ordered = sorted(matched, key=lambda i: f"{value[i]}#{i}", reverse=not pp.forward)
    page_ids = ordered[offset : offset + limit]
    rows = _with_touch(reader, ws, page_ids, reader.current(ws, "Patient", page_ids))
    has_more = len(matched) > offset + limit
    return PatientPage(rows, len(matched), has_more, offset + limit if has_more else None, calls)


TOUCH_READ_MAX = 800  # matches whose touch items are read (≤ 8 BatchGetItems) rather than walking
WALK_IDS_PER_CALL = 7000  # sort-family ids in one full 1 MB page (~130-byte items)


def _walk_calls(n: int, matches: int, patients: int) -> int:
    """Estimated Queries for walking the sort family's shards until ``n`` of ``matches`` (spread
    over ``patients``) have passed: each shard walks ~n·patients/matches/shards ids."""
    per_shard = n * patients / max(matches, 1) / ORDERED_SHARDS
    return ORDERED_SHARDS * max(1, -(-int(per_shard) // WALK_IDS_PER_CALL))


def _last_event_order(
    reader: _Reader, pp: PatientPlan, ws: str, matched: set[str], n: int, patient_count: Callable[[], int] | None = None
) -> list[str]:
    """At least the first ``n`` of ``matched`` in ``last_event_at`` order (ties by id, as the sort
    family's ``{time}#{id}`` SKs), the cheaper of two ways. Up to ``TOUCH_READ_MAX`` matches: read
    their touch items (⌈m/100⌉ concurrent BatchGetItems). More: walk the sort family in full 1 MB
    pages (ids only, ~7,000 per call per shard) until ``n`` matches have passed — one call per shard
    up to ~50,000 patients; when ``patient_count`` says the walk would cost more calls than reading
    the touch items (a huge workspace, a deep offset), read the touch items instead. So the calls
    are at most min(⌈m/100⌉, the walk's), whatever the workspace."""
    touch_calls = -(-len(matched) // BATCH_GET_MAX)
    walk = len(matched) > TOUCH_READ_MAX
    if walk and patient_count is not None:
        walk = _walk_calls(n, len(matched), patient_count()) < touch_calls
    if walk:
        out: list[str] = []
        seen: set[str] = set()
        try:
            for item in reader.merged(pp.sort, pp.forward, whole=True):
                pid = item["id"]
                if pid in matched and pid not in seen:
                    seen.add(pid)
                    out.append(pid)
                    if len(out) >= n:
                        return out
        except SearchTooBroad:
            pass  # a deep page in a huge workspace: reading the touch items is cheaper after all
        else:
            if len(seen) == len(matched):
                return out
        # or some matches have no touch item (not expected: a Patient write touches its own compartment)
    touches = {t["id"]: t.get("last_event_at") or "" for t in reader.batch_get([touch_key(ws, i) for i in matched])}
    return sorted(matched, key=lambda i: f"{touches.get(i, '')}#{i}", reverse=not pp.forward)


# --- GET /fhir/views/patients ------------------------------------------------------------------


def patient_partitions(
    table: Any, workspace_id: str, patient_ids: list[str], calls: Counter | None = None
) -> dict[str, list[dict]]:
    """Each patient's partition (touch item + active facts): one Query per patient, concurrently."""
    reader = _Reader(table, calls if calls is not None else Counter())
    conds = [KeyCondition(patient_partition_pk(workspace_id, pid)) for pid in patient_ids]
    if not conds:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(conds))) as pool:
        results = pool.map(lambda c: list(reader.stream(c, True)), conds)
        return dict(zip(patient_ids, results, strict=True))
