"""S3 → Lambda: notifications for the template's ``Type: S3`` events, found by polling.

One poller per bucket lists it (``list_objects_v2``) about every 0.5 s. The first listing is the
baseline: objects present before the stack started are not delivered. Afterwards every object whose
(key, ETag, LastModified) was not seen before produces an ``ObjectCreated:Put`` record, and every
key that disappeared an ``ObjectRemoved:Delete`` record, for each subscribed function whose
``Events`` and ``Filter.S3Key.Rules`` (prefix/suffix) match. Delivery is Lambda's asynchronous
invocation, one record per event, as S3 sends them. The key in the record is URL-encoded the way S3
does it (spaces as ``+``), so handlers decode it with ``urllib.parse.unquote_plus``.

In a bucket with versioning enabled the poller lists object *versions*, as S3 notifies them: two
uploads to one key between two polls are two records, each with its own ``versionId`` (as in AWS,
where a handler reading "the key" instead of the record's version would read the newer upload twice).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote_plus

from local_stack.aws_resources import LocalResource
from local_stack.events.base import AsyncInvoker, Poller
from local_stack.lambda_runtime import LambdaFunction

log = logging.getLogger("local_stack")


@dataclass
class S3Subscription:
    function: LambdaFunction
    event_name: str  # the template's event name
    events: list[str]  # e.g. ["s3:ObjectCreated:*"]
    prefix: str = ""
    suffix: str = ""

    @classmethod
    def from_properties(cls, function: LambdaFunction, event_name: str, props: dict[str, Any]) -> S3Subscription:
        events = props.get("Events") or []
        events = [events] if isinstance(events, str) else list(events)
        prefix = suffix = ""
        for rule in ((props.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []:
            if str(rule.get("Name", "")).lower() == "prefix":
                prefix = rule.get("Value", "")
            elif str(rule.get("Name", "")).lower() == "suffix":
                suffix = rule.get("Value", "")
        return cls(function, event_name, events, prefix, suffix)

    def wants(self, event_name: str, key: str) -> bool:
        kind = event_name.split(":")[0]
        subscribed = any(e in (f"s3:{event_name}", f"s3:{kind}:*") for e in self.events)
        return subscribed and key.startswith(self.prefix) and key.endswith(self.suffix)


class S3Poller(Poller):
    def __init__(
        self,
        bucket: LocalResource,
        subscriptions: list[S3Subscription],
        s3: Any,
        invoker: AsyncInvoker,
        region: str,
        stop: threading.Event,
    ) -> None:
        super().__init__(f"s3:{bucket.name}", stop)
        self.bucket = bucket
        self.subscriptions = subscriptions
        self.s3 = s3
        self.invoker = invoker
        self.region = region
        self.versioned = ((bucket.properties.get("VersioningConfiguration") or {}).get("Status")) == "Enabled"
        # (key, version id or None) -> (ETag, LastModified, size); and the keys that have a current object
        self.seen: dict[tuple[str, str | None], tuple[str, Any, int]] = {}
        self.current: set[str] = set()

    def setup(self) -> None:
        self.seen, self.current = self._listing()

    def poll_once(self) -> bool:
        listed, current = self._listing()
        created = [(k, v) for k, v in listed.items() if self.seen.get(k) != v]
        removed = self.current - current
        self.seen, self.current = listed, current
        for (key, version), (etag, modified, size) in sorted(created, key=lambda kv: kv[1][1]):
            self._notify("ObjectCreated:Put", key, etag, size, modified, version)
        for key in sorted(removed):
            self._notify("ObjectRemoved:Delete", key, None, None, datetime.now(timezone.utc))
        return False

    def _listing(self) -> tuple[dict[tuple[str, str | None], tuple[str, Any, int]], set[str]]:
        objects: dict[tuple[str, str | None], tuple[str, Any, int]] = {}
        current: set[str] = set()
        if self.versioned:
            for page in self.s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket.name):
                for obj in page.get("Versions", []):
                    objects[(obj["Key"], obj["VersionId"])] = (obj["ETag"].strip('"'), obj["LastModified"], obj["Size"])
                    if obj.get("IsLatest"):
                        current.add(obj["Key"])
            return objects, current
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket.name):
            for obj in page.get("Contents", []):
                objects[(obj["Key"], None)] = (obj["ETag"].strip('"'), obj["LastModified"], obj["Size"])
                current.add(obj["Key"])
        return objects, current

    def _notify(
        self, event_name: str, key: str, etag: str | None, size: int | None, when: datetime, version: str | None = None
    ) -> None:
        for subscription in self.subscriptions:
            if subscription.wants(event_name, key):
                event = {"Records": [self._record(event_name, key, etag, size, when, version)]}
                self.invoker.submit(subscription.function, event, f"S3 {subscription.event_name}")

    def _record(
        self, event_name: str, key: str, etag: str | None, size: int | None, when: datetime, version: str | None = None
    ) -> dict[str, Any]:
        obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "sequencer": f"{time.time_ns():X}"}
        if etag is not None:
            obj.update({"size": size, "eTag": etag})
        if version is not None:
            obj["versionId"] = version
        return {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": self.region,
            "eventTime": when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "eventName": event_name,
            "userIdentity": {"principalId": "AWS:LOCALSTACKUSER"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": uuid.uuid4().hex[:16].upper(), "x-amz-id-2": uuid.uuid4().hex},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "local-stack",
                "bucket": {
                    "name": self.bucket.name,
                    "ownerIdentity": {"principalId": "LOCALSTACKOWNER"},
                    "arn": self.bucket.arn,
                },
                "object": obj,
            },
        }
