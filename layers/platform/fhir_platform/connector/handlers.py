"""Event handlers of the connector: EventBridge schedule → scheduler, SQS → inbound poll worker,
DynamoDB stream → outbound writer."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fhir_platform.observability import count

if TYPE_CHECKING:  # each function imports only its own side (the scheduler never loads the write path)
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from fhir_platform.connector.inbound import InboundPoller
    from fhir_platform.connector.outbound import OutboundWriter
    from fhir_platform.connector.scheduler import Scheduler


def handle_schedule_event(event: dict[str, Any], scheduler: Scheduler) -> dict[str, Any]:
    run = scheduler.run()
    count("SyncPollsQueued", len(run.queued))
    return {"due_sources": run.due_sources, "queued": len(run.queued), "dropped": run.dropped}


def handle_sync_event(event: dict[str, Any], context: Any, poller: InboundPoller) -> dict[str, Any]:
    """One message = one poll. EHR faults are recorded by the poll itself (sync failures, cursor
    held); only unexpected errors fail the record, which SQS then retries and dead-letters."""

    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    def remaining() -> int:
        getter = getattr(context, "get_remaining_time_in_millis", None)
        return int(getter()) if callable(getter) else 10**9

    def record_handler(record: SQSRecord) -> None:
        body = json.loads(record.body)
        poller.poll(body["workspace_id"], body["data_source_id"], body["resource_type"], remaining_ms=remaining)

    return process_partial_response(
        event=event,
        record_handler=record_handler,
        processor=BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False),
        context=context,
    )


def handle_outbound_event(event: dict[str, Any], writer: OutboundWriter) -> dict[str, Any]:
    """A batch of stream records → the EHR. A change that did not reach it (EHR faults past the
    client's retries) is reported with every record after it (``ReportBatchItemFailures``), so the
    stream retries from there, in order; conflicts and skips are final. Unexpected errors raise
    (the whole batch is retried, bisected)."""
    result = writer.handle(event.get("Records") or [])
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in result.failed]}
