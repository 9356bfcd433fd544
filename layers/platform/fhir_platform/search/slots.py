"""Filters of ``GET /fhir/views/slots`` (pure: parsing, the criteria the index serves, residual checks).

==============  ======================================================================================
filter          meaning and how it is served
==============  ======================================================================================
``date``        ``YYYY-MM-DD`` (UTC day): slots whose ``start`` is in ``[date, date + days)``; an
                ``eq`` range on Slot's ``date`` index (one ``BETWEEN`` Query per shard), ordered by start
``days``        1–90 (default 7); only with ``date`` (without ``date`` the list is not windowed)
``status``      ``free``, ``busy``, … (comma = OR), case-insensitive: residual check on the slot
``specialty``   every word prefixes a word of the slot's ``specialty`` (text, display, code) or, when
                the slot has none, of its Schedule's: residual check
``service_type`` every word prefixes a word of the slot's ``serviceType``/``appointmentType``: residual
``provider``    every word prefixes a word of the provider's name: a join through the index —
                Practitioners by name (``q``) → Schedules whose ``actor`` is one of them, plus Schedules
                whose actor *display* matches → Slots whose ``schedule`` is one of those
``facility_id`` the Location id of the slot's Schedule (``Schedule.actor`` = ``Location/{id}``): join
                Schedules by ``location`` → Slots by ``schedule``
==============  ======================================================================================

"Partial match" is word-prefix matching on case/accent-folded words (``psych`` finds *Psychiatry*,
``follow`` finds *Follow-up*), the platform's string semantics. At most ``MAX_SCHEDULES`` Schedules
(and ``MAX_PROVIDERS`` Practitioners) may match a provider/facility filter; the caller
(:mod:`fhir_platform.search.listing`) raises ``SearchTooBroad`` beyond that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date as date_type
from datetime import timedelta

from fhir_platform.search.normalize import date_range, normalize_token, words
from fhir_platform.search.parameters import params_for
from fhir_platform.search.query import Criterion, DateValue, QueryError, RefValue, parse_int

__all__ = [
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "MAX_PROVIDERS",
    "MAX_SCHEDULES",
    "SlotFilters",
    "actor_display_matches",
    "parse_slot_filters",
    "schedule_criterion",
    "slot_matches",
    "window_criterion",
]

DEFAULT_DAYS = 7
MAX_DAYS = 90
MAX_PROVIDERS = 10  # practitioners a provider name may match
MAX_SCHEDULES = 20  # schedules a provider/facility filter may match
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_PROVIDER_PREFIXES = ("Practitioner/", "PractitionerRole/")


@dataclass(frozen=True)
class SlotFilters:
    status: tuple[str, ...] = ()
    window: tuple[str, str] | None = None  # [low, high) UTC instants
    provider: tuple[str, ...] = ()  # words
    specialty: tuple[str, ...] = ()
    service_type: tuple[str, ...] = ()
    facility_id: str | None = None

    @property
    def needs_schedules(self) -> bool:
        return bool(self.provider) or self.facility_id is not None

    @property
    def residual(self) -> bool:
        return bool(self.status or self.specialty or self.service_type)


def _words(name: str, raw: str | None) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        return ()
    if len(raw) > 200:
        raise QueryError(name, "must be at most 200 characters")
    found = tuple(dict.fromkeys(words(raw)))
    if not found:
        raise QueryError(name, "must contain at least one letter or digit")
    return found


def parse_slot_filters(
    *,
    status: str | None = None,
    date: str | None = None,
    days: int | str | None = None,
    provider: str | None = None,
    specialty: str | None = None,
    service_type: str | None = None,
    facility_id: str | None = None,
) -> SlotFilters:
    """Validate the slot view's filters; :class:`QueryError` names the offending parameter."""
    n_days = parse_int("days", days, default=DEFAULT_DAYS, low=1, high=MAX_DAYS)
    window = None
    if date is not None and date.strip():
        value = date.strip()
        try:
            if not _DAY.match(value):
                raise ValueError(value)
            day = date_type.fromisoformat(value)
        except ValueError:
            raise QueryError("date", f"{value[:40]!r} is not a date (use YYYY-MM-DD)") from None
        try:
            end = day + timedelta(days=n_days)
        except OverflowError:
            raise QueryError("date", "the window runs past year 9999") from None
        window = (date_range(day.isoformat())[0], date_range(end.isoformat())[0])  # index key format
    statuses: tuple[str, ...] = ()
    if status is not None and status.strip():
        statuses = tuple(dict.fromkeys(normalize_token(s) for s in status.split(",") if s.strip()))
        if not statuses or any(not re.fullmatch(r"[a-z][a-z-]{0,40}", s) for s in statuses):
            raise QueryError("status", "must be slot status codes such as free, busy (comma-separated)")
    fid = facility_id.strip() if facility_id is not None and facility_id.strip() else None
    if fid is not None:
        fid = fid.split("/", 1)[1] if fid.startswith("Location/") else fid
        if not _FHIR_ID.match(fid):
            raise QueryError("facility_id", "must be a Location id")
    return SlotFilters(
        status=statuses,
        window=window,
        provider=_words("provider", provider),
        specialty=_words("specialty", specialty),
        service_type=_words("service_type", service_type),
        facility_id=fid,
    )


