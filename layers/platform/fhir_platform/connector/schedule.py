"""When a data source syncs: schedules, per-resource-type cadence and business hours.

Pure rules for the sync scheduler (no boto3, no I/O); see ``docs/connector.md``.

* ``sync_schedule`` and each ``connection_config.cadence`` value use Amazon EventBridge schedule
  syntax: ``rate(value unit)`` or ``cron(Minutes Hours Day-of-month Month Day-of-week Year)``,
  evaluated in UTC. :func:`parse_schedule` accepts exactly what EventBridge documents and says
  which field is wrong and why otherwise.
* ``connection_config.business_hours`` (``{"timezone", "days", "start", "end"}``) limits syncs to
  a weekly window in the workspace's local time; :class:`BusinessHours` evaluates it on the wall
  clock of that IANA zone, so DST changes move the window in UTC, not on the clock.
* :func:`due_types` answers "which resource types of this source run now", :func:`next_due`
  "when is the next one due" (the value the scheduler keeps in its due-time index).

Cron arithmetic is croniter's. An EventBridge expression is validated field by field here (ranges,
``?``, ``L``, ``W``, ``#``, names, year) and translated to the 5-field croniter form it maps onto
one to one: ``?`` becomes ``*``; day-of-week 1-7 (SUN=1) becomes 0-6 (SUN=0); ``nL`` becomes
croniter's ``Ln``; ``L`` alone in day-of-week means Saturday (Quartz, which EventBridge follows).
Day-of-month and day-of-week are combined with AND (``day_or=False``), which is exact because one
of the two is always ``*``. The year field is applied here (croniter stops at 2099, EventBridge
at 2199): a match in a year that is not listed jumps to the next listed year.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property, lru_cache
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from ..fhir.resource_types import STORABLE_RESOURCE_TYPES

UTC = timezone.utc

MAX_EXPRESSION_LENGTH = 256  # CreateDataSourceRequest.sync_schedule maxLength
# A rate longer than a year is not a sync schedule; the bound also keeps datetime arithmetic
# far from overflow.
MAX_RATE_PERIOD = timedelta(days=366)


class ScheduleError(ValueError):
    """An invalid schedule expression or business-hours object; the message says where and why."""


def _aware_utc(t: datetime, what: str = "t") -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got naive {t.isoformat()}")
    return t.astimezone(UTC)


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateSchedule:
    """``rate(value unit)``: every ``period`` after the previous run."""

    expression: str
    period: timedelta

    def next_after(self, t: datetime) -> datetime:
        """The instant one period after ``t`` (a rate runs relative to the previous run)."""
        return _aware_utc(t) + self.period

    def interval_hint(self) -> timedelta:
        return self.period


@dataclass(frozen=True)
class CronSchedule:
    """``cron(...)`` in UTC; ``croniter_expr`` is the translated 5-field expression."""

    expression: str
    croniter_expr: str
    years: tuple[int, ...] | None  # None: every year

    def next_after(self, t: datetime) -> datetime | None:
        """The first firing strictly after ``t`` (UTC), or None when it never fires again.

        None is possible only with a year field whose last listed year is past.
        """
        return next(self._firings(_aware_utc(t)), None)

    def _firings(self, start: datetime) -> Iterator[datetime]:
        """Firings strictly after ``start``, in order (one croniter while the year allows)."""
        while True:
            iterator = croniter(self.croniter_expr, start, day_or=False)
            while True:
                try:
                    candidate = iterator.get_next(datetime).astimezone(UTC)
                except CroniterBadDateError:  # no match within croniter's search horizon
                    return
                if self.years is not None and candidate.year not in self.years:
                    break
                yield candidate
            later = [y for y in self.years if y > candidate.year]
            if not later:
                return
            # One second before 1 January of the next listed year, so a firing at 00:00 counts.
            start = datetime(later[0], 1, 1, tzinfo=UTC) - timedelta(seconds=1)

    def interval_hint(self) -> timedelta:
        return self._typical_gap

    @cached_property
    def _typical_gap(self) -> timedelta:
        """Median gap between consecutive firings over a sample of them.

        The median ignores the long gaps of nights and weekends in a working-hours expression:
        ``cron(0/5 8-17 ? * MON-FRI *)`` has a typical gap of 5 minutes. A schedule that fires
        once (year-bounded) has no period; its hint is ``MAX_RATE_PERIOD``.
        """
        start = _HINT_REFERENCE if self.next_after(_HINT_REFERENCE) else _EPOCH
        firings = list(islice(self._firings(start), _HINT_SAMPLE))
        gaps = [b - a for a, b in zip(firings, firings[1:])]
        if not gaps:
            return MAX_RATE_PERIOD
        return sorted(gaps)[(len(gaps) - 1) // 2]  # the lower median: an actual gap


Schedule = RateSchedule | CronSchedule

_HINT_REFERENCE = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday: samples start with a working week
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC) - timedelta(seconds=1)
_HINT_SAMPLE = 32

_RATE_RE = re.compile(r"rate\((?P<body>.*)\)", re.DOTALL)
_CRON_RE = re.compile(r"cron\((?P<body>.*)\)", re.DOTALL)
_RATE_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def parse_schedule(expr: str) -> Schedule:
    """Parse an EventBridge ``rate(...)`` or ``cron(...)`` expression.

    Raises :class:`ScheduleError` naming the part that is wrong and why.
    """
    if not isinstance(expr, str):
        raise ScheduleError(f"schedule must be a string, got {type(expr).__name__}")
    return _parse_schedule_text(expr.strip())


# Schedules are immutable, so parsed ones are shared: a scheduler run or a data-source list parses
# the same few expressions again, and a cron's interval hint is then worked out once.
@lru_cache(maxsize=1024)
def _parse_schedule_text(text: str) -> Schedule:
    if not text:
        raise ScheduleError("schedule is empty; expected rate(value unit) or cron(6 fields)")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ScheduleError(f"schedule is longer than {MAX_EXPRESSION_LENGTH} characters")
    if m := _RATE_RE.fullmatch(text):
        return _parse_rate(text, m.group("body"))
    if m := _CRON_RE.fullmatch(text):
        return _parse_cron(text, m.group("body"))
    raise ScheduleError(
        f"schedule {text!r} is neither rate(value unit) nor cron(Minutes Hours Day-of-month "
        "Month Day-of-week Year), e.g. rate(5 minutes) or cron(0 10 * * ? *)"
    )


def _parse_rate(text: str, body: str) -> RateSchedule:
    parts = body.split()
    if len(parts) != 2 or body != " ".join(parts):
        raise ScheduleError(
            f"{text}: expected rate(value unit) with one space, e.g. rate(5 minutes)"
        )
    value_text, unit = parts
    if not value_text.isdigit() or not value_text.isascii():
        raise ScheduleError(f"{text}: value {value_text!r} is not a whole number")
    value = int(value_text)
    if value == 0:
        raise ScheduleError(f"{text}: value must be a positive whole number, got 0")
    if value_text.startswith("0"):
        raise ScheduleError(f"{text}: value {value_text!r} has a leading zero")
    singular = unit[:-1] if unit.endswith("s") else unit
    if singular not in _RATE_UNITS:
        raise ScheduleError(
            f"{text}: unit {unit!r} is not one of minute(s), hour(s), day(s)"
        )
    expected = singular if value == 1 else singular + "s"
    if unit != expected:
        rule = "singular for a value of 1" if value == 1 else "plural for a value above 1"
        raise ScheduleError(f"{text}: unit must be {rule}: rate({value} {expected})")
    unit_seconds = int(_RATE_UNITS[singular].total_seconds())
    if value * unit_seconds > MAX_RATE_PERIOD.total_seconds():  # ints: no timedelta overflow
        raise ScheduleError(f"{text}: period is longer than {MAX_RATE_PERIOD.days} days")
    return RateSchedule(expression=text, period=timedelta(seconds=value * unit_seconds))


# --- cron fields ---------------------------------------------------------------------------

_MONTH_NAMES = {
    n: i + 1 for i, n in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())
}
_CRON_DAY_NAMES = {n: i + 1 for i, n in enumerate("SUN MON TUE WED THU FRI SAT".split())}


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    low: int
    high: int
    names: Mapping[str, int] = field(default_factory=dict)
    names_hint: str = ""  # e.g. " or JAN-DEC"
    wraps: bool = True  # a range may run past the end back to the start (FRI-MON, 22-2)

    def where(self, text: str) -> str:
        return f"{self.name} field {text!r}"

    def value(self, token: str, whole: str) -> int:
        upper = token.upper()
        if upper in self.names:
            return self.names[upper]
        if not token.isdigit() or not token.isascii():
            raise ScheduleError(
                f"{self.where(whole)}: {token!r} is not a valid value (allowed: "
                f"{self.low}-{self.high}{self.names_hint})"
            )
        number = int(token)
        if not self.low <= number <= self.high:
            raise ScheduleError(
                f"{self.where(whole)}: {number} is out of range {self.low}-{self.high}"
            )
        return number

    def values(self, whole: str) -> set[int]:
        """Expand ``*``, lists, ranges and ``/`` increments into the set of values."""
        result: set[int] = set()
        for term in whole.split(","):
            if not term:
                raise ScheduleError(f"{self.where(whole)}: empty item in the list")
            base, slash, step_text = term.partition("/")
            if base == "*":
                start, end = self.low, self.high
            elif "-" in base:
                a, _, b = base.partition("-")
                start, end = self.value(a, whole), self.value(b, whole)
                if start > end and not self.wraps:
                    raise ScheduleError(f"{self.where(whole)}: range {base} runs backwards")
            else:
                start = self.value(base, whole)
                end = self.high if slash else start  # EventBridge: 0/15 means 0, 15, 30, 45
            step = 1
            if slash:
                if not step_text.isdigit() or not step_text.isascii() or int(step_text) == 0:
                    raise ScheduleError(
                        f"{self.where(whole)}: increment {step_text!r} after '/' must be a "
                        "positive whole number"
                    )
                step = int(step_text)
                if step > self.high - self.low + 1:
                    raise ScheduleError(
                        f"{self.where(whole)}: increment {step} is larger than the field's "
                        f"range {self.low}-{self.high}"
                    )
            if start <= end:
                sequence = list(range(start, end + 1))
            else:  # Quartz (and so EventBridge) wraps: SAT-SUN is 7,1; 22-2 is 22,23,0,1,2
                sequence = list(range(start, self.high + 1)) + list(range(self.low, end + 1))
            result.update(sequence[::step])
        return result


_MINUTES = _FieldSpec("Minutes", 0, 59)
_HOURS = _FieldSpec("Hours", 0, 23)
_DOM = _FieldSpec("Day-of-month", 1, 31)
_MONTH = _FieldSpec("Month", 1, 12, _MONTH_NAMES, " or JAN-DEC")
_DOW = _FieldSpec("Day-of-week", 1, 7, _CRON_DAY_NAMES, " or SUN-SAT, 1 = SUN")
_YEAR = _FieldSpec("Year", 1970, 2199, wraps=False)

_CRON_FIELDS = "Minutes Hours Day-of-month Month Day-of-week Year"


def _croniter_list(values: set[int], spec: _FieldSpec, shift: int = 0) -> str:
    if values == set(range(spec.low, spec.high + 1)):
        return "*"
    return ",".join(str(v + shift) for v in sorted(values))


def _special(text: str, spec: _FieldSpec, letters: str) -> None:
    """Reject ``L``/``W``/``#`` mixed into a list or range: EventBridge takes them alone."""
    if any(c in text.upper() for c in letters) and ("," in text or "/" in text or "-" in text):
        raise ScheduleError(
            f"{spec.where(text)}: {'/'.join(letters)} must stand alone, not in a list, range "
            "or increment"
        )


