"""What every event source shares: a polling thread, and Lambda's asynchronous invocation.

``Poller`` is a daemon thread that calls ``poll_once()`` until the stack's stop event is set, waiting
``interval`` seconds whenever a poll found nothing to do, and backing off (with one log line per
streak, not per poll) when the local endpoint errors. ``AsyncInvoker`` is Lambda's asynchronous
invocation (used for S3 notifications and schedules): the event is queued, the function runs on a
worker thread, and a failure is retried ``MaximumRetryAttempts`` times (``EventInvokeConfig``,
default 2), 1 s then 2 s apart locally (Lambda waits about 1 and 2 minutes).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from local_stack.lambda_runtime import FunctionError, LambdaFunction

log = logging.getLogger("local_stack")


class Poller(threading.Thread):
    interval = 0.5

    def __init__(self, name: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.stop = stop
        self.ready = threading.Event()  # set once setup() has run (e.g. the S3 baseline is taken)

    def setup(self) -> None:
        """Runs once before polling (retried until it succeeds or the stack stops)."""

    def poll_once(self) -> bool:
        """One poll; return True when there may be more work right away (no wait)."""
        raise NotImplementedError

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set() and not self.ready.is_set():
            try:
                self.setup()
                self.ready.set()
            except Exception as exc:  # noqa: BLE001 - the endpoint may be briefly unavailable
                failures += 1
                if failures == 1:
                    log.warning("%s: setup failed (%s), retrying", self.name, _describe(exc))
                self.stop.wait(min(5.0, 0.5 * failures))
        failures = 0
        while not self.stop.is_set():
            try:
                busy = self.poll_once()
                if failures:
                    log.info("%s: recovered", self.name)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - keep polling; report once per streak
                failures += 1
                if failures == 1:
                    log.warning("%s: poll failed (%s), retrying", self.name, _describe(exc))
                busy = False
                self.stop.wait(min(5.0, 0.5 * failures))
            if not busy:
                self.stop.wait(self.interval)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


class AsyncInvoker:
    def __init__(self, stop: threading.Event, retry_delays: tuple[float, ...] = (1.0, 2.0)) -> None:
        self.stop = stop
        self.retry_delays = retry_delays
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="async-invoke")

    def submit(self, function: LambdaFunction, event: dict[str, Any], source: str) -> None:
        self._pool.submit(self._run, function, event, source)

    def _run(self, function: LambdaFunction, event: dict[str, Any], source: str) -> None:
        retries = min(function.spec.async_retries, len(self.retry_delays))
        for attempt in range(retries + 1):
            if self.stop.is_set():
                return
            try:
                function.invoke(event)
                return
            except FunctionError:
                if attempt < retries:
                    log.info("%s (%s): async invocation failed, retry %d of %d", function.logical_id, source, attempt + 1, retries)
                    self.stop.wait(self.retry_delays[attempt])
        log.error("%s (%s): async invocation failed %d times; event dropped", function.logical_id, source, retries + 1)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
