"""EventBridge schedules → Lambda, for the template's ``Type: Schedule`` and ``ScheduleV2`` events.

One thread per schedule waits for the next firing time and hands the event to Lambda's asynchronous
invocation. ``rate(N unit)`` fires every N units after the stack starts (as a new rule does), scaled
by ``LOCAL_SCHEDULE_SCALE`` (e.g. ``0.01`` turns five minutes into three seconds, for tests).
``cron(min hour day-of-month month day-of-week year)`` is evaluated in UTC, minute by minute,
supporting ``*``, ``?``, lists, ranges, steps and month/day names (``L``, ``W`` and ``#`` are not);
the scale does not apply to cron. The event is ``Input`` when the template sets it, otherwise the
"Scheduled Event" EventBridge sends. ``fire_now()`` invokes synchronously (the local admin route
``POST /_local/schedules/<FunctionLogicalId>`` uses it).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from local_stack.events.base import AsyncInvoker
from local_stack.lambda_runtime import LambdaFunction
from local_stack.template import ACCOUNT_ID, STACK_NAME, TemplateError

log = logging.getLogger("local_stack")

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {m: i for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split(), 1)}  # EventBridge: 1 = Sunday


class Schedule(threading.Thread):
    def __init__(
        self,
        function: LambdaFunction,
        event_name: str,
        kind: str,
        props: dict[str, Any],
        invoker: AsyncInvoker,
        region: str,
        scale: float,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"schedule:{function.logical_id}.{event_name}", daemon=True)
        self.function = function
        self.event_name = event_name
        self.kind = kind
        self.invoker = invoker
        self.region = region
        self.stop = stop
        self.expression = str(props.get("Schedule") if kind == "Schedule" else props.get("ScheduleExpression"))
        self.enabled = _enabled(props)
        self.input = props.get("Input")
        default_name = f"{STACK_NAME}-{function.logical_id}{event_name}"
        self.rule_name = props.get("Name") or default_name
        self.ready = threading.Event()
        match = _RATE.match(self.expression.strip())
        if match:
            seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]
            self.period: float | None = max(0.05, seconds * scale)
            self.cron: Cron | None = None
        elif self.expression.startswith("cron(") and self.expression.endswith(")"):
            self.period = None
            self.cron = Cron(self.expression[5:-1])
        else:
            raise TemplateError(f"{function.logical_id}.{event_name}: unsupported schedule {self.expression!r}")

    def describe(self) -> str:
        every = f"every {self.period:g} s" if self.period is not None else f"{self.expression} (UTC)"
        return f"{self.function.logical_id}.{self.event_name}: {every}" + ("" if self.enabled else " (disabled)")

    def run(self) -> None:
        self.ready.set()
        if not self.enabled:
            return
        next_time = datetime.now(timezone.utc)
        while not self.stop.is_set():
            next_time = self._next(next_time)
            delay = (next_time - datetime.now(timezone.utc)).total_seconds()
            if self.stop.wait(max(0.0, delay)):
                return
            self.invoker.submit(self.function, self.event(next_time), f"schedule {self.event_name}")

    def _next(self, after: datetime) -> datetime:
        if self.period is not None:
            return after + timedelta(seconds=self.period)
        assert self.cron is not None
        return self.cron.next_after(after)

    def fire_now(self) -> Any:
        """Invoke synchronously now, with the event the schedule would send (raises FunctionError)."""
        return self.function.invoke(self.event(datetime.now(timezone.utc)))

    def event(self, when: datetime) -> Any:
        if self.input is not None:
            return json.loads(self.input) if isinstance(self.input, str) else self.input
        if self.kind == "ScheduleV2":
            source, resource = "aws.scheduler", f"arn:aws:scheduler:{self.region}:{ACCOUNT_ID}:schedule/default/{self.rule_name}"
        else:
            source, resource = "aws.events", f"arn:aws:events:{self.region}:{ACCOUNT_ID}:rule/{self.rule_name}"
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": source,
            "account": ACCOUNT_ID,
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [resource],
            "detail": {},
        }


def _enabled(props: dict[str, Any]) -> bool:
    if "Enabled" in props:
        return str(props["Enabled"]).lower() != "false"
    return str(props.get("State", "ENABLED")).upper() == "ENABLED"


class Cron:
    """EventBridge's six-field cron, matched minute by minute (UTC)."""

    def __init__(self, expression: str) -> None:
        fields = expression.split()
        if len(fields) != 6:
            raise TemplateError(f"cron({expression}): expected 6 fields")
        try:
            self.minutes = _field(fields[0], 0, 59, {})
            self.hours = _field(fields[1], 0, 23, {})
            self.days = _field(fields[2], 1, 31, {})
            self.months = _field(fields[3], 1, 12, _MONTHS)
            self.weekdays = _field(fields[4], 1, 7, _DAYS)
            self.years = _field(fields[5], 1970, 2199, {})
        except ValueError as exc:
            raise TemplateError(f"cron({expression}): {exc}") from exc
        self.expression = expression

    def matches(self, t: datetime) -> bool:
        weekday = (t.isoweekday() % 7) + 1  # Sunday = 1
        return (
            t.minute in self.minutes
            and t.hour in self.hours
            and t.day in self.days
            and t.month in self.months
            and weekday in self.weekdays
            and t.year in self.years
        )

    def next_after(self, after: datetime) -> datetime:
        t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(366 * 24 * 60 * 5):
            if self.matches(t):
                return t
            t += timedelta(minutes=1)
        raise TemplateError(f"cron({self.expression}) never fires in the next five years")


def _field(text: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    if text in ("*", "?"):
        return set(range(low, high + 1))
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part in ("*", "?"):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(part, names)
            end = high if step != 1 else start
        if not (low <= start <= high and low <= end <= high):
            raise ValueError(f"{part!r} out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, names: dict[str, int]) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ValueError(f"unsupported cron value {text!r} (L, W and # are not supported locally)")
    return int(text)