def _parse_dom(text: str) -> str:
    upper = text.upper()
    if upper == "?":
        return "*"
    if upper == "L":
        return "L"
    if upper == "LW":
        raise ScheduleError(
            f"{_DOM.where(text)}: LW (last weekday of the month) is not supported; use L or nW"
        )
    _special(text, _DOM, "LW")
    if upper.endswith("W"):
        day = _DOM.value(text[:-1], text) if text[:-1] else None
        if day is None:
            raise ScheduleError(f"{_DOM.where(text)}: W needs a day before it, e.g. 15W")
        return f"{day}W"
    if "L" in upper:
        raise ScheduleError(f"{_DOM.where(text)}: L must stand alone (last day of the month)")
    return _croniter_list(_DOM.values(text), _DOM)


def _parse_dow(text: str) -> str:
    upper = text.upper()
    if upper == "?":
        return "*"
    if upper == "L":  # Quartz/EventBridge: L alone in day-of-week is the last day, Saturday
        return "6"
    _special(text, _DOW, "L#")
    if "#" in upper:
        day_text, _, nth_text = text.partition("#")
        day = _DOW.value(day_text, text)
        if not nth_text.isdigit() or not nth_text.isascii() or not 1 <= int(nth_text) <= 5:
            raise ScheduleError(
                f"{_DOW.where(text)}: the number after # must be 1-5 (which week of the month)"
            )
        return f"{day - 1}#{int(nth_text)}"
    if upper.endswith("L"):  # nL: the last day n of the month
        day = _DOW.value(text[:-1], text)
        return f"L{day - 1}"
    return _croniter_list(_DOW.values(text), _DOW, shift=-1)


