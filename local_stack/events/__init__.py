"""Event sources other than HTTP: the template's S3, SQS, Schedule/ScheduleV2 and DynamoDB events.

``build_event_sources()`` reads each function's ``Events`` (``HttpApi`` events are the gateway's),
resolves what they point at to the resources created locally (``Bucket: !Ref X``,
``Queue: !GetAtt Q.Arn``, ``Stream: !GetAtt T.StreamArn``) and returns the threads that deliver them:
one ``S3Poller`` per bucket, one ``SqsPoller`` / ``StreamPoller`` per event, one ``Schedule`` per
schedule. Event types the local stack does not emulate are reported once at start.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from local_stack.aws_resources import LocalResource
from local_stack.events.base import AsyncInvoker, Poller
from local_stack.events.filters import parse_filter_criteria
from local_stack.events.s3 import S3Poller, S3Subscription
from local_stack.events.schedule import Schedule
from local_stack.events.sqs import SqsPoller
from local_stack.events.streams import StreamPoller
from local_stack.lambda_runtime import LambdaFunction
from local_stack.template import Resolver, TemplateError, referenced_logical_id

log = logging.getLogger("local_stack")


@dataclass
class EventSources:
    threads: list[threading.Thread] = field(default_factory=list)
    schedules: dict[str, list[Schedule]] = field(default_factory=dict)  # by function logical id

    def describe(self) -> list[str]:
        return [t.describe() if isinstance(t, Schedule) else t.name for t in self.threads]


def build_event_sources(
    functions: dict[str, LambdaFunction],
    resources: dict[str, LocalResource],
    resolver: Resolver,
    clients: Any,
    invoker: AsyncInvoker,
    schedule_scale: float,
    stop: threading.Event,
) -> EventSources:
    sources = EventSources()
    s3_subscriptions: dict[str, list[S3Subscription]] = {}
    not_emulated: list[str] = []
    region = resolver.region

    def resource_for(value: Any, what: str, where: str) -> LocalResource:
        resolved = resolver.resolve(value)
        found = next((r for r in resources.values() if resolved in (r.arn, r.stream_arn, r.name, r.url)), None)
        if found is None:
            raise TemplateError(f"{where}: {what} {resolved!r} is not a resource of this template")
        return found

    for function in functions.values():
        for event_name, event in function.spec.events.items():
            kind = event.get("Type")
            props = event.get("Properties") or {}
            where = f"{function.logical_id}.Events.{event_name}"
            enabled = str(resolver.resolve(props.get("Enabled", True))).lower() != "false"
            if kind == "HttpApi":
                continue
            if kind == "S3":
                logical_id = referenced_logical_id(props.get("Bucket"))
                if logical_id not in resources:
                    raise TemplateError(f"{where}: Bucket must be !Ref to an AWS::S3::Bucket of this template")
                subscription = S3Subscription.from_properties(function, event_name, resolver.resolve(props))
                s3_subscriptions.setdefault(logical_id, []).append(subscription)
            elif kind == "SQS":
                if not enabled:
                    continue
                queue = resource_for(props.get("Queue"), "Queue", where)
                sources.threads.append(
                    SqsPoller(
                        function,
                        event_name,
                        queue,
                        batch_size=int(resolver.resolve(props.get("BatchSize", 10))),
                        batching_window=float(resolver.resolve(props.get("MaximumBatchingWindowInSeconds", 0))),
                        report_failures="ReportBatchItemFailures" in (resolver.resolve(props.get("FunctionResponseTypes")) or []),
                        filters=parse_filter_criteria(resolver.resolve(props.get("FilterCriteria"))),
                        sqs=clients.sqs,
                        region=region,
                        stop=stop,
                    )
                )
            elif kind == "DynamoDB":
                if not enabled:
                    continue
                table = resource_for(props.get("Stream"), "Stream", where)
                if not table.stream_arn:
                    raise TemplateError(f"{where}: table {table.logical_id} has no StreamSpecification")
                on_failure = ((resolver.resolve(props.get("DestinationConfig")) or {}).get("OnFailure") or {}).get("Destination")
                failure_queue = resource_for(on_failure, "DestinationConfig.OnFailure.Destination", where) if on_failure else None
                if failure_queue is not None and not failure_queue.url:
                    raise TemplateError(f"{where}: the on-failure destination must be an SQS queue of this template")
                sources.threads.append(
                    StreamPoller(
                        function,
                        event_name,
                        table,
                        starting_position=str(resolver.resolve(props.get("StartingPosition", "LATEST"))),
                        batch_size=int(resolver.resolve(props.get("BatchSize", 100))),
                        report_failures="ReportBatchItemFailures" in (resolver.resolve(props.get("FunctionResponseTypes")) or []),
                        max_retries=int(resolver.resolve(props.get("MaximumRetryAttempts", -1))),
                        filters=parse_filter_criteria(resolver.resolve(props.get("FilterCriteria"))),
                        streams=clients.dynamodbstreams,
                        region=region,
                        stop=stop,
                        bisect=str(resolver.resolve(props.get("BisectBatchOnFunctionError", False))).lower() == "true",
                        on_failure=(clients.sqs, failure_queue.url) if failure_queue is not None else None,
                    )
                )
            elif kind in ("Schedule", "ScheduleV2"):
                schedule = Schedule(function, event_name, kind, resolver.resolve(props), invoker, region, schedule_scale, stop)
                sources.threads.append(schedule)
                sources.schedules.setdefault(function.logical_id, []).append(schedule)
            else:
                not_emulated.append(f"{where} ({kind})")

    for logical_id, subscriptions in s3_subscriptions.items():
        sources.threads.append(S3Poller(resources[logical_id], subscriptions, clients.s3, invoker, region, stop))
    if not_emulated:
        log.warning("event types not emulated locally: %s", ", ".join(not_emulated))
    return sources


def wait_until_ready(threads: list[threading.Thread], timeout: float) -> bool:
    """True once every poller has taken its starting point (S3 baseline, stream iterators)."""
    for thread in threads:
        ready = getattr(thread, "ready", None)
        if ready is not None and not ready.wait(timeout):
            return False
    return True


__all__ = ["AsyncInvoker", "EventSources", "Poller", "build_event_sources", "wait_until_ready"]
