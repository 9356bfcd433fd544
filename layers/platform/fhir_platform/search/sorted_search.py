"""Run a search with ``_sort`` (:mod:`fhir_platform.search.sorting`) against the table.

Three ways, each bounded per page whatever the workspace:

``_sort=_id`` walks the table's ``TypeIndex`` (the live ``CURRENT`` items' ``TPK``/``TSK``: no index
item of its own), a global secondary index: eventually consistent, so a resource written a moment
ago may be listed a moment later (typically within a second); the page's resources are then read
consistently. Every other field walks base-table index items, consistent with the write.

- **no criteria**: walk the field's sort family (8 shard Queries merged by SK, ``Limit`` 100 then
  1,000, ids only), then its ``.none`` family; skip ``_offset`` ids, fetch the page (1
  BatchGetItem). ``total`` is the type's write-time counter. Calls: 8 (+8 once the walk reaches the
  resources without a value) + ⌈(offset + count) / 1,000⌉ per shard + 1.
- **criteria, at most** ``MAX_EXAMINED`` (1,000) **candidates**: the plan's index Queries read the
  whole candidate set (full 1 MB pages), the candidates are fetched (⌈c / 100⌉ concurrent
  BatchGetItems), the residual criteria applied and the matches sorted in memory by
  :func:`~fhir_platform.search.sorting.sort_value` — the very values the sort family is keyed on,
  so both ways give the same order. ``total`` exact.
- **criteria decided by the index alone, more candidates** (≤ ``MAX_SORT_MATCHES``): the match set
  is read (ids only, full pages), then the sort family is walked in full 1 MB pages (ids only,
  ~7,000 per call per shard) keeping the matches until the page is complete. The walk reads at
  most ``MAX_INDEX_READ`` entries (the executor's budget); a rarer match set in a huge type, or a
  residual criterion over more than 1,000 candidates, is :class:`SearchTooBroad` (400: add a more
  selective parameter). ``total`` exact (the match set's size).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from fhir_platform.search.executor import MAX_EXAMINED, SearchPage, SearchTooBroad, _Reader
from fhir_platform.search.indexing import KeyCondition, ordered_pk, plan
from fhir_platform.search.parameters import ORDERED_SHARDS
from fhir_platform.search.query import SearchQuery, matches
from fhir_platform.search.sorting import ID, SortSpec, family_of, marked_only, none_family_of, sort_value
from fhir_platform.storage.keys import TYPE_HISTORY_SHARDS, TYPE_INDEX, TYPE_INDEX_SK, id_order_pk

__all__ = ["MAX_SORT_MATCHES", "order_entries", "search_sorted"]

MAX_SORT_MATCHES = 25_000  # a match set sorted by walking the sort family is read whole, up to this


def _conds(ws: str, rtype: str, family: str) -> list[KeyCondition]:
    return [KeyCondition(ordered_pk(ws, rtype, family, s)) for s in range(ORDERED_SHARDS)]


def _id_conds(ws: str, rtype: str) -> list[KeyCondition]:
    """The type's live resources in id order: their ``CURRENT`` items' ``TypeIndex`` entries."""
    return [KeyCondition(f"{id_order_pk(ws, rtype)}#{s}", index=TYPE_INDEX) for s in range(TYPE_HISTORY_SHARDS)]


def walk(reader: _Reader, ws: str, rtype: str, spec: SortSpec, matched: set[str] | None = None, *, whole: bool = False) -> Iterator[str]:
    """Ids of the type in ``spec`` order (only those in ``matched`` when given): the field's family
    merged by SK, ties (one value) re-ordered by the id tie-break, then the ``.none`` family in the
    tie-break's direction (resources without a value last)."""
    seen: set[str] = set()
    group_value: str | None = None
    group: list[str] = []
    by_id, marked = spec.field == ID, marked_only(rtype, spec.field)
    conds = _id_conds(ws, rtype) if by_id else _conds(ws, rtype, family_of(rtype, spec.field))
    for item in reader.merged(conds, not spec.descending, whole=whole):
        if marked and "so" not in item:  # a date family: another value of a resource, not its sort value
            continue
        if by_id:
            value = rid = item[TYPE_INDEX_SK]
        else:
            value, _, rid = item["SK"].rpartition("#")
        if rid in seen or (matched is not None and rid not in matched):
            continue
        seen.add(rid)
        if value != group_value:
            yield from sorted(group, reverse=spec.id_descending)
            group_value, group = value, []
        group.append(rid)
    yield from sorted(group, reverse=spec.id_descending)
    none = none_family_of(rtype, spec.field)
    if none is not None:
        for item in reader.merged(_conds(ws, rtype, none), not spec.id_descending, whole=whole):
            rid = item["SK"]
            if rid not in seen and (matched is None or rid in matched):
                seen.add(rid)
                yield rid


