"""The sync queue: one SQS message per (data source, resource type) poll.

Message body: ``{"workspace_id", "data_source_id", "resource_type", "reason", "requested_at"}``
with ``reason`` ``scheduled`` | ``manual`` | ``continuation`` (a poll that ran short of Lambda
time hands the rest on from its checkpoint).
"""

from __future__ import annotations

import json
import os
from typing import Any

from fhir_platform import aws
from fhir_platform.config import ConfigurationError


def sync_queue_url() -> str:
    value = os.environ.get("SYNC_QUEUE_URL")
    if not value:
        raise ConfigurationError("Environment variable SYNC_QUEUE_URL is required but not set")
    return value


class SyncQueue:
    def __init__(self, client: Any | None = None, url: str | None = None) -> None:
        self._client = client
        self._url = url

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("sqs")
        return self._client

    def send(self, ws: str, ds: str, resource_types: list[str], *, reason: str, requested_at: str) -> None:
        bodies = [
            {"workspace_id": ws, "data_source_id": ds, "resource_type": rt, "reason": reason, "requested_at": requested_at}
            for rt in resource_types
        ]
        url = self._url or sync_queue_url()
        for start in range(0, len(bodies), 10):
            batch = bodies[start : start + 10]
            out = self.client.send_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": json.dumps(b)} for i, b in enumerate(batch)]
            )
            if out.get("Failed"):
                raise RuntimeError(f"SQS refused {len(out['Failed'])} sync messages")
