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
default of "until the record expires" would retry forever here) the batch is skipped with an error.
"""

from __future__ import annotations

import base64
import logging
import threading
from datetime import datetime
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
            response = self.streams.get_records(ShardIterator=shard.iterator, Limit=self.batch_size)
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
            shard.iterator, shard.retry_from, shard.attempts = next_iterator, None, 0
            return
        log.info("%s: batch failed from sequence number %s; retry %d of %d", self.name, failed_from, shard.attempts, self.max_retries)
        self.stop.wait(0.2 * shard.attempts)
        shard.iterator = self._iterator(shard.id, "AT_SEQUENCE_NUMBER", failed_from)

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
