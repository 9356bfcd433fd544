"""FHIR ``_sort``: which fields each type sorts on, their sort values, and the index items that
keep every resource of a type in each field's order (pure; :mod:`fhir_platform.search.sorted_search`
runs the walks).

Every type sorts on ``_lastUpdated`` (the existing per-type list, no new item) and ``_id`` (the
table's ``TypeIndex`` over the live ``CURRENT`` items, :func:`fhir_platform.storage.keys.id_order_key`:
no item either); some
types on the date/string search parameters users sort by (:data:`SORT_PARAMS`; Patient ``name`` is
the patient list's ``sort.name`` family, "family given" of the official name). Each sort field but
those two reused families is one **ordered** family per type, 8 shards as every ordered family::

    PK = WS#{ws}#IX#{type}#sort.{field}#{shard}       SK = {value}#{id}     (the resource has a value)
    PK = WS#{ws}#IX#{type}#sort.{field}.none#{shard}  SK = {id}             (it has none)

but for date fields, whose value items are the date parameter's own index items (``{date}#{shard}``,
``SK = {low}#{id}``): the item of the first value the parameter extracts carries ``so: 1`` and is a
core item, and the walk keeps only marked items (:func:`marked_only`; index version 7: one item
fewer per resource of every date-sorted type). The ``.none`` family is as above.

so a resource has exactly one item per sort field (a core item: never dropped by the cap) and a
walk of the field's 8 shards merged by SK lists the whole type in that order, followed by the
resources without a value (in both directions: FHIR leaves their place to the server; they come
last). The value of a field is the one :func:`sort_value` computes, from the same resource, so a
match set sorted in memory and a walk of the family agree item for item:

- date parameters: the low bound (UTC instant, milliseconds) of the **first** value the parameter
  extracts (an Observation's ``effective[x]`` before its ``issued``; a Period's start);
- Patient/Practitioner ``family``/``given``: of the official (else usual, else first) name,
  case/accent-folded (``given``: the given names joined by a space); other string parameters: the
  first value, folded; at most 64 characters;
- ties: by id, in the direction of the first key, or as a second key ``_id`` / ``-_id`` says.

Order is the SK's (``{value}#{id}``) UTF-8 byte order = code-point order, i.e. by ``value + "#"``
then id (``smith jones`` sorts before ``smith``, as in the patient list).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir_platform.search.normalize import date_range, normalize_string
from fhir_platform.search.parameters import ORDERED_SHARDS, Extraction, Kind, extract, params_for

__all__ = [
    "SORT_PARAMS",
    "SortSpec",
    "family_of",
    "marked_only",
    "none_family_of",
    "sorted_date_families",
    "parse_sort",
    "sort_fields",
    "sort_items",
    "sort_value",
]

ID, LAST_UPDATED = "_id", "_lastUpdated"
MAX_SORT_KEY = 64
# Per type, the search parameters it sorts on besides _lastUpdated and _id (one index item each
# per resource; keep this list short: every entry is written with every resource of the type).
SORT_PARAMS: dict[str, tuple[str, ...]] = {
    "Patient": ("family", "given", "birthdate", "name"),
    "Practitioner": ("family", "given"),
    "Organization": ("name",),
    "Location": ("name",),
    "Condition": ("onset-date", "recorded-date"),
}
DATE_SORTED = "date"  # any other type with a ``date`` parameter sorts on it
REUSED = {("Patient", "name"): "sort.name"}  # the patient list's family: "family given" of the official name


@cache  # per type, like params_for (every write asks)
def sort_fields(resource_type: str) -> tuple[str, ...]:
    """The ``_sort`` fields ``resource_type`` serves, ``_lastUpdated`` and ``_id`` first."""
    params = params_for(resource_type)
    specific = SORT_PARAMS.get(resource_type)
    if specific is None:
        specific = (DATE_SORTED,) if DATE_SORTED in params else ()
    return (LAST_UPDATED, ID, *(f for f in specific if f in params))


def _date_param(resource_type: str, field: str) -> Any:
    """The date search parameter ``field`` is, if it is one (not ``_lastUpdated``/``_id``)."""
    if field in (LAST_UPDATED, ID) or (resource_type, field) in REUSED:
        return None
    param = params_for(resource_type).get(field)
    return param if param is not None and param.kind is Kind.DATE else None


def family_of(resource_type: str, field: str) -> str:
    """The ordered family a walk in ``field`` order reads: ``_lastUpdated``, the reused patient
    list family, a date parameter's own index family (only its items marked ``so`` — see
    :func:`marked_only`), else ``sort.{field}``. (``_id`` walks the ``TypeIndex``.)"""
    if field == LAST_UPDATED:
        return LAST_UPDATED
    date = _date_param(resource_type, field)
    if date is not None:
        return date.family
    return REUSED.get((resource_type, field), f"sort.{field}")


def marked_only(resource_type: str, field: str) -> bool:
    """A date field: its walk keeps only the family's items marked ``so`` — each resource's item of
    the **first** value the family extracts (its sort value), written by
    :func:`fhir_platform.search.indexing.index_items` as a core item; a resource's other date values
    are items of the same family without the mark."""
    return _date_param(resource_type, field) is not None


def none_family_of(resource_type: str, field: str) -> str | None:
    """The family of resources without a value for ``field`` (``None``: every resource has one)."""
    if field in (LAST_UPDATED, ID) or (resource_type, field) in REUSED:
        return None
    return f"sort.{field}.none"


@cache
def sorted_date_families(resource_type: str) -> frozenset[str]:
    """The date index families of ``resource_type`` whose first-value item is a sort item."""
    return frozenset(p.family for f in sort_fields(resource_type) if (p := _date_param(resource_type, f)) is not None)


def _official_name(data: dict) -> dict | None:
    names = [n for n in data.get("name") or [] if isinstance(n, dict)]
    if not names:
        return None
    return next((n for n in names if n.get("use") == "official"), None) or next((n for n in names if n.get("use") == "usual"), names[0])


def _folded(text: str) -> str | None:
    folded = normalize_string(text)[:MAX_SORT_KEY] if isinstance(text, str) else ""
    return folded or None


def sort_value(resource_type: str, field: str, resource: dict, extraction: Extraction | None = None) -> str | None:
    """The value ``resource`` sorts by on ``field`` (``None``: it has none); see the module docstring.
    ``extraction``: the resource's :class:`~fhir_platform.search.parameters.Extraction`, if any."""
    if field == ID:
        return resource.get("id")
    if field == LAST_UPDATED:
        lu = (resource.get("meta") or {}).get("lastUpdated")
        return date_range(lu)[0] if isinstance(lu, str) else None
    if (resource_type, field) == ("Patient", "name"):
        from fhir_platform.search.indexing import _sort_name  # the patient list's value, to share its family

        return _sort_name(resource)
    if resource_type in ("Patient", "Practitioner") and field in ("family", "given"):
        name = _official_name(resource)
        if name is None:
            return None
        if field == "family":
            return _folded(name.get("family"))
        given = [g for g in name.get("given") or [] if isinstance(g, str)]
        return _folded(" ".join(given))
    param = params_for(resource_type)[field]
    values = extraction.extract(param) if extraction is not None else extract(param, resource)
    if not values:
        return None
    if param.kind is Kind.DATE:
        return values[0][0]
    if param.kind is Kind.STRING:
        return _folded(values[0])
    raise AssertionError(f"{resource_type}.{field} is not a sortable kind")  # pragma: no cover


