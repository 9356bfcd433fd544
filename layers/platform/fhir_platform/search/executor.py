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
requested sort family; with ``q``/``mrn``/``phone`` it collects the (bounded) matches from their
exact/prefix partitions and orders them by the sort field.

Cost per request is bounded, not a function of workspace size: ``offset + count`` ids are read from
the index (≈ 7,000 ids per 1 MB Query page) and at most ``MAX_EXAMINED`` resources are fetched to
evaluate residual criteria; a search that needs more raises :class:`SearchTooBroad` (a 400 asking
for a more selective parameter). ``calls`` on each result counts the DynamoDB calls made.
"""

from __future__ import annotations

import heapq
import json
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
from fhir_platform.search.query import PatientSearch, SearchQuery, matches
from fhir_platform.storage.keys import CURRENT_SK, resource_pk

__all__ = [
    "Keep",
    "PatientPage",
    "SearchPage",
    "SearchTooBroad",
    "patient_partitions",
    "patient_view_page",
    "search_patients",
    "search_resources",
]

MAX_EXAMINED = 1000  # resources fetched to apply residual criteria, per request
MAX_INDEX_READ = 50_000  # index items read per request
MAX_PATIENT_MATCHES = 10_000  # filtered patient lists are ordered in memory up to this many matches
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

    def _query_page(self, cond: KeyCondition, forward: bool, limit: int, start: dict | None) -> dict:
        expr = "PK = :pk"
        values: dict[str, str] = {":pk": cond.pk}
        if cond.op == "begins_with":
            expr += " AND begins_with(SK, :a)"
        elif cond.op == "between":
            expr += " AND SK BETWEEN :a AND :b"
        elif cond.op in ("<", ">="):
            expr += f" AND SK {cond.op} :a"
        elif cond.op != "all":
            raise ValueError(cond.op)
        for name, value in zip((":a", ":b"), cond.values, strict=False):
            values[name] = value
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": expr,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": forward,
            "ConsistentRead": True,
            "Limit": limit,
        }
        if start:
            kwargs["ExclusiveStartKey"] = start
        self.calls["Query"] += 1
        return self.client.query(**kwargs)

    def stream(self, cond: KeyCondition, forward: bool, first: dict | None = None) -> Iterator[dict]:
        """Every item of one key condition, in SK order, page after page (LastEvaluatedKey)."""
        page = first if first is not None else self._query_page(cond, forward, FIRST_PAGE_LIMIT, None)
        while True:
            for raw in page.get("Items", []):
                self.index_read += 1
                if self.index_read > MAX_INDEX_READ:
                    raise SearchTooBroad("the search reads too many index entries; add a more selective parameter")
                yield raw
            start = page.get("LastEvaluatedKey")
            if not start:
                return
            page = self._query_page(cond, forward, NEXT_PAGE_LIMIT, start)

    def merged(self, conds: Iterable[KeyCondition], forward: bool) -> Iterator[dict]:
        """All conditions' items merged by SK; first pages fetched concurrently."""
        conds = list(conds)
        if not conds:
            return iter(())
        with ThreadPoolExecutor(max_workers=min(16, len(conds))) as pool:
            firsts = list(pool.map(lambda c: self._query_page(c, forward, FIRST_PAGE_LIMIT, None), conds))
        streams = [self.stream(c, forward, f) for c, f in zip(conds, firsts, strict=True)]
        return heapq.merge(*streams, key=lambda it: it["SK"], reverse=not forward)

    def batch_get(self, keys: list[dict]) -> list[dict]:
        """BatchGetItem (ConsistentRead) in chunks of 100, retrying unprocessed keys."""
        out: list[dict] = []
        for i in range(0, len(keys), BATCH_GET_MAX):
            pending = {
                self.name: {
                    "Keys": [{"PK": k["PK"], "SK": k["SK"]} for k in keys[i : i + BATCH_GET_MAX]],
                    "ConsistentRead": True,
                }
            }
            while pending:
                self.calls["BatchGetItem"] += 1
                resp = self.client.batch_get_item(RequestItems=pending)
                out.extend(resp.get("Responses", {}).get(self.name, []))
                pending = resp.get("UnprocessedKeys") or {}
        return out

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
            item = {k: v for k, v in item.items() if k not in ("data", "data_s3_key")}
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
    """
    calls: Counter = Counter()
    reader = _Reader(table, calls, load_data)
    p = plan(workspace_id, query)
    rtype, offset, count = query.resource_type, query.offset, query.count
    if p.ids is not None:
        found = reader.current(workspace_id, rtype, list(dict.fromkeys(p.ids)))
        hits = [found[i] for i in dict.fromkeys(p.ids) if i in found and matches(p.residual, found[i]["resource"])]
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
            reader.calls["Query"] += 1
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
    keep: Keep | None = None,
) -> PatientPage:
    """One page of ``GET /fhir/patients``.

    ``total_patients``: the workspace's Patient count from the counters (used for unfiltered lists;
    without it the ``sort.created_at`` shards are counted with ``Select=COUNT``, which reads the
    whole family: pass the counter). ``load_data`` as for :func:`search_resources`. ``keep``: an
    extra filter over fetched Patient entries (as for :func:`search_resources`); the list is then
    filtered in full before paging, so at most ``MAX_EXAMINED`` patients may be candidates.
    """
    calls: Counter = Counter()
    reader = _Reader(table, calls, load_data)
    ws, limit, offset = workspace_id, search.limit, search.offset
    pp: PatientPlan = patient_plan(ws, search)
    if keep is not None and not pp.groups:
        ordered: list[str] = []
        seen_ids: set[str] = set()
        for item in reader.merged(pp.sort, pp.forward):
            if item["id"] in seen_ids:
                continue
            seen_ids.add(item["id"])
            ordered.append(item["id"])
            if len(ordered) > MAX_EXAMINED:
                raise SearchTooBroad(f"more than {MAX_EXAMINED} patients must be checked; refine the search")
        return _kept_page(reader, ws, ordered, keep, limit, offset)
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

    attrs: dict[str, dict] = {}
    matched: set[str] | None = None
    for group in pp.groups:
        group_ids: set[str] = set()
        for item in reader.merged(group, True):
            if not patient_item_accepts(pp, item):
                continue
            group_ids.add(item["id"])
            attrs.setdefault(item["id"], item)
            if len(group_ids) > MAX_PATIENT_MATCHES:
                raise SearchTooBroad(f"more than {MAX_PATIENT_MATCHES} patients match; refine the search")
        matched = group_ids if matched is None else matched & group_ids
    ordered = list(matched or ())
    if keep is not None and len(ordered) > MAX_EXAMINED:
        raise SearchTooBroad(f"more than {MAX_EXAMINED} patients must be checked; refine the search")
    if pp.sort_field == "last_event_at" and keep is None and len(ordered) > 2 * BATCH_GET_MAX:
        # many matches: walk the sort family (ids only) until the page's matches are found, rather
        # than reading every match's touch item
        walked = _first_in_sort_order(reader, pp, set(ordered), offset + limit)
        if walked is not None:
            page_ids = walked[offset : offset + limit]
            rows = _with_touch(reader, ws, page_ids, reader.current(ws, "Patient", page_ids))
            has_more = len(ordered) > offset + limit
            return PatientPage(rows, len(ordered), has_more, offset + limit if has_more else None, calls)
    if pp.sort_field == "last_event_at":
        touches = {t["id"]: t.get("last_event_at") or "" for t in reader.batch_get([touch_key(ws, i) for i in ordered])}
        value = {i: touches.get(i, "") for i in ordered}
    else:
        value = {i: attrs[i].get("ca" if pp.sort_field == "created_at" else "nm", "") for i in ordered}
    # the same order as the sort family's SKs ("{value}#{id}"), so filtered and unfiltered lists agree
    ordered.sort(key=lambda i: f"{value[i]}#{i}", reverse=not pp.forward)
    if keep is not None:
        return _kept_page(reader, ws, ordered, keep, limit, offset)
    page_ids = ordered[offset : offset + limit]
    rows = _with_touch(reader, ws, page_ids, reader.current(ws, "Patient", page_ids))
    has_more = len(ordered) > offset + limit
    return PatientPage(rows, len(ordered), has_more, offset + limit if has_more else None, calls)


def _first_in_sort_order(reader: _Reader, pp: PatientPlan, wanted: set[str], n: int) -> list[str] | None:
    """The first ``n`` of ``wanted`` in the sort family's order; ``None`` when the family lacks some
    of them (a patient without a touch item), so the caller orders them itself."""
    out: list[str] = []
    seen: set[str] = set()
    for item in reader.merged(pp.sort, pp.forward):
        pid = item["id"]
        if pid in wanted and pid not in seen:
            seen.add(pid)
            out.append(pid)
            if len(out) >= n:
                return out
    return out if len(seen) == len(wanted) else None


def _kept_page(reader: _Reader, ws: str, ordered: list[str], keep: Keep, limit: int, offset: int) -> PatientPage:
    """Filter the whole ordered candidate list with ``keep`` (fetching it in batches), then page."""
    kept: list[str] = []
    current: dict[str, dict] = {}
    for i in range(0, len(ordered), BATCH_GET_MAX):
        batch = ordered[i : i + BATCH_GET_MAX]
        found = reader.current(ws, "Patient", batch)
        hits = keep([found[pid] for pid in batch if pid in found]) if found else []
        for entry in hits:
            pid = entry["resource"]["id"]
            kept.append(pid)
            if len(kept) <= offset + limit:
                current[pid] = entry
    page_ids = kept[offset : offset + limit]
    rows = _with_touch(reader, ws, page_ids, current)
    has_more = len(kept) > offset + limit
    return PatientPage(rows, len(kept), has_more, offset + limit if has_more else None, reader.calls)


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


def patient_view_page(
    table: Any,
    workspace_id: str,
    search: PatientSearch,
    *,
    total_patients: int | None = None,
    load_data: Callable[[dict], dict] | None = None,
    keep: Keep | None = None,
) -> tuple[list[dict], PatientPage]:
    """Rows of ``GET /fhir/views/patients`` (``FhirPatientView``) and the page they came from.

    Cost: the patient search plus one Query per patient on the page (≤ ``limit``), in parallel.
    """
    from fhir_platform.search.views import patient_row

    page = search_patients(
        table, workspace_id, search, total_patients=total_patients, load_data=load_data, keep=keep
    )
    ids = [row["resource"]["id"] for row in page.rows]
    partitions = patient_partitions(table, workspace_id, ids, page.calls)
    return [patient_row(row, partitions.get(pid, [])) for row, pid in zip(page.rows, ids, strict=True)], page