def _parse_cron(text: str, body: str) -> CronSchedule:
    fields = body.split()
    if len(fields) != 6:
        raise ScheduleError(
            f"{text}: expected 6 fields ({_CRON_FIELDS}), got {len(fields)}"
        )
    minutes, hours, dom, month, dow, year = fields
    dom_q, dow_q = dom == "?", dow == "?"
    if dom_q and dow_q:
        raise ScheduleError(
            f"{text}: '?' is in both Day-of-month and Day-of-week; use it in exactly one"
        )
    if not dom_q and not dow_q:
        raise ScheduleError(
            f"{text}: one of Day-of-month ({dom!r}) or Day-of-week ({dow!r}) must be '?'"
        )
    for name, value in (("Minutes", minutes), ("Hours", hours), ("Month", month), ("Year", year)):
        if "?" in value:
            raise ScheduleError(
                f"{text}: {name} field {value!r}: '?' is allowed only in the day fields"
            )
    if ("?" in dom and not dom_q) or ("?" in dow and not dow_q):
        raise ScheduleError(f"{text}: '?' must be the whole Day-of-month or Day-of-week field")
    for spec, value in ((_MINUTES, minutes), (_HOURS, hours), (_YEAR, year)):
        if any(c in value.upper() for c in "LW#"):
            raise ScheduleError(
                f"{text}: {spec.where(value)}: L, W and # are allowed only in the day fields"
            )
    try:
        croniter_expr = " ".join(
            (
                _croniter_list(_MINUTES.values(minutes), _MINUTES),
                _croniter_list(_HOURS.values(hours), _HOURS),
                _parse_dom(dom),
                _croniter_list(_MONTH.values(month), _MONTH),
                _parse_dow(dow),
            )
        )
        years = None if year == "*" else tuple(sorted(_YEAR.values(year)))
    except ScheduleError as exc:
        raise ScheduleError(f"{text}: {exc}") from None
    schedule = CronSchedule(expression=text, croniter_expr=croniter_expr, years=years)
    if schedule.next_after(_EPOCH) is None:
        raise ScheduleError(
            f"{text}: matches no date at all (e.g. day 30 or 31 in FEB, or 29 FEB in years "
            "without a leap year)"
        )
    return schedule