def order_entries(rtype: str, spec: SortSpec, entries: list[dict]) -> list[dict]:
    """Fetched entries (``resource`` parsed) in ``spec`` order, as :func:`walk` lists them."""
    present: list[tuple[str, str, dict]] = []
    missing: list[tuple[str, dict]] = []
    for e in entries:
        rid = e["resource"]["id"]
        value = sort_value(rtype, spec.field, e["resource"])
        if value is None:
            missing.append((rid, e))
        else:
            present.append((value + "#", rid, e))
    present.sort(key=lambda t: t[1], reverse=spec.id_descending)
    present.sort(key=lambda t: t[0], reverse=spec.descending)  # stable: ties keep the id order
    missing.sort(key=lambda t: t[0], reverse=spec.id_descending)
    return [t[2] for t in present] + [t[1] for t in missing]


def search_sorted(
    table: Any,
    workspace_id: str,
    query: SearchQuery,
    spec: SortSpec,
    *,
    known_total: int | None = None,
    load_data: Callable[[dict], dict] | None = None,
) -> SearchPage:
    """One page of a search in ``spec`` order (see the module docstring); ``known_total`` is the
    type's count (its write-time counter), the ``total`` of a search without criteria."""
    calls: Counter = Counter()
    reader = _Reader(table, calls, load_data)
    ws, rtype, offset, count = workspace_id, query.resource_type, query.offset, query.count
    if not query.criteria:
        ids = list(islice(walk(reader, ws, rtype, spec), offset + count + 1))
        page_ids = ids[offset : offset + count]
        found = reader.current(ws, rtype, page_ids)
        has_more = len(ids) > offset + count
        total = known_total if known_total is not None else (None if has_more else len(ids))
        return SearchPage([found[i] for i in page_ids if i in found], total, has_more, offset + count if has_more else None, calls)

    p = plan(ws, query)
    if p.ids is not None:
        candidates = list(dict.fromkeys(p.ids))
    else:
        limit = MAX_EXAMINED if p.residual else MAX_SORT_MATCHES
        seen: dict[str, None] = {}
        for item in reader.merged(p.queries, p.forward, whole=True):
            rid = item.get("id") or item["SK"].rsplit("#", 1)[-1]
            if rid in seen or not p.accepts(item):
                continue
            seen[rid] = None
            if len(seen) > limit:
                what = "candidates must be checked" if p.residual else "resources match"
                raise SearchTooBroad(f"to sort, every match is needed and more than {limit} {what}; add a more selective parameter")
        candidates = list(seen)
    if len(candidates) <= MAX_EXAMINED:
        found = reader.current(ws, rtype, candidates)
        hits = [found[i] for i in candidates if i in found and matches(p.residual, found[i]["resource"])]
        ordered = order_entries(rtype, spec, hits)
        more = len(ordered) > offset + count
        return SearchPage(ordered[offset : offset + count], len(ordered), more, offset + count if more else None, calls)
    # the index alone decides (no residual) and the match set is large: walk the sort family for the page
    matched = set(candidates)
    walker = _Reader(table, calls, load_data)  # its own index-read budget
    page_ids = list(islice(walk(walker, ws, rtype, spec, matched, whole=True), offset, offset + count))
    found = reader.current(ws, rtype, page_ids)
    more = len(matched) > offset + count
    return SearchPage([found[i] for i in page_ids if i in found], len(matched), more, offset + count if more else None, calls)
