"""Sync schedules (EventBridge rate/cron), per-type cadence, business hours, what is due.

Expected instants are worked out by hand from the calendar (2026-03-06 is a Friday; US DST starts
Sunday 2026-03-08 and ends Sunday 2026-11-01; Chicago is UTC-6 in CST, UTC-5 in CDT).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pydantic
import pytest
from fhir_platform.connector.schedule import (
    MAX_RATE_PERIOD,
    BusinessHours,
    CronSchedule,
    RateSchedule,
    ScheduleError,
    due_types,
    next_due,
    parse_business_hours,
    parse_cadence,
    parse_schedule,
    validate_business_hours,
    validate_cadence,
    validate_schedule_expr,
)

UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


FRI_0907 = utc(2026, 3, 6, 9, 7)  # Friday 6 March 2026, 09:07 UTC


# ---------------------------------------------------------------------------------------------
# rate(...)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "period"),
    [
        ("rate(1 minute)", timedelta(minutes=1)),
        ("rate(5 minutes)", timedelta(minutes=5)),
        ("rate(1 hour)", timedelta(hours=1)),
        ("rate(12 hours)", timedelta(hours=12)),
        ("rate(1 day)", timedelta(days=1)),
        ("rate(7 days)", timedelta(days=7)),
        ("  rate(15 minutes) ", timedelta(minutes=15)),
    ],
)
def test_rate_runs_one_period_after_the_previous_run(expr, period):
    schedule = parse_schedule(expr)
    assert isinstance(schedule, RateSchedule)
    assert schedule.expression == expr.strip()
    assert schedule.next_after(FRI_0907) == FRI_0907 + period
    assert schedule.interval_hint() == period


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("rate(0 minutes)", "value must be a positive whole number, got 0"),
        ("rate(1 minutes)", "unit must be singular for a value of 1: rate(1 minute)"),
        ("rate(1 hours)", "unit must be singular for a value of 1: rate(1 hour)"),
        ("rate(5 minute)", "unit must be plural for a value above 1: rate(5 minutes)"),
        ("rate(2 day)", "unit must be plural for a value above 1: rate(2 days)"),
        ("rate(5 weeks)", "unit 'weeks' is not one of minute(s), hour(s), day(s)"),
        ("rate(5 Minutes)", "unit 'Minutes' is not one of"),
        ("rate(-5 minutes)", "value '-5' is not a whole number"),
        ("rate(1.5 hours)", "value '1.5' is not a whole number"),
        ("rate(05 minutes)", "value '05' has a leading zero"),
        ("rate(5minutes)", "expected rate(value unit)"),
        ("rate(5  minutes)", "expected rate(value unit)"),
        ("rate()", "expected rate(value unit)"),
        ("rate(367 days)", "period is longer than 366 days"),
        ("rate(99999999999999 days)", "period is longer than 366 days"),
        ("every 5 minutes", "is neither rate(value unit) nor cron("),
        ("", "schedule is empty"),
        ("cron(" + "0," * 200 + "0 * * * ? *)", "longer than 256 characters"),
    ],
)
def test_invalid_rates_say_what_is_wrong(expr, message):
    with pytest.raises(ScheduleError) as err:
        parse_schedule(expr)
    assert message in str(err.value)


@pytest.mark.parametrize(("value", "kind"), [(5, "int"), (["rate(5 minutes)"], "list"), (None, "NoneType")])
def test_schedule_must_be_a_string(value, kind):
    with pytest.raises(ScheduleError, match=f"must be a string, got {kind}"):
        parse_schedule(value)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# cron(...)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        # the examples of the EventBridge documentation
        ("cron(0 10 * * ? *)", FRI_0907, utc(2026, 3, 6, 10, 0)),
        ("cron(15 12 * * ? *)", FRI_0907, utc(2026, 3, 6, 12, 15)),
        ("cron(0 18 ? * MON-FRI *)", FRI_0907, utc(2026, 3, 6, 18, 0)),
        ("cron(0 18 ? * MON-FRI *)", utc(2026, 3, 6, 18, 0), utc(2026, 3, 9, 18, 0)),  # Mon
        ("cron(0 8 1 * ? *)", FRI_0907, utc(2026, 4, 1, 8, 0)),
        ("cron(0/15 * * * ? *)", FRI_0907, utc(2026, 3, 6, 9, 15)),
        ("cron(0/15 * * * ? *)", utc(2026, 3, 6, 23, 45), utc(2026, 3, 7, 0, 0)),
        ("cron(0/10 * ? * MON-FRI *)", FRI_0907, utc(2026, 3, 6, 9, 10)),
        ("cron(0/10 * ? * MON-FRI *)", utc(2026, 3, 6, 23, 55), utc(2026, 3, 9, 0, 0)),
        ("cron(0/5 8-17 ? * MON-FRI *)", FRI_0907, utc(2026, 3, 6, 9, 10)),
        ("cron(0/5 8-17 ? * MON-FRI *)", utc(2026, 3, 6, 17, 55), utc(2026, 3, 9, 8, 0)),
        ("cron(0/5 8-17 ? * MON-FRI *)", utc(2026, 3, 9, 7, 0), utc(2026, 3, 9, 8, 0)),
        # 2 = MON; the first Monday of March 2026 was the 2nd, of April the 6th
        ("cron(0 9 ? * 2#1 *)", FRI_0907, utc(2026, 4, 6, 9, 0)),
        ("cron(0 9 ? * MON#1 *)", utc(2026, 3, 1), utc(2026, 3, 2, 9, 0)),
        ("cron(0 0 L * ? *)", FRI_0907, utc(2026, 3, 31, 0, 0)),
        ("cron(0 0 L * ? *)", utc(2026, 2, 1), utc(2026, 2, 28, 0, 0)),
        ("cron(0 0 L * ? *)", utc(2028, 2, 1), utc(2028, 2, 29, 0, 0)),  # leap year
        # strictly after: a firing at t itself does not count; seconds are below a minute
        ("cron(0 10 * * ? *)", utc(2026, 3, 6, 10, 0), utc(2026, 3, 7, 10, 0)),
        ("cron(0 10 * * ? *)", utc(2026, 3, 6, 9, 59, 59, 999999), utc(2026, 3, 6, 10, 0)),
        ("cron(0 10 * * ? *)", utc(2026, 3, 6, 10, 0, 0, 1), utc(2026, 3, 7, 10, 0)),
        # W: nearest weekday, never across the month (15 Mar 2026 is a Sunday, 1 Aug a Saturday)
        ("cron(0 9 15W * ? *)", FRI_0907, utc(2026, 3, 16, 9, 0)),
        ("cron(0 9 1W * ? *)", utc(2026, 7, 31), utc(2026, 8, 3, 9, 0)),
        ("cron(0 9 6W * ? *)", FRI_0907, utc(2026, 3, 6, 9, 0) + timedelta(days=31)),  # Mon 6 Apr
        # nL: the last such day of the month (6 = FRI); L alone in day-of-week is Saturday
        ("cron(0 9 ? * 6L *)", FRI_0907, utc(2026, 3, 27, 9, 0)),
        ("cron(0 9 ? * FRIL *)", FRI_0907, utc(2026, 3, 27, 9, 0)),
        ("cron(0 9 ? * L *)", FRI_0907, utc(2026, 3, 7, 9, 0)),
        # 1 = SUN, 7 = SAT (not cron's 0-6)
        ("cron(0 9 ? * 1 *)", FRI_0907, utc(2026, 3, 8, 9, 0)),
        ("cron(0 9 ? * 7 *)", FRI_0907, utc(2026, 3, 7, 9, 0)),
        ("cron(0 12 ? * MON,WED,FRI *)", utc(2026, 3, 6, 12, 0), utc(2026, 3, 9, 12, 0)),
        ("cron(0 12 ? * SAT-SUN *)", FRI_0907, utc(2026, 3, 7, 12, 0)),  # ranges wrap (7, 1)
        ("cron(0 12 ? * SAT-SUN *)", utc(2026, 3, 8, 12, 0), utc(2026, 3, 14, 12, 0)),
        ("cron(0 12 ? * FRI-MON *)", utc(2026, 3, 9, 12, 0), utc(2026, 3, 13, 12, 0)),
        ("cron(0 22-1 * * ? *)", utc(2026, 3, 6, 1, 0), utc(2026, 3, 6, 22, 0)),
        ("cron(0 22-1 * * ? *)", utc(2026, 3, 6, 23, 0), utc(2026, 3, 7, 0, 0)),
        ("cron(0 0 1 NOV-FEB ? *)", FRI_0907, utc(2026, 11, 1, 0, 0)),
        ("cron(50-10/10 * * * ? *)", utc(2026, 3, 6, 9, 55), utc(2026, 3, 6, 10, 0)),
        ("cron(0 12 ? * mon-fri *)", utc(2026, 3, 6, 12, 0), utc(2026, 3, 9, 12, 0)),
        # lists, ranges with increments, month names
        ("cron(5-50/15 * * * ? *)", FRI_0907, utc(2026, 3, 6, 9, 20)),
        ("cron(*/20 * * * ? *)", FRI_0907, utc(2026, 3, 6, 9, 20)),
        ("cron(30 6 1 JAN,JUL ? *)", FRI_0907, utc(2026, 7, 1, 6, 30)),
        ("cron(0 0 1 6-8 ? *)", FRI_0907, utc(2026, 6, 1, 0, 0)),
        # the year field (applied beside croniter, up to 2199)
        ("cron(0 0 29 FEB ? 2027-2029)", FRI_0907, utc(2028, 2, 29, 0, 0)),
        ("cron(0 0 1 1 ? 2026/2)", FRI_0907, utc(2028, 1, 1, 0, 0)),
        ("cron(0 0 1 1 ? 2150,2199)", FRI_0907, utc(2150, 1, 1, 0, 0)),
        ("cron(0 0 1 1 ? 2150,2199)", utc(2150, 1, 1), utc(2199, 1, 1, 0, 0)),
    ],
)
def test_cron_next_after(expr, after, expected):
    schedule = parse_schedule(expr)
    assert isinstance(schedule, CronSchedule)
    result = schedule.next_after(after)
    assert result == expected
    assert result.tzinfo == UTC


def test_cron_is_evaluated_in_utc_whatever_the_offset_of_t():
    chicago_morning = datetime(2026, 3, 6, 4, 7, tzinfo=timezone(timedelta(hours=-5)))
    result = parse_schedule("cron(0 10 * * ? *)").next_after(chicago_morning)
    assert result == utc(2026, 3, 6, 10, 0)
    assert result.utcoffset() == timedelta(0)


def test_cron_that_has_stopped_firing_returns_none():
    assert parse_schedule("cron(0 0 1 1 ? 2020)").next_after(FRI_0907) is None


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule("cron(0 10 * * ? *)").next_after(datetime(2026, 3, 6))
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_schedule("rate(5 minutes)").next_after(datetime(2026, 3, 6))


@pytest.mark.parametrize(
    ("expr", "hint"),
    [
        ("cron(0 10 * * ? *)", timedelta(days=1)),
        ("cron(0/15 * * * ? *)", timedelta(minutes=15)),
        ("cron(0/5 8-17 ? * MON-FRI *)", timedelta(minutes=5)),  # nights and weekends ignored
        ("cron(0 18 ? * MON-FRI *)", timedelta(days=1)),
        ("cron(0 12 ? * MON *)", timedelta(days=7)),
        ("cron(0 0 1 1 ? 2030)", MAX_RATE_PERIOD),  # fires once: no period
        ("cron(0 0 1 1 ? 2030,2032,2040)", timedelta(days=730)),  # gaps 730 and 2922 days
    ],
)
def test_cron_interval_hint_is_the_typical_gap(expr, hint):
    assert parse_schedule(expr).interval_hint() == hint


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("cron(0 10 * * *)", "expected 6 fields (Minutes Hours Day-of-month Month Day-of-week Year), got 5"),
        ("cron(0 10 * * ? * *)", "got 7"),
        ("cron(0 10 ? * ? *)", "'?' is in both Day-of-month and Day-of-week; use it in exactly one"),
        ("cron(0 10 * * * *)", "one of Day-of-month ('*') or Day-of-week ('*') must be '?'"),
        ("cron(0 10 1 * MON *)", "one of Day-of-month ('1') or Day-of-week ('MON') must be '?'"),
        ("cron(? 10 * * ? *)", "Minutes field '?': '?' is allowed only in the day fields"),
        ("cron(0 0 1? * ? *)", "'?' must be the whole Day-of-month or Day-of-week field"),
        ("cron(60 10 * * ? *)", "Minutes field '60': 60 is out of range 0-59"),
        ("cron(0 24 * * ? *)", "Hours field '24': 24 is out of range 0-23"),
        ("cron(0 0 0 * ? *)", "Day-of-month field '0': 0 is out of range 1-31"),
        ("cron(0 0 32 * ? *)", "Day-of-month field '32': 32 is out of range 1-31"),
        ("cron(0 0 1 13 ? *)", "Month field '13': 13 is out of range 1-12"),
        ("cron(0 0 1 FOO ? *)", "Month field 'FOO': 'FOO' is not a valid value (allowed: 1-12 or JAN-DEC)"),
        ("cron(0 0 ? * 0 *)", "Day-of-week field '0': 0 is out of range 1-7"),
        ("cron(0 0 ? * 8 *)", "Day-of-week field '8': 8 is out of range 1-7"),
        ("cron(0 0 ? * FUN *)", "Day-of-week field 'FUN': 'FUN' is not a valid value (allowed: 1-7 or SUN-SAT"),
        ("cron(0 0 1 * ? 1969)", "Year field '1969': 1969 is out of range 1970-2199"),
        ("cron(0 0 1 * ? 2200)", "Year field '2200': 2200 is out of range 1970-2199"),
        ("cron(0 0 1 1 ? 2030-2026)", "Year field '2030-2026': range 2030-2026 runs backwards"),
        ("cron(0/0 * * * ? *)", "increment '0' after '/' must be a positive whole number"),
        ("cron(0/61 * * * ? *)", "increment 61 is larger than the field's range 0-59"),
        ("cron(0 0 1,,15 * ? *)", "Day-of-month field '1,,15': empty item in the list"),
        ("cron(0 0 ? * 2#6 *)", "the number after # must be 1-5"),
        ("cron(0 0 ? * 2#1,3 *)", "Day-of-week field '2#1,3': L/# must stand alone"),
        ("cron(0 0 L,15 * ? *)", "Day-of-month field 'L,15': L/W must stand alone"),
        ("cron(0 0 W * ? *)", "W needs a day before it, e.g. 15W"),
        ("cron(0 0 32W * ? *)", "32 is out of range 1-31"),
        ("cron(0 0 LW * ? *)", "LW (last weekday of the month) is not supported"),
        ("cron(L 0 * * ? *)", "Minutes field 'L': L, W and # are allowed only in the day fields"),
        ("cron(0 0 30 FEB ? *)", "matches no date at all"),
        ("cron(0 0 31 4,6,9,11 ? *)", "matches no date at all"),
        ("cron(0 0 29 2 ? 2025-2027)", "matches no date at all"),
    ],
)
def test_invalid_cron_names_the_field_and_why(expr, message):
    with pytest.raises(ScheduleError) as err:
        parse_schedule(expr)
    assert message in str(err.value)
    assert str(err.value).startswith(expr)  # the whole expression is quoted for context


# ---------------------------------------------------------------------------------------------
# business hours
# ---------------------------------------------------------------------------------------------

CHICAGO_WEEKDAYS = {"timezone": "America/Chicago", "days": "MON-FRI", "start": "07:00", "end": "19:00"}


@pytest.mark.parametrize(
    ("t", "open_"),
    [
        # Friday 6 March, CST (UTC-6): 07:00-19:00 local is 13:00-01:00 UTC
        (utc(2026, 3, 6, 12, 59), False),
        (utc(2026, 3, 6, 13, 0), True),
        (utc(2026, 3, 7, 0, 59, 59), True),  # Fri 18:59:59 local
        (utc(2026, 3, 7, 1, 0), False),  # Fri 19:00 local: the end is exclusive
        (utc(2026, 3, 7, 15, 0), False),  # Saturday
        # Monday 9 March, after the spring change, CDT (UTC-5): 12:00-00:00 UTC
        (utc(2026, 3, 9, 11, 59), False),
        (utc(2026, 3, 9, 12, 0), True),
        (utc(2026, 3, 9, 23, 59), True),
        (utc(2026, 3, 10, 0, 0), False),
        # Friday 30 October (CDT) and Monday 2 November (CST, after the autumn change)
        (utc(2026, 10, 30, 12, 0), True),
        (utc(2026, 11, 2, 12, 0), False),
        (utc(2026, 11, 2, 13, 0), True),
    ],
)
def test_business_hours_follow_the_local_wall_clock_across_dst(t, open_):
    assert parse_business_hours(CHICAGO_WEEKDAYS).contains(t) is open_


@pytest.mark.parametrize(
    ("t", "opening"),
    [
        (utc(2026, 3, 6, 13, 30), utc(2026, 3, 6, 13, 30)),  # open now: now
        (utc(2026, 3, 6, 4, 0), utc(2026, 3, 6, 13, 0)),  # Friday before opening (CST)
        (utc(2026, 3, 7, 1, 0), utc(2026, 3, 9, 12, 0)),  # Friday close -> Monday 07:00 CDT
        (utc(2026, 10, 31, 0, 0), utc(2026, 11, 2, 13, 0)),  # Friday close -> Monday 07:00 CST
    ],
)
def test_next_open_across_weekends_and_dst(t, opening):
    assert parse_business_hours(CHICAGO_WEEKDAYS).next_open(t) == opening


def test_a_start_in_the_skipped_spring_hour_opens_at_the_change():
    # 8 March 2026: 02:00 CST becomes 03:00 CDT at 08:00 UTC; 02:30 never shows on the clock.
    hours = parse_business_hours(
        {"timezone": "America/Chicago", "days": "SUN", "start": "02:30", "end": "04:00"}
    )
    assert hours.next_open(utc(2026, 3, 8, 0, 0)) == utc(2026, 3, 8, 8, 0)
    assert not hours.contains(utc(2026, 3, 8, 7, 59, 59))
    assert hours.contains(utc(2026, 3, 8, 8, 0))


def test_a_window_wholly_in_the_skipped_hour_waits_a_week():
    hours = parse_business_hours(
        {"timezone": "America/Chicago", "days": "SUN", "start": "02:10", "end": "02:40"}
    )
    assert hours.next_open(utc(2026, 3, 8, 0, 0)) == utc(2026, 3, 15, 7, 10)  # 02:10 CDT


def test_a_window_in_the_repeated_autumn_hour_opens_twice():
    # 1 November 2026: 01:00-02:00 CDT, then 01:00-02:00 again in CST.
    hours = parse_business_hours(
        {"timezone": "America/Chicago", "days": "SUN", "start": "01:30", "end": "01:45"}
    )
    assert hours.next_open(utc(2026, 11, 1, 0, 0)) == utc(2026, 11, 1, 6, 30)  # 01:30 CDT
    assert hours.next_open(utc(2026, 11, 1, 6, 50)) == utc(2026, 11, 1, 7, 30)  # 01:30 CST
    assert hours.next_open(utc(2026, 11, 1, 7, 50)) == utc(2026, 11, 8, 7, 30)


@pytest.mark.parametrize(
    ("days", "open_on"),
    [
        ("MON-FRI", {"MON", "TUE", "WED", "THU", "FRI"}),
        ("MON,WED,FRI", {"MON", "WED", "FRI"}),
        ("SAT-SUN", {"SAT", "SUN"}),
        ("FRI-MON", {"FRI", "SAT", "SUN", "MON"}),  # wraps over the weekend
        ("SUN-TUE", {"SUN", "MON", "TUE"}),
        ("mon-wed, fri", {"MON", "TUE", "WED", "FRI"}),
        ("TUE", {"TUE"}),
    ],
)
def test_business_days(days, open_on):
    hours = parse_business_hours({"timezone": "UTC", "days": days, "start": "09:00", "end": "17:00"})
    week = {"MON": 9, "TUE": 10, "WED": 11, "THU": 12, "FRI": 13, "SAT": 14, "SUN": 15}  # Mar 2026
    assert {name for name, day in week.items() if hours.contains(utc(2026, 3, day, 12))} == open_on


def test_wrapping_days_next_open_jumps_to_the_first_day():
    hours = parse_business_hours({"timezone": "UTC", "days": "FRI-MON", "start": "09:00", "end": "17:00"})
    assert hours.next_open(utc(2026, 3, 10, 12)) == utc(2026, 3, 13, 9)  # Tue -> Fri
    assert hours.next_open(utc(2026, 3, 14, 17)) == utc(2026, 3, 15, 9)  # Sat close -> Sun


def test_end_of_day_is_written_24_00():
    hours = parse_business_hours({"timezone": "UTC", "days": "MON", "start": "00:00", "end": "24:00"})
    assert hours.contains(utc(2026, 3, 9, 23, 59, 59))
    assert not hours.contains(utc(2026, 3, 10, 0, 0))


@pytest.mark.parametrize("config", [CHICAGO_WEEKDAYS, {**CHICAGO_WEEKDAYS, "days": "SUN", "start": "02:30", "end": "03:30"}, {**CHICAGO_WEEKDAYS, "days": "SUN", "start": "01:00", "end": "01:30"}])
def test_next_open_agrees_with_contains_minute_by_minute_over_dst_weeks(config):
    """Oracle: scan every minute; the next open minute at or after t is what next_open says."""
    hours = parse_business_hours(config)
    for first in (utc(2026, 3, 5), utc(2026, 10, 29)):
        minutes = [first + timedelta(minutes=i) for i in range(14 * 24 * 60)]
        is_open = [hours.contains(m) for m in minutes]
        upcoming: list[datetime | None] = [None] * len(minutes)
        following = None
        for i in range(len(minutes) - 1, -1, -1):
            if is_open[i]:
                following = minutes[i]
            upcoming[i] = following
        for i in range(0, 7 * 24 * 60, 17):  # t over the first week; openings within two
            assert hours.next_open(minutes[i]) == upcoming[i], minutes[i]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({**CHICAGO_WEEKDAYS, "start": "07:00", "end": "07:00"}, "start and end are both 07:00, an empty window"),
        ({**CHICAGO_WEEKDAYS, "start": "19:00", "end": "07:00"}, "end 07:00 is before start 19:00"),
        ({**CHICAGO_WEEKDAYS, "timezone": "America/Chicgo"}, "business_hours.timezone: 'America/Chicgo' is not an IANA time zone"),
        ({**CHICAGO_WEEKDAYS, "timezone": "../../etc/passwd"}, "is not an IANA time zone"),
        ({**CHICAGO_WEEKDAYS, "timezone": ""}, "business_hours.timezone: expected an IANA name"),
        ({**CHICAGO_WEEKDAYS, "days": "MON-FRX"}, "business_hours.days: 'FRX' in 'MON-FRX' is not a day"),
        ({**CHICAGO_WEEKDAYS, "days": "MON,,FRI"}, "'(empty)' in 'MON,,FRI' is not a day"),
        ({**CHICAGO_WEEKDAYS, "days": "MON-MON"}, "range MON-MON starts and ends on one day; write MON"),
        ({**CHICAGO_WEEKDAYS, "days": ""}, "business_hours.days: expected a string such as MON-FRI"),
        ({**CHICAGO_WEEKDAYS, "days": ["MON"]}, "business_hours.days: expected a string"),
        ({**CHICAGO_WEEKDAYS, "start": "7:00"}, "business_hours.start: '7:00' is not a 24-hour time HH:MM"),
        ({**CHICAGO_WEEKDAYS, "start": "24:00"}, "business_hours.start: '24:00' is not a 24-hour time"),
        ({**CHICAGO_WEEKDAYS, "end": "19:60"}, "business_hours.end: '19:60' is not a 24-hour time"),
        ({**CHICAGO_WEEKDAYS, "end": 19}, "business_hours.end: 19 is not a 24-hour time"),
        ({"timezone": "UTC", "days": "MON"}, "business_hours: missing start, end"),
        ({**CHICAGO_WEEKDAYS, "weekends": True}, "unknown key(s) weekends"),
        ("MON-FRI 07:00-19:00", "business_hours must be an object"),
    ],
)
def test_invalid_business_hours_say_what_is_wrong(config, message):
    with pytest.raises(ScheduleError) as err:
        parse_business_hours(config)
    assert message in str(err.value)


# ---------------------------------------------------------------------------------------------
# due_types / next_due
# ---------------------------------------------------------------------------------------------

TYPES = ["Appointment", "Patient", "Encounter", "Observation"]
SOURCE = parse_schedule("rate(1 hour)")
CADENCE = parse_cadence({"Appointment": "rate(5 minutes)", "Patient": "cron(0 6 * * ? *)"})
TUE_1500 = utc(2026, 3, 10, 15, 0)  # Tuesday 10:00 in Chicago (CDT)


def test_due_types_with_mixed_cadences():
    last_run = {
        "Appointment": utc(2026, 3, 10, 14, 56),  # +5 min = 15:01: not yet
        "Patient": None,  # never ran: due
        "Encounter": utc(2026, 3, 10, 13, 59),  # source rate 1 hour: 14:59, due
        "Observation": utc(2026, 3, 10, 14, 30),  # 15:30: not yet
    }
    assert due_types(TUE_1500, TYPES, SOURCE, CADENCE, last_run, None) == ["Patient", "Encounter"]
    # the cron cadence: Patient ran yesterday at 06:00, its next firing is today 06:00
    last_run["Patient"] = utc(2026, 3, 9, 6, 0)
    assert due_types(TUE_1500, TYPES, SOURCE, CADENCE, last_run, None) == ["Patient", "Encounter"]
    last_run["Patient"] = utc(2026, 3, 10, 6, 0)
    assert due_types(TUE_1500, TYPES, SOURCE, CADENCE, last_run, None) == ["Encounter"]
    # a type missing from last_run has never run
    assert due_types(TUE_1500, ["Condition"], SOURCE, CADENCE, {}, None) == ["Condition"]
    # due exactly at next_after(last_run)
    at_1501 = utc(2026, 3, 10, 15, 1)
    assert due_types(at_1501, TYPES, SOURCE, CADENCE, last_run, None) == ["Appointment", "Encounter"]


def test_next_due_is_the_earliest_type():
    just_ran = {t: TUE_1500 for t in TYPES}
    # Appointment 15:05, Encounter/Observation 16:00, Patient tomorrow 06:00
    assert next_due(TUE_1500, TYPES, SOURCE, CADENCE, just_ran, None) == utc(2026, 3, 10, 15, 5)
    assert next_due(TUE_1500, ["Patient"], SOURCE, CADENCE, just_ran, None) == utc(2026, 3, 11, 6, 0)
    # an overdue or never-run type is due now, not in the past
    assert next_due(TUE_1500, TYPES, SOURCE, CADENCE, {}, None) == TUE_1500
    overdue = {**just_ran, "Encounter": utc(2026, 3, 10, 9, 0)}
    assert next_due(TUE_1500, TYPES, SOURCE, CADENCE, overdue, None) == TUE_1500


def test_business_hours_hold_back_due_types_and_move_next_due_to_the_opening():
    hours = parse_business_hours(CHICAGO_WEEKDAYS)
    monday_evening = utc(2026, 3, 10, 0, 30)  # Mon 19:30 CDT: closed
    last_run = {t: utc(2026, 3, 9, 23, 0) for t in TYPES}  # all due by the rates
    assert due_types(monday_evening, TYPES, SOURCE, CADENCE, last_run, None) == ["Appointment", "Encounter", "Observation"]
    assert due_types(monday_evening, TYPES, SOURCE, CADENCE, last_run, hours) == []
    # closed now: the next opening, Tuesday 07:00 CDT
    assert next_due(monday_evening, TYPES, SOURCE, CADENCE, last_run, hours) == utc(2026, 3, 10, 12, 0)
    # open: due instants inside the window stay as they are
    inside = utc(2026, 3, 10, 18, 0)
    ran = {t: inside for t in TYPES}
    assert next_due(inside, TYPES, SOURCE, CADENCE, ran, hours) == utc(2026, 3, 10, 18, 5)
    # Friday 18:58 CDT: the 5-minute cadence would fall at 19:03, after closing -> Monday 07:00
    friday = utc(2026, 3, 13, 23, 58)
    ran = {"Appointment": friday}
    assert next_due(friday, ["Appointment"], SOURCE, CADENCE, ran, hours) == utc(2026, 3, 16, 12, 0)


def test_types_without_any_schedule_are_never_due():
    assert due_types(TUE_1500, ["Encounter"], None, CADENCE, {}, None) == []
    assert next_due(TUE_1500, ["Encounter"], None, CADENCE, {}, None) is None
    assert due_types(TUE_1500, ["Appointment", "Encounter"], None, CADENCE, {}, None) == ["Appointment"]


def test_a_cron_that_stopped_firing_is_never_due_again():
    ended = parse_schedule("cron(0 0 1 1 ? 2025)")
    ran = {"Patient": utc(2025, 1, 1)}
    assert due_types(TUE_1500, ["Patient"], ended, {}, ran, None) == []
    assert next_due(TUE_1500, ["Patient"], ended, {}, ran, None) is None


def test_due_types_lists_each_type_once_in_the_order_given():
    assert due_types(TUE_1500, ["Patient", "Encounter", "Patient"], SOURCE, {}, {}, None) == ["Patient", "Encounter"]


def test_cadence_errors_name_the_resource_type():
    with pytest.raises(ScheduleError, match=r"cadence\.Appointment: rate\(0 minutes\): value must be"):
        parse_cadence({"Appointment": "rate(0 minutes)"})
    with pytest.raises(ScheduleError, match=r"cadence\.Appointments: not a FHIR resource type"):
        parse_cadence({"Appointments": "rate(5 minutes)"})
    with pytest.raises(ScheduleError, match="cadence must be an object"):
        parse_cadence(["rate(5 minutes)"])
    with pytest.raises(ScheduleError, match=r"cadence\.Patient: schedule must be a string, got list"):
        parse_cadence({"Patient": ["rate(5 minutes)"]})


# ---------------------------------------------------------------------------------------------
# validators on a pydantic model, as the data-source request model uses them
# ---------------------------------------------------------------------------------------------


class _DataSourceBody(pydantic.BaseModel):
    sync_schedule: str | None = None
    cadence: dict[str, str] | None = None
    business_hours: dict[str, object] | None = None

    _schedule = pydantic.field_validator("sync_schedule")(validate_schedule_expr)
    _cadence = pydantic.field_validator("cadence")(validate_cadence)
    _hours = pydantic.field_validator("business_hours")(validate_business_hours)


def test_validators_pass_valid_values_normalised():
    body = _DataSourceBody(
        sync_schedule=" cron(0/15 * * * ? *) ",
        cadence={"Appointment": "rate(5 minutes)"},
        business_hours={**CHICAGO_WEEKDAYS, "days": "mon-fri"},
    )
    assert body.sync_schedule == "cron(0/15 * * * ? *)"
    assert body.cadence == {"Appointment": "rate(5 minutes)"}
    assert body.business_hours == {**CHICAGO_WEEKDAYS, "days": "MON-FRI"}
    assert _DataSourceBody().sync_schedule is None


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ({"sync_schedule": "rate(1 minutes)"}, ("sync_schedule",), "unit must be singular"),
        ({"cadence": {"Patient": "cron(0 10 * * * *)"}}, ("cadence",), "cadence.Patient: cron(0 10 * * * *): one of"),
        ({"business_hours": {**CHICAGO_WEEKDAYS, "end": "06:00"}}, ("business_hours",), "end 06:00 is before start 07:00"),
    ],
)
def test_validators_report_where_and_why(body, loc, message):
    with pytest.raises(pydantic.ValidationError) as err:
        _DataSourceBody(**body)
    (error,) = err.value.errors()
    assert error["loc"] == loc
    assert error["type"] == "value_error"
    assert message in error["msg"]


def test_business_hours_object_round_trips():
    hours = parse_business_hours(CHICAGO_WEEKDAYS)
    assert isinstance(hours, BusinessHours)
    assert parse_business_hours(hours.to_config()) == hours