def parse_cadence(obj: Any) -> dict[str, Schedule]:
    """``connection_config.cadence``: ``{resource type: schedule expression}``."""
    if not isinstance(obj, Mapping):
        raise ScheduleError(
            f"cadence must be an object of resource type to schedule, got {type(obj).__name__}"
        )
    result: dict[str, Schedule] = {}
    for resource_type, expr in obj.items():
        if resource_type not in STORABLE_RESOURCE_TYPES:
            raise ScheduleError(f"cadence.{resource_type}: not a FHIR resource type stored here")
        try:
            result[resource_type] = parse_schedule(expr)
        except ScheduleError as exc:
            raise ScheduleError(f"cadence.{resource_type}: {exc}") from None
    return result


# ---------------------------------------------------------------------------------------------
# Business hours
# ---------------------------------------------------------------------------------------------

_WEEKDAYS = "MON TUE WED THU FRI SAT SUN".split()  # index = datetime.weekday()
_HHMM_RE = re.compile(r"(?P<h>[01]\d|2[0-3]):(?P<m>[0-5]\d)")
_BUSINESS_HOURS_KEYS = ("timezone", "days", "start", "end")


@dataclass(frozen=True)
class BusinessHours:
    """A weekly window ``[start, end)`` on ``days`` in the wall-clock time of ``timezone``."""

    timezone: str
    days: frozenset[int]  # datetime.weekday(): 0 = Monday
    days_text: str  # as configured, upper-cased: "MON-FRI"
    start_minute: int  # minutes after local midnight
    end_minute: int  # exclusive; 1440 = "24:00", the end of the day

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def contains(self, t_utc: datetime) -> bool:
        local = _aware_utc(t_utc, "t_utc").astimezone(self.tz)
        if local.weekday() not in self.days:
            return False
        second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        return self.start_minute * 60 <= second < self.end_minute * 60

    def next_open(self, t_utc: datetime) -> datetime:
        """``t_utc`` itself when the window is open then, else the first instant after it opens.

        On a spring-forward day a start inside the skipped hour opens at the transition (the
        first instant whose wall clock is past the start); on a fall-back day a start inside the
        repeated hour opens at its first occurrence.
        """
        t = _aware_utc(t_utc, "t_utc")
        if self.contains(t):
            return t
        local_day = t.astimezone(self.tz).date()
        # 15 days: the next listed weekday is at most 7 days away, and a day whose whole window
        # falls in a DST gap (a window such as 02:10-02:40) is skipped to the following week.
        for offset in range(15):
            day = local_day + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            for opening in _instants_at_wall_time(day, self.start_minute, self.tz):
                if opening > t and self.contains(opening):
                    return opening
        raise AssertionError(f"business hours {self} never open")  # unreachable: days non-empty

    def to_config(self) -> dict[str, str]:
        return {
            "timezone": self.timezone,
            "days": self.days_text,
            "start": _format_minute(self.start_minute),
            "end": _format_minute(self.end_minute),
        }