def window_criterion(filters: SlotFilters) -> Criterion | None:
    """``start`` within the window: an ``eq`` range on Slot's ``date`` index (served by ``BETWEEN``)."""
    if filters.window is None:
        return None
    low, high = filters.window
    return Criterion(params_for("Slot")["date"], (DateValue("eq", low, high),))


def schedule_criterion(schedule_ids: list[str]) -> Criterion:
    """Slots whose ``schedule`` is one of these Schedules (OR)."""
    return Criterion(params_for("Slot")["schedule"], tuple(RefValue("Schedule", i) for i in schedule_ids))


def _concept_words(concepts: object) -> set[str]:
    out: set[str] = set()
    for c in concepts if isinstance(concepts, list) else [concepts]:
        if not isinstance(c, dict):
            continue
        for text in [c.get("text")] + [x.get(k) for x in c.get("coding") or [] if isinstance(x, dict) for k in ("display", "code")]:
            if isinstance(text, str):
                out.update(words(text))
    return out


def _all_prefix(query: tuple[str, ...], found: set[str]) -> bool:
    return all(any(w.startswith(q) for w in found) for q in query)


def slot_matches(filters: SlotFilters, slot: dict, schedule: dict | None = None) -> bool:
    """The residual filters (status, specialty, service_type) on one Slot (and its Schedule)."""
    if filters.status and normalize_token(str(slot.get("status") or "")) not in filters.status:
        return False
    if filters.specialty:
        found = _concept_words(slot.get("specialty"))
        if not found and schedule is not None:
            found = _concept_words(schedule.get("specialty"))
        if not _all_prefix(filters.specialty, found):
            return False
    if filters.service_type:
        concepts = list(slot.get("serviceType") or []) + ([slot["appointmentType"]] if slot.get("appointmentType") else [])
        if not _all_prefix(filters.service_type, _concept_words(concepts)):
            return False
    return True


def actor_display_matches(provider: tuple[str, ...], schedule: dict) -> bool:
    """A Schedule whose practitioner actor's display name matches every provider word."""
    for actor in schedule.get("actor") or []:
        if not isinstance(actor, dict) or not isinstance(actor.get("display"), str):
            continue
        ref = str(actor.get("reference") or "")
        if ref and not ref.startswith(_PROVIDER_PREFIXES) and actor.get("type") not in ("Practitioner", "PractitionerRole"):
            continue
        if _all_prefix(provider, set(words(actor["display"]))):
            return True
    return False
