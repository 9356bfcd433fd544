"""The one place Logger, Tracer and Metrics are created (service name from POWERTOOLS_SERVICE_NAME).

Logs never carry PHI: handlers log ids, counts and outcomes, never resource bodies, names,
identifiers or API keys.

Tracing costs an import only where it is on. Powertools' ``Tracer()`` imports the X-Ray SDK (and
patches every library it knows) even when tracing is off, ~150 ms of every cold start. ``tracer``
here is a :class:`LazyTracer`: it applies Powertools' own rule for "tracing on" (inside Lambda —
``LAMBDA_TASK_ROOT`` set —, not SAM local or Chalice, and ``POWERTOOLS_TRACE_DISABLED`` not true) and
only then builds the real ``Tracer`` — at import, in Lambda's init phase, so the first request is
traced and its botocore/requests calls appear as subsegments. Off (tests, the local stack, the
bench, or a function deployed with ``POWERTOOLS_TRACE_DISABLED=true``), ``aws_xray_sdk`` is never
imported and the decorators hand back the handler unchanged. Only botocore and requests are patched
(what the platform calls), not Powertools' default everything-the-SDK-knows.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics(namespace="FhirPlatform")

TRACED_MODULES = ("botocore", "requests")


def count(name: str, value: float = 1) -> None:
    """Add ``value`` to the ``FhirPlatform`` metric ``name`` (a Count, flushed as one embedded-metric-format
    log line by the handler's ``@metrics.log_metrics``; metric names and values only, never PHI)."""
    from aws_lambda_powertools.metrics import MetricUnit

    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def tracing_enabled(environ: Any = os.environ) -> bool:
    """Powertools' rule (``Tracer._is_tracer_disabled``), read without importing the tracer."""
    if environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in ("1", "true", "yes", "on", "y", "t"):
        return False
    if not environ.get("LAMBDA_TASK_ROOT") or environ.get("AWS_SAM_LOCAL") or environ.get("AWS_CHALICE_CLI_MODE"):
        return False
    return True


class LazyTracer:
    """The subset of Powertools' ``Tracer`` the platform uses; the real one exists only when tracing is on."""

    def __init__(self) -> None:
        self._tracer: Any = None
        if tracing_enabled():
            self._tracer = self.real()

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def real(self) -> Any:
        if self._tracer is None:
            from aws_lambda_powertools import Tracer

            self._tracer = Tracer(patch_modules=TRACED_MODULES)
        return self._tracer

    def capture_lambda_handler(self, handler: Callable | None = None, **kwargs: Any) -> Callable:
        if handler is None:
            return lambda h: self.capture_lambda_handler(h, **kwargs)
        return self._tracer.capture_lambda_handler(handler, **kwargs) if self._tracer is not None else handler

    def capture_method(self, method: Callable | None = None, **kwargs: Any) -> Callable:
        if method is None:
            return lambda m: self.capture_method(m, **kwargs)
        return self._tracer.capture_method(method, **kwargs) if self._tracer is not None else method

    def put_annotation(self, key: str, value: Any) -> None:
        if self._tracer is not None:
            self._tracer.put_annotation(key=key, value=value)


tracer = LazyTracer()