def _format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _instants_at_wall_time(day: date, minute: int, tz: ZoneInfo) -> list[datetime]:
    """The UTC instants whose wall clock in ``tz`` first reads ``day`` ``minute``, earliest first.

    Two on a fall-back day for a time in the repeated hour; on a spring-forward day a time in
    the skipped hour gives the transition instant (the first one at or past that wall time).
    """
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    found = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == wall:
            found.append(instant)
    if found:
        return sorted(set(found))
    # In a gap: fold=0 maps with the offset before it (later instant), fold=1 with the offset
    # after it (earlier instant); the transition lies between. Search it to the second.
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    low, high = min(low, high), max(low, high)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(tz).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return [high]


def _parse_days(text: Any) -> frozenset[int]:
    where = "business_hours.days"
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError(
            f"{where}: expected a string such as MON-FRI, MON,WED,FRI or FRI-MON"
        )
    days: set[int] = set()
    for term in text.split(","):
        term = term.strip().upper()
        first, dash, last = term.partition("-")
        for name in (first, last) if dash else (first,):
            if name not in _WEEKDAYS:
                raise ScheduleError(
                    f"{where}: {name or '(empty)'!r} in {text!r} is not a day (MON TUE WED THU "
                    "FRI SAT SUN)"
                )
        if not dash:
            days.add(_WEEKDAYS.index(first))
            continue
        a, b = _WEEKDAYS.index(first), _WEEKDAYS.index(last)
        if a == b:
            raise ScheduleError(f"{where}: range {term} starts and ends on one day; write {first}")
        span = (b - a) % 7  # FRI-MON wraps over the weekend
        days.update((a + i) % 7 for i in range(span + 1))
    return frozenset(days)


def _parse_time(value: Any, key: str) -> int:
    where = f"business_hours.{key}"
    if key == "end" and value == "24:00":
        return 24 * 60
    if not isinstance(value, str) or not (m := _HHMM_RE.fullmatch(value)):
        extra = " (or 24:00 for the end of the day)" if key == "end" else ""
        raise ScheduleError(f"{where}: {value!r} is not a 24-hour time HH:MM such as 07:00{extra}")
    return int(m.group("h")) * 60 + int(m.group("m"))


def parse_business_hours(obj: Any) -> BusinessHours:
    """``connection_config.business_hours`` → :class:`BusinessHours`; else ScheduleError."""
    if not isinstance(obj, Mapping):
        raise ScheduleError(
            "business_hours must be an object with timezone, days, start and end, got "
            f"{type(obj).__name__}"
        )
    missing = [k for k in _BUSINESS_HOURS_KEYS if k not in obj]
    if missing:
        raise ScheduleError(f"business_hours: missing {', '.join(missing)}")
    unknown = sorted(str(k) for k in obj if k not in _BUSINESS_HOURS_KEYS)
    if unknown:
        raise ScheduleError(
            f"business_hours: unknown key(s) {', '.join(unknown)} (allowed: timezone, days, "
            "start, end)"
        )
    name = obj["timezone"]
    if not isinstance(name, str) or not name:
        raise ScheduleError(
            "business_hours.timezone: expected an IANA name such as America/Chicago"
        )
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"business_hours.timezone: {name!r} is not an IANA time zone (e.g. America/Chicago)"
        ) from None
    days = _parse_days(obj["days"])
    start = _parse_time(obj["start"], "start")
    end = _parse_time(obj["end"], "end")
    if end == start:
        raise ScheduleError(
            f"business_hours: start and end are both {obj['start']}, an empty window"
        )
    if end < start:
        raise ScheduleError(
            f"business_hours: end {obj['end']} is before start {obj['start']} (a window "
            "crossing midnight is not supported)"
        )
    days_text = ",".join(term.strip() for term in obj["days"].upper().split(","))
    return BusinessHours(
        timezone=name, days=days, days_text=days_text, start_minute=start, end_minute=end
    )