def sort_items(workspace_id: str, resource_type: str, resource_id: str, data: dict, *, extraction: Extraction | None = None) -> list[dict]:
    """One item per sort field the type has (besides ``_lastUpdated``, ``_id`` and the reused
    patient ``sort.name`` family): each :data:`SORT_PARAMS` field, in its value family or its
    ``.none`` family."""
    from fhir_platform.search.indexing import ordered_pk, shard_of  # indexing imports this module

    shard = shard_of(resource_id, ORDERED_SHARDS)
    items = []
    for field in sort_fields(resource_type):
        if field in (LAST_UPDATED, ID) or (resource_type, field) in REUSED:
            continue
        value = sort_value(resource_type, field, data, extraction)
        if value is not None and _date_param(resource_type, field) is not None:
            continue  # the date family's own item of this value, marked ``so``, is the sort item
        if value is None:
            pk, sk = ordered_pk(workspace_id, resource_type, f"sort.{field}.none", shard), resource_id
        else:
            pk, sk = ordered_pk(workspace_id, resource_type, f"sort.{field}", shard), f"{value}#{resource_id}"
        items.append({"PK": pk, "SK": sk, "id": resource_id})
    return items


@dataclass(frozen=True)
class SortSpec:
    """``_sort``: one field (``descending`` with ``-``) and the direction of the id tie-break."""

    field: str
    descending: bool
    id_descending: bool

    @property
    def text(self) -> str:
        first = ("-" if self.descending else "") + self.field
        return first if self.field == ID or self.id_descending == self.descending else f"{first},{'-' if self.id_descending else ''}_id"


class SortError(ValueError):
    pass


def supported_text(resource_type: str) -> str:
    return ", ".join(sort_fields(resource_type))


def parse_sort(resource_type: str, raw_values: list[str]) -> SortSpec | None:
    """The ``_sort`` values of a query (``None`` when there is none): one field of
    :func:`sort_fields`, ``-`` for descending, optionally followed by ``_id`` or ``-_id`` (the
    tie-break; by default ids follow the first key's direction). :class:`SortError` otherwise."""
    keys = [k.strip() for raw in raw_values for k in raw.split(",")]
    if not raw_values:
        return None
    fields = sort_fields(resource_type)
    help_ = f"supported for {resource_type}: {', '.join(fields)} (prefix - for descending), optionally followed by _id or -_id as a tie-break"
    if not keys or any(not k for k in keys):
        raise SortError(f"empty sort key; {help_}")
    parsed = [(k.startswith("-"), k.lstrip("+-").strip()) for k in keys]
    for _, name in parsed:
        if name not in fields:
            raise SortError(f"cannot sort on {name[:40]!r}; {help_}")
    if len(parsed) > 2 or (len(parsed) == 2 and (parsed[1][1] != ID or parsed[0][1] == ID)):
        raise SortError(f"{','.join(keys)[:80]!r}: one sort field then at most an _id tie-break; {help_}")
    desc, name = parsed[0]
    tie = parsed[1][0] if len(parsed) == 2 else desc
    return SortSpec(name, desc, desc if name == ID else tie)
