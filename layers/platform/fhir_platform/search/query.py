"""Parse a search query string into typed criteria, and evaluate criteria against a resource.

``parse_search(resource_type, params)`` takes the query-string dict (one string per name, as API
Gateway delivers single-valued parameters) and returns a :class:`SearchQuery`: ``count``/``offset``
and one :class:`Criterion` per parameter. Parameters AND together; commas inside one value are OR
(``status=active,completed``; ``\\,`` is a literal comma). Supported syntax:

==========  ==========================================================================================
kind        values and modifiers
==========  ==========================================================================================
string      prefix match on the case/accent-folded value of any element or word in it;
            ``:exact`` = whole element, case- and accent-sensitive
text (q)    every word of the query is a prefix of some word of the resource's names/displays
token       ``system|code``, ``|code`` (no system), ``code`` (any system), ``system|`` (any code in
            the system); codes compare case-insensitively; ``:not`` negates
date        prefix ``eq ne gt lt ge le sa eb`` (default ``eq``) + a FHIR date of any precision; the
            value and the element are both ranges and compared as FHIR R4 specifies
reference   ``Type/id``, bare ``id`` or an absolute URL; ``:Type`` modifier (``subject:Patient=1``)
phone       any format (E.164 too); compared as the number libphonenumber reads (``normalize_phone``)
==========  ==========================================================================================

Anything else — an unknown parameter, modifier or date prefix, a malformed value, ``_count`` outside
1–100, a negative ``_offset`` — raises :class:`QueryError` naming the parameter.

``matches(criteria, resource)`` evaluates criteria with the same extractors and normalisation the
index is built with, so an index candidate can be confirmed against the current resource.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fhir_platform.paging import MAX_OFFSET
from fhir_platform.search.normalize import (
    date_range,
    normalize_phone,
    normalize_string,
    normalize_token,
    prefix_keys,
    words,
)
from fhir_platform.search.parameters import Kind, SearchParam, extract, params_for, parse_reference

__all__ = [
    "Criterion",
    "DateValue",
    "QueryError",
    "RefValue",
    "SearchQuery",
    "StrValue",
    "TokenValue",
    "criterion_matches",
    "date_matches",
    "matches",
    "PatientSearch",
    "parse_int",
    "parse_patient_search",
    "parse_sort",
    "parse_search",
    "parse_search_pairs",
]

DEFAULT_COUNT = 20
MAX_COUNT = 100
MAX_VALUE_LENGTH = 200
MAX_OR_VALUES = 10
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
# Non-parameters a client may send that never affect results.
IGNORED = frozenset({"_format", "_pretty"})


@dataclass
class QueryError(ValueError):
    """A search parameter the server cannot honour: ``param`` names it, ``msg`` says why."""

    param: str
    msg: str

    def __str__(self) -> str:
        return f"{self.param}: {self.msg}"


@dataclass(frozen=True)
class StrValue:
    raw: str
    norm: str


@dataclass(frozen=True)
class TokenValue:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code (``system|``); else normalised


@dataclass(frozen=True)
class DateValue:
    prefix: str
    low: str
    high: str


@dataclass(frozen=True)
class RefValue:
    type: str | None
    id: str


@dataclass(frozen=True)
class Criterion:
    param: SearchParam
    values: tuple  # OR-ed; StrValue | tuple[str, ...] (q words) | TokenValue | DateValue | RefValue | str
    modifier: str | None = None

    @property
    def name(self) -> str:
        return self.param.name + (f":{self.modifier}" if self.modifier else "")


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str
    criteria: tuple[Criterion, ...] = ()
    count: int = DEFAULT_COUNT
    offset: int = 0


def parse_int(name: str, raw: str | int | None, *, default: int, low: int, high: int | None = None) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise QueryError(name, f"must be an integer, got {str(raw)[:40]!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise QueryError(name, f"must be {bound}, got {value}")
    return value


def _split_or(raw: str) -> list[str]:
    return [p.replace("\\,", ",") for p in re.split(r"(?<!\\),", raw)]


def _parse_value(param: SearchParam, modifier: str | None, raw: str, name: str):
    kind = param.kind
    if kind is Kind.STRING:
        norm = normalize_string(raw)
        if not norm:
            raise QueryError(name, "must contain text")
        return StrValue(raw, norm)
    if kind is Kind.TEXT:
        ws = tuple(words(raw))
        if not ws:
            raise QueryError(name, "must contain at least one letter or digit")
        return ws
    if kind is Kind.TOKEN:
        if "|" in raw:
            system, code = raw.split("|", 1)
            if not system and not code.strip():
                raise QueryError(name, "token must be 'system|code', '|code' or 'code'")
            return TokenValue(system.strip(), normalize_token(code) if code.strip() else None)
        return TokenValue(None, normalize_token(raw))
    if kind is Kind.DATE:
        prefix, value = "eq", raw.strip()
        if value[:2].isalpha():
            prefix, value = value[:2], value[2:]
            if prefix not in DATE_PREFIXES:
                raise QueryError(name, f"unknown date prefix {prefix!r} (supported: {', '.join(DATE_PREFIXES)})")
        try:
            low, high = date_range(value)
        except ValueError:
            raise QueryError(
                name, f"{value[:40]!r} is not a date (use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.fff]][Z|+hh:mm])"
            ) from None
        return DateValue(prefix, low, high)
    if kind is Kind.REFERENCE:
        parsed = parse_reference(raw)
        if parsed is None:
            raise QueryError(name, f"{raw[:40]!r} is not a reference (use Type/id or id)")
        rtype = parsed[0] or modifier
        if parsed[0] and modifier and parsed[0] != modifier:
            raise QueryError(name, f"reference type {parsed[0]!r} contradicts the :{modifier} modifier")
        if rtype and param.targets and rtype not in param.targets:
            raise QueryError(name, f"must reference {' or '.join(param.targets)}, not {rtype}")
        return RefValue(rtype or None, parsed[1])
    if kind is Kind.PHONE:
        digits = normalize_phone(raw)
        if len(digits) < 4:
            raise QueryError(name, f"{raw[:40]!r} is not a phone number")
        return digits
    if kind is Kind.ID:
        if not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", raw.strip()):
            raise QueryError(name, f"{raw[:70]!r} is not a FHIR id")
        return raw.strip()
    raise AssertionError(kind)  # pragma: no cover


_MODIFIERS = {
    Kind.STRING: {"exact"},
    Kind.TOKEN: {"not"},
}


def _check_modifier(param: SearchParam, modifier: str | None, name: str) -> str | None:
    if modifier is None:
        return None
    if param.kind is Kind.REFERENCE and re.fullmatch(r"[A-Z][A-Za-z]+", modifier):
        if param.targets and modifier not in param.targets:
            raise QueryError(name, f"must reference {' or '.join(param.targets)}, not {modifier}")
        return modifier
    allowed = _MODIFIERS.get(param.kind, set())
    if modifier not in allowed:
        supported = ", ".join(f":{m}" for m in sorted(allowed)) or "none"
        if param.kind is Kind.REFERENCE:
            supported = ":{ResourceType}"
        raise QueryError(
            name, f"modifier ':{modifier}' is not supported for {param.kind} parameters (supported: {supported})"
        )
    return modifier


def parse_search(resource_type: str, params: Mapping[str, str | None]) -> SearchQuery:
    """Parse the query string of ``GET .../fhir/resources/{resource_type}`` (see module docstring)."""
    registry = params_for(resource_type)
    count = parse_int("_count", params.get("_count"), default=DEFAULT_COUNT, low=1, high=MAX_COUNT)
    offset = parse_int("_offset", params.get("_offset"), default=0, low=0, high=MAX_OFFSET)
    criteria: list[Criterion] = []
    for name, raw in params.items():
        if name in ("_count", "_offset") or name in IGNORED or raw is None:
            continue
        base, _, modifier = name.partition(":")
        param = registry.get(base)
        if param is None:
            known = ", ".join(sorted(registry))
            raise QueryError(
                name, f"unknown search parameter for {resource_type} (supported: {known}, _count, _offset)"
            )
        mod = _check_modifier(param, modifier or None, name)
        if not isinstance(raw, str) or not raw.strip():
            raise QueryError(name, "must not be empty")
        if len(raw) > MAX_VALUE_LENGTH:
            raise QueryError(name, f"must be at most {MAX_VALUE_LENGTH} characters")
        parts = _split_or(raw)
        if len(parts) > MAX_OR_VALUES:
            raise QueryError(name, f"at most {MAX_OR_VALUES} comma-separated values")
        if any(not p.strip() for p in parts):
            raise QueryError(name, "empty value between commas")
        values = tuple(dict.fromkeys(_parse_value(param, mod, p, name) for p in parts))
        criteria.append(Criterion(param, values, None if param.kind is Kind.REFERENCE else mod))
    return SearchQuery(resource_type, tuple(criteria), count, offset)


def parse_search_pairs(resource_type: str, pairs: Iterable[tuple[str, str]]) -> SearchQuery:
    """:func:`parse_search` for a query string's ``(name, value)`` pairs in order, where a parameter
    may repeat: repetitions AND (``date=ge2020&date=lt2021``), as FHIR specifies; ``_count`` and
    ``_offset`` may appear once."""
    layers: list[dict[str, str]] = []
    for name, value in pairs:
        layer = next((lay for lay in layers if name not in lay), None)
        if layer is None:
            layers.append(layer := {})
        layer[name] = value
    for name in ("_count", "_offset"):
        if any(name in lay for lay in layers[1:]):
            raise QueryError(name, "must not be repeated")
    first = parse_search(resource_type, layers[0] if layers else {})
    criteria = list(first.criteria)
    for lay in layers[1:]:
        criteria += parse_search(resource_type, lay).criteria
    return SearchQuery(resource_type, tuple(criteria), first.count, first.offset)


# --- GET /fhir/patients ------------------------------------------------------------------------

PATIENT_SORT_FIELDS = ("last_event_at", "created_at", "name")
DEFAULT_PATIENT_SORT = "-last_event_at"
PATIENT_PARAMS = frozenset({"q", "mrn", "phone", "sort_by", "limit", "offset"})


@dataclass(frozen=True)
class PatientSearch:
    q: str | None = None
    mrn: str | None = None
    phone: str | None = None
    sort_field: str = "last_event_at"
    descending: bool = True
    limit: int = DEFAULT_COUNT
    offset: int = 0


def parse_sort(raw: str | None) -> tuple[str, bool]:
    """``"-last_event_at"`` → ``("last_event_at", True)``; ``"+name"``/``"name"`` → ascending.

    A leading space counts as ``+`` (an unencoded ``+`` in a query string decodes to a space).
    """
    value = (raw if raw is not None and raw.strip() else DEFAULT_PATIENT_SORT).strip()
    descending = value.startswith("-")
    name = value.lstrip("+-").strip()
    if name not in PATIENT_SORT_FIELDS:
        raise QueryError(
            "sort_by",
            f"unknown sort field {name[:40]!r} (use {', '.join(PATIENT_SORT_FIELDS)} with an optional +/- prefix)",
        )
    return name, descending


def parse_patient_search(params: Mapping[str, str | None]) -> PatientSearch:
    """Parse ``GET /v1/{ws}/fhir/patients``: ``q``, ``mrn``, ``phone``, ``sort_by``, ``limit``, ``offset``."""
    for name in params:
        if name not in PATIENT_PARAMS:
            raise QueryError(name, f"unknown parameter (supported: {', '.join(sorted(PATIENT_PARAMS))})")
    limit = parse_int("limit", params.get("limit"), default=DEFAULT_COUNT, low=1, high=MAX_COUNT)
    offset = parse_int("offset", params.get("offset"), default=0, low=0, high=MAX_OFFSET)
    sort_field, descending = parse_sort(params.get("sort_by"))
    values: dict[str, str | None] = {}
    for name in ("q", "mrn", "phone"):
        raw = params.get(name)
        if raw is not None and len(raw) > MAX_VALUE_LENGTH:
            raise QueryError(name, f"must be at most {MAX_VALUE_LENGTH} characters")
        values[name] = raw.strip() if raw and raw.strip() else None
    if values["q"] is not None and not words(values["q"]) and len(normalize_phone(values["q"])) < 7:
        raise QueryError("q", "must contain at least one letter or digit")
    if values["phone"] is not None and len(normalize_phone(values["phone"])) < 4:
        raise QueryError("phone", f"{values['phone'][:40]!r} is not a phone number")
    return PatientSearch(values["q"], values["mrn"], values["phone"], sort_field, descending, limit, offset)


# --- matching ----------------------------------------------------------------------------------


def date_matches(prefix: str, s_low: str, s_high: str, t_low: str, t_high: str) -> bool:
    """FHIR R4 date comparison of a target range ``[t_low, t_high)`` with a search range."""
    contained = t_low >= s_low and t_high <= s_high
    if prefix == "eq":
        return contained
    if prefix == "ne":
        return not contained
    if prefix == "gt":
        return t_high > s_high
    if prefix == "lt":
        return t_low < s_low
    if prefix == "ge":
        return t_high > s_high or contained
    if prefix == "le":
        return t_low < s_low or contained
    if prefix == "sa":
        return t_low >= s_high
    if prefix == "eb":
        return t_high <= s_low
    raise ValueError(prefix)


def token_matches(value: TokenValue, system: str, code: str) -> bool:
    if value.system is not None and value.system != system:
        return False
    return value.code is None or value.code == normalize_token(code)


def ref_matches(value: RefValue, rtype: str, rid: str) -> bool:
    return rid == value.id and (value.type is None or rtype in ("", value.type))


def text_matches(query_words: Iterable[str], resource_words: set[str]) -> bool:
    return all(any(w.startswith(q) for w in resource_words) for q in query_words)


def criterion_matches(criterion: Criterion, resource: dict) -> bool:
    param, values = criterion.param, criterion.values
    found = extract(param, resource)
    kind = param.kind
    if kind is Kind.STRING:
        if criterion.modifier == "exact":
            return any(s == v.raw for v in values for s in found)
        keys = [k for s in found for k in prefix_keys(normalize_string(s))]
        return any(k.startswith(v.norm) for v in values for k in keys)
    if kind is Kind.TEXT:
        resource_words = {w for s in found for w in words(s)}
        return any(text_matches(v, resource_words) for v in values)
    if kind is Kind.TOKEN:
        hit = any(token_matches(v, s, c) for v in values for s, c in found)
        return not hit if criterion.modifier == "not" else hit
    if kind is Kind.DATE:
        return any(date_matches(v.prefix, v.low, v.high, lo, hi) for v in values for lo, hi in found)
    if kind is Kind.REFERENCE:
        return any(ref_matches(v, t, i) for v in values for t, i in found)
    if kind in (Kind.PHONE, Kind.ID):
        return any(v in found for v in values)
    raise AssertionError(kind)  # pragma: no cover


def matches(criteria: Iterable[Criterion], resource: dict) -> bool:
    """True when ``resource`` satisfies every criterion (AND; each criterion's values are OR)."""
    return all(criterion_matches(c, resource) for c in criteria)
