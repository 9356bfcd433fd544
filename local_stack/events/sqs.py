"""SQS → Lambda: the event source mapping for the template's ``Type: SQS`` events.

One poller per (function, event) long-polls ``ReceiveMessage`` (up to ``BatchSize``, all system and
message attributes) and invokes the function synchronously with the records Lambda would build.
Messages that ``FilterCriteria`` rejects are deleted without invoking (as Lambda does). After the
invocation: with ``FunctionResponseTypes: [ReportBatchItemFailures]``, every message not listed in
``batchItemFailures`` is deleted (an empty, unknown or malformed identifier fails the whole batch);
if the handler raises, nothing is deleted. Undeleted messages become visible again after the queue's
visibility timeout, and moto's redrive policy moves a message to the DLQ on the receive after
``maxReceiveCount`` (checked by ``tests/local_stack``).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from typing import Any

from local_stack.aws_resources import LocalResource
from local_stack.events.base import Poller
from local_stack.events.filters import record_matches, sqs_filter_view
from local_stack.lambda_runtime import FunctionError, LambdaFunction

log = logging.getLogger("local_stack")


class SqsPoller(Poller):
    interval = 0.0  # the long poll waits

    def __init__(
        self,
        function: LambdaFunction,
        event_name: str,
        queue: LocalResource,
        batch_size: int,
        batching_window: float,
        report_failures: bool,
        filters: list[dict[str, Any]],
        sqs: Any,
        region: str,
        stop: threading.Event,
    ) -> None:
        super().__init__(f"sqs:{queue.name}->{function.logical_id}", stop)
        self.function = function
        self.event_name = event_name
        self.queue = queue
        self.batch_size = batch_size
        self.batching_window = batching_window
        self.report_failures = report_failures
        self.filters = filters
        self.sqs = sqs
        self.region = region

    def poll_once(self) -> bool:
        messages = self._receive(min(10, self.batch_size), wait=1)
        if not messages:
            return False
        deadline = time.monotonic() + self.batching_window
        while len(messages) < self.batch_size and time.monotonic() < deadline and not self.stop.is_set():
            more = self._receive(min(10, self.batch_size - len(messages)), wait=max(0, min(1, int(deadline - time.monotonic()))))
            messages.extend(more)
        records = [self._record(m) for m in messages]
        matching = [r for r in records if record_matches(self.filters, sqs_filter_view(r))]
        to_delete = [r for r in records if r not in matching]
        if matching:
            try:
                result = self.function.invoke({"Records": matching})
            except FunctionError:
                log.info("%s: batch of %d failed; messages return after the visibility timeout", self.name, len(matching))
                self._delete_messages(to_delete)
                return True
            failed = self._failed_ids(result, matching)
            if failed:
                log.info("%s: %d of %d messages reported as failed", self.name, len(failed), len(matching))
            to_delete += [r for r in matching if r["messageId"] not in failed]
        self._delete_messages(to_delete)
        return True

    def _receive(self, count: int, wait: int) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue.url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return response.get("Messages", [])

    def _failed_ids(self, result: Any, records: list[dict[str, Any]]) -> set[str]:
        if not self.report_failures or not isinstance(result, dict) or not result.get("batchItemFailures"):
            return set()
        all_ids = {r["messageId"] for r in records}
        failed = set()
        for item in result["batchItemFailures"]:
            identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not identifier or identifier not in all_ids:
                log.warning("%s: invalid batchItemFailures entry; the whole batch counts as failed", self.name)
                return all_ids
            failed.add(identifier)
        return failed

    def _delete_messages(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            response = self.sqs.delete_message_batch(
                QueueUrl=self.queue.url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
            )
            if response.get("Failed"):
                log.warning("%s: %d messages could not be deleted", self.name, len(response["Failed"]))

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {name: _attribute(value) for name, value in message.get("MessageAttributes", {}).items()},
            "md5OfBody": message.get("MD5OfBody"),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue.arn,
            "awsRegion": self.region,
        }
        if message.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [base64.b64encode(v).decode() for v in value.get("BinaryListValues", [])],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return out