# ---------------------------------------------------------------------------------------------
# What is due
# ---------------------------------------------------------------------------------------------


def schedule_for(
    resource_type: str, source_schedule: Schedule | None, cadence: Mapping[str, Schedule]
) -> Schedule | None:
    """A type's cadence overrides the source schedule; None when the type has neither."""
    return cadence.get(resource_type, source_schedule)


def _unique(resource_types: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(resource_types))


def due_types(
    now: datetime,
    resource_types: Iterable[str],
    source_schedule: Schedule | None,
    cadence: Mapping[str, Schedule],
    last_run: Mapping[str, datetime | None],
    business_hours: BusinessHours | None,
) -> list[str]:
    """The resource types of a source due at ``now``, in ``resource_types`` order.

    A type is due when it has a schedule (its cadence or the source's) and has never run
    (``last_run`` missing or None) or its schedule's next firing after the last run is at or
    before ``now``; with business hours, nothing is due while they are closed.
    """
    now = _aware_utc(now, "now")
    if business_hours is not None and not business_hours.contains(now):
        return []
    due = []
    for resource_type in _unique(resource_types):
        at = _type_due_at(resource_type, source_schedule, cadence, last_run)
        if at is not None and at <= now:
            due.append(resource_type)
    return due


def _type_due_at(
    resource_type: str,
    source_schedule: Schedule | None,
    cadence: Mapping[str, Schedule],
    last_run: Mapping[str, datetime | None],
) -> datetime | None:
    schedule = schedule_for(resource_type, source_schedule, cadence)
    if schedule is None:
        return None
    previous = last_run.get(resource_type)
    if previous is None:
        return _EPOCH  # never run: due at once
    return schedule.next_after(_aware_utc(previous, f"last_run[{resource_type!r}]"))


def next_due(
    now: datetime,
    resource_types: Iterable[str],
    source_schedule: Schedule | None,
    cadence: Mapping[str, Schedule],
    last_run: Mapping[str, datetime | None],
    business_hours: BusinessHours | None,
) -> datetime | None:
    """The earliest instant at or after ``now`` when some type of the source is due.

    A type already due counts as due at ``now``. With business hours, a due instant while they
    are closed moves to their next opening. None when no type has a schedule that fires again
    (the scheduler then leaves the source out of its due-time index).
    """
    now = _aware_utc(now, "now")
    earliest: datetime | None = None
    for resource_type in _unique(resource_types):
        at = _type_due_at(resource_type, source_schedule, cadence, last_run)
        if at is None:
            continue
        at = max(at, now)
        if business_hours is not None:
            at = business_hours.next_open(at)
        if earliest is None or at < earliest:
            earliest = at
    return earliest


# ---------------------------------------------------------------------------------------------
# Validators for request models (pydantic turns a ValueError into a 422 detail entry)
# ---------------------------------------------------------------------------------------------


def validate_schedule_expr(v: str | None) -> str | None:
    """``sync_schedule``: None passes; otherwise a valid expression, returned stripped."""
    if v is None:
        return None
    return parse_schedule(v).expression


def validate_cadence(v: Mapping[str, str] | None) -> dict[str, str] | None:
    """``connection_config.cadence``: each value a valid expression; returned stripped."""
    if v is None:
        return None
    return {rt: schedule.expression for rt, schedule in parse_cadence(v).items()}


def validate_business_hours(v: Mapping[str, Any] | None) -> dict[str, str] | None:
    """``connection_config.business_hours``: returned normalised (days upper-cased)."""
    if v is None:
        return None
    return parse_business_hours(v).to_config()
