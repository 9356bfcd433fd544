"""DynamoDB Streams → Lambda: the event source mapping for ``Type: DynamoDB`` events.

One poller per (function, event) reads the table's stream through the ``dynamodbstreams`` API
(``describe_stream`` → ``get_shard_iterator`` at ``StartingPosition`` → ``get_records``, about every
0.5 s) and invokes the function synchronously with up to ``BatchSize`` records, in order, as Lambda
builds them (``eventName`` INSERT/MODIFY/REMOVE, ``dynamodb.Keys``/``NewImage``/``OldImage`` in
DynamoDB JSON with binary values base64-encoded, ``eventSourceARN``). ``FilterCriteria`` drops
records that match no filter.

Failures, as Lambda handles them: if the handler raises, the batch is retried from its first record;
with ``ReportBatchItemFailures`` it is retried from the lowest sequence number reported (an empty or
unknown identifier fails the whole batch). Re-reading starts at that sequence number, so a retry may
include records written since. After ``MaximumRetryAttempts`` retries (default 3 locally; Lambda's
default of "until the record expires" would retry forever here) the batch is skipped with an error
and, with ``DestinationConfig.OnFailure`` (an SQS queue of the template), Lambda's invocation record
is sent there: ``requestContext.condition`` ``RetryAttemptsExhausted`` and ``DDBStreamBatchInfo``
(shard, first and last sequence numbers, batch size, stream ARN), never the records themselves.
``BisectBatchOnFunctionError``: when the function raises on a batch of more than one record, the
batch is split in half and the first half retried alone (not counted as a retry), down to one
record; the records after it follow in the next batches.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from local_stack.aws_resources import LocalResource
from local_stack.events.base import Poller
from local_stack.events.filters import record_matches
from local_stack.lambda_runtime import FunctionError, LambdaFunction

log = logging.getLogger("local_stack")

LOCAL_DEFAULT_RETRIES = 3


class _Shard:
    def __init__(self, shard_id: str, iterator: str) -> None:
        self.id = shard_id
        self.iterator: str | None = iterator
        self.retry_from: str | None = None  # sequence number being retried
        self.attempts = 0
        self.limit: int | None = None  # a bisected batch's size (None: BatchSize)


class StreamPoller(Poller):
    def __init__(
        self,
        function: LambdaFunction,
        event_name: str,
        table: LocalResource,
        starting_position: str,
        batch_size: int,
        report_failures: bool,
        max_retries: int,
        filters: list[dict[str, Any]],
        streams: Any,
        region: str,
        stop: threading.Event,
        bisect: bool = False,
        on_failure: tuple[Any, str] | None = None,  # (sqs client, queue URL)
    ) -> None:
        super().__init__(f"stream:{table.name}->{function.logical_id}", stop)
        assert table.stream_arn
        self.function = function
        self.event_name = event_name
        self.stream_arn = table.stream_arn
        self.starting_position = "TRIM_HORIZON" if starting_position == "TRIM_HORIZON" else "LATEST"
        self.batch_size = batch_size
        self.report_failures = report_failures
        self.max_retries = LOCAL_DEFAULT_RETRIES if max_retries < 0 else max_retries
        self.filters = filters
        self.streams = streams
        self.region = region
        self.shards: list[_Shard] = []
        self.bisect = bisect
        self.on_failure = on_failure

    def setup(self) -> None:
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        self.shards = [
            _Shard(shard["ShardId"], self._iterator(shard["ShardId"], self.starting_position))
            for shard in description.get("Shards", [])
        ]

    def _iterator(self, shard_id: str, iterator_type: str, sequence_number: str | None = None) -> str:
        request = {"StreamArn": self.stream_arn, "ShardId": shard_id, "ShardIteratorType": iterator_type}
        if sequence_number is not None:
            request["SequenceNumber"] = sequence_number
        return self.streams.get_shard_iterator(**request)["ShardIterator"]

    def poll_once(self) -> bool:
        busy = False
        for shard in self.shards:
            if shard.iterator is None:
                continue
            response = self.streams.get_records(ShardIterator=shard.iterator, Limit=shard.limit or self.batch_size)
            records = [self._record(r) for r in response.get("Records", [])]
            next_iterator = response.get("NextShardIterator")
            if not records:
                shard.iterator = next_iterator
                continue
            busy = True
            self._deliver(shard, records, next_iterator)
        return busy

    def _deliver(self, shard: _Shard, records: list[dict[str, Any]], next_iterator: str | None) -> None:
        matching = [r for r in records if record_matches(self.filters, r)]
        failed_from: str | None = None
        if matching:
            try:
                result = self.function.invoke({"Records": matching})
                failed_from = self._failed_from(result, matching)
            except FunctionError:
                failed_from = matching[0]["dynamodb"]["SequenceNumber"]
                if self.bisect and len(records) > 1:
                    shard.limit = max(1, len(records) // 2)
                    log.info("%s: function error on %d records; bisecting", self.name, len(records))
                    shard.iterator = self._iterator(shard.id, "AT_SEQUENCE_NUMBER", records[0]["dynamodb"]["SequenceNumber"])
                    return
        shard.limit = None
        if failed_from is None:
            shard.iterator, shard.retry_from, shard.attempts = next_iterator, None, 0
            return
        if shard.retry_from == failed_from:
            shard.attempts += 1
        else:
            shard.retry_from, shard.attempts = failed_from, 1
        if shard.attempts > self.max_retries:
            log.error(
                "%s: giving up on %d records after %d retries (from sequence number %s)",
                self.name,
                len(records),
                self.max_retries,
                failed_from,
            )
            self._send_on_failure(shard, records, failed_from)
            shard.iterator, shard.retry_from, shard.attempts = next_iterator, None, 0
            return
        log.info("%s: batch failed from sequence number %s; retry %d of %d", self.name, failed_from, shard.attempts, self.max_retries)
        self.stop.wait(0.2 * shard.attempts)
        shard.iterator = self._iterator(shard.id, "AT_SEQUENCE_NUMBER", failed_from)

    def _send_on_failure(self, shard: _Shard, records: list[dict[str, Any]], failed_from: str) -> None:
        """Lambda's on-failure record for a stream batch it gave up on (metadata only)."""
        if self.on_failure is None:
            return
        sqs, url = self.on_failure
        batch = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) >= int(failed_from)] or records
        arrivals = [r["dynamodb"].get("ApproximateCreationDateTime") for r in batch]
        stamp = lambda t: datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z") if isinstance(t, (int, float)) else None  # noqa: E731
        message = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function.spec.arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": shard.attempts,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "DDBStreamBatchInfo": {
                "shardId": shard.id,
                "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": stamp(arrivals[0]),
                "approximateArrivalOfLastRecord": stamp(arrivals[-1]),
                "batchSize": len(batch),
                "streamArn": self.stream_arn,
            },
        }
        try:
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message))
        except Exception as exc:  # noqa: BLE001 - as in Lambda, a lost on-failure record does not stop the stream
            log.error("%s: could not send the on-failure record (%s)", self.name, type(exc).__name__)

    def _failed_from(self, result: Any, records: list[dict[str, Any]]) -> str | None:
        if not self.report_failures or not isinstance(result, dict) or not result.get("batchItemFailures"):
            return None
        sequence_numbers = {r["dynamodb"]["SequenceNumber"] for r in records}
        failed = []
        for item in result["batchItemFailures"]:
            identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not identifier or identifier not in sequence_numbers:
                log.warning("%s: invalid batchItemFailures entry; the whole batch counts as failed", self.name)
                return records[0]["dynamodb"]["SequenceNumber"]
            failed.append(identifier)
        return min(failed, key=int)

    def _record(self, record: dict[str, Any]) -> dict[str, Any]:
        dynamodb = dict(record["dynamodb"])
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
        for key in ("Keys", "NewImage", "OldImage"):
            if key in dynamodb:
                dynamodb[key] = _json_safe(dynamodb[key])
        return {
            "eventID": record["eventID"],
            "eventName": record["eventName"],
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "dynamodb": dynamodb,
            "eventSourceARN": self.stream_arn,
        }


def _json_safe(value: Any) -> Any:
    """boto3 returns binary attribute values as bytes; Lambda events carry them base64-encoded."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
