"""Re-index: bring a table written by an older ``INDEX_VERSION`` up to the current one.

An operator's job, never a request path: it walks the table with a parallel ``Scan`` (the only
place the platform scans; DESIGN.md's rule is about requests) and rewrites, per resource, what the
current write path would have written. Run it after deploying a version whose ``INDEX_VERSION``
changed (``docs/write-path.md`` lists, per version, what an older table lacks)::

    TABLE_NAME=<table> python -m fhir_platform.storage.reindex [--workspace ID] [--segments 4]

(``AWS_ENDPOINT_URL`` is honoured, as everywhere.) Per resource (its ``CURRENT`` item, as scanned):

- **live**: every index item of the stored version, computed by the current
  :func:`fhir_platform.search.indexing.index_items` from the stored ``CURRENT`` exactly as the write
  path computes the old version's items, is *put* (not diffed: version 7's date sort mark ``so``
  differs from a version-6 item by that attribute only), and the ``CURRENT`` item gets its
  ``TypeIndex`` attributes (``_sort=_id``). Puts and the ``CURRENT`` update go in transactions of
  ≤ 100 operations, each conditioned on the ``CURRENT`` version read: a resource written meanwhile
  (by the current code, so already complete) is skipped, and a stale version's items are never put
  over a newer version's. A resource with more items than one transaction holds is written in
  several, each conditioned the same way.
- **every event** (deleted resources too): the ``TypeIndex`` attributes of the type's history
  (``GET {type}/_history``), set where missing; events never change, so no condition is needed
  beyond the item existing.

Idempotent: a second run rewrites the same values (and finds no event to update). Items older
versions wrote and the current one never reads (``TH#`` entries, ``sort._id`` and ``sort.{date}``
items, typed reference items) are left in place: harmless, never read.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from fhir_platform.storage import keys
from fhir_platform.storage.base import Repository, cancellation_codes, error_code
from fhir_platform.storage.resources import ResourceStore, StoredResource

MAX_TRANSACTION = 100


@dataclass
class ReindexReport:
    resources: int = 0  # CURRENT items seen
    reindexed: int = 0  # live resources whose index items and TypeIndex attributes were written
    deleted: int = 0  # deleted resources (events only)
    skipped: int = 0  # written meanwhile (by the current code): left as they are
    index_items: int = 0
    events_updated: int = 0
    workspaces: set[str] = field(default_factory=set)

    def add(self, other: "ReindexReport") -> None:
        for name in ("resources", "reindexed", "deleted", "skipped", "index_items", "events_updated"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.workspaces |= other.workspaces

    def as_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k != "workspaces"}, "workspaces": len(self.workspaces)}


def _indexer(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    from fhir_platform.search.indexing import index_items

    return index_items(*args, **kwargs)


class Reindexer(Repository):
    def __init__(self, table: Any | None = None, store: ResourceStore | None = None, indexer: Any = _indexer) -> None:
        super().__init__(table)
        self.store = store or ResourceStore(table)
        self.indexer = indexer

    # ---- the walk -----------------------------------------------------------------------------------

    def run(self, workspace_id: str | None = None, segments: int = 4) -> ReindexReport:
        """Re-index every resource of the table (or of one workspace): ``segments`` parallel Scan
        segments, each re-indexing the resources it finds."""
        report = ReindexReport()
        with ThreadPoolExecutor(max_workers=segments) as pool:
            for part in pool.map(lambda s: self._segment(s, segments, workspace_id), range(segments)):
                report.add(part)
        return report

    def _segment(self, segment: int, segments: int, workspace_id: str | None) -> ReindexReport:
        if segments > 1:  # boto3 resources are not thread-safe: each segment's thread gets its own
            meta = self.table.meta.client.meta
            table = boto3.session.Session().resource("dynamodb", region_name=meta.region_name, endpoint_url=meta.endpoint_url).Table(self.table.name)
            return Reindexer(table, ResourceStore(table), self.indexer)._walk(segment, segments, workspace_id)
        return self._walk(segment, segments, workspace_id)

    def _walk(self, segment: int, segments: int, workspace_id: str | None) -> ReindexReport:
        report = ReindexReport()
        condition = Attr("SK").eq(keys.CURRENT_SK)
        if workspace_id:
            condition &= Attr("PK").begins_with(f"WS#{workspace_id}#R#")
        kwargs: dict[str, Any] = {"FilterExpression": condition, "Segment": segment, "TotalSegments": segments, "ConsistentRead": True}
        while True:
            page = self.table.scan(**kwargs)
            for item in page["Items"]:
                if str(item["PK"]).startswith("WS#") and "#R#" in str(item["PK"]):
                    report.add(self.resource(item))
            if "LastEvaluatedKey" not in page:
                return report
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # ---- one resource -------------------------------------------------------------------------------

    def resource(self, current: dict[str, Any]) -> ReindexReport:
        """Re-index the resource whose ``CURRENT`` item (as read) is ``current``."""
        ws = str(current["PK"]).split("#", 2)[1]
        stored = self.store._to_stored(current)
        report = ReindexReport(resources=1, workspaces={ws})
        report.events_updated = self._events(ws, stored)
        if stored.deleted:
            report.deleted = 1
            return report
        items = self.indexer(
            ws,
            stored.resource_type,
            stored.resource_id,
            stored.data,
            entity_id=stored.entity_id,
            last_updated=stored.last_updated,
            created_at=stored.created_at,
            data_source_id=stored.data_source_id,
        )
        if self._write(ws, stored, items):
            report.reindexed, report.index_items = 1, len(items)
        else:
            report.skipped = 1
        return report

    def _write(self, ws: str, stored: StoredResource, items: list[dict[str, Any]]) -> bool:
        """The index items and the ``CURRENT``'s ``TypeIndex`` attributes, in transactions each
        conditioned on the version read; False when the resource changed meanwhile."""
        name = self.table.name
        current_key = {"PK": keys.resource_pk(ws, stored.resource_type, stored.resource_id), "SK": keys.CURRENT_SK}
        order = keys.id_order_key(ws, stored.resource_type, stored.resource_id)
        update = {
            "Update": {
                "TableName": name,
                "Key": current_key,
                "UpdateExpression": "SET #p = :p, #s = :s",
                "ConditionExpression": "version = :v AND attribute_not_exists(deleted)",
                "ExpressionAttributeNames": {"#p": keys.TYPE_INDEX_PK, "#s": keys.TYPE_INDEX_SK},
                "ExpressionAttributeValues": {":p": order[keys.TYPE_INDEX_PK], ":s": order[keys.TYPE_INDEX_SK], ":v": stored.version},
            }
        }
        check = {
            "ConditionCheck": {
                "TableName": name,
                "Key": current_key,
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": stored.version},
            }
        }
        puts = [{"Put": {"TableName": name, "Item": item}} for item in items]
        first, rest = puts[: MAX_TRANSACTION - 1], puts[MAX_TRANSACTION - 1 :]
        groups = [[update, *first]] + [[check, *rest[i : i + MAX_TRANSACTION - 1]] for i in range(0, len(rest), MAX_TRANSACTION - 1)]
        for group in groups:
            try:
                self.table.meta.client.transact_write_items(TransactItems=group)
            except ClientError as exc:
                if error_code(exc) == "TransactionCanceledException" and "ConditionalCheckFailed" in cancellation_codes(exc):
                    return False  # written meanwhile by the current code: complete already
                raise
        return True

    def _events(self, ws: str, stored: StoredResource) -> int:
        """Set the ``TypeIndex`` attributes on the resource's events that lack them."""
        pk = keys.resource_pk(ws, stored.resource_type, stored.resource_id)
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("PK").eq(pk) & Key("SK").begins_with(keys.VERSION_SK_PREFIX),
            "ProjectionExpression": "PK, SK, version, created_at, #p",
            "ExpressionAttributeNames": {"#p": keys.TYPE_INDEX_PK},
            "ConsistentRead": True,
        }
        updated = 0
        while True:
            page = self.table.query(**kwargs)
            for event in page["Items"]:
                if keys.TYPE_INDEX_PK in event:
                    continue
                at = str(event["created_at"])
                entry = keys.type_history_key(ws, stored.resource_type, stored.resource_id, int(event["version"]), at)
                self.table.update_item(
                    Key={"PK": event["PK"], "SK": event["SK"]},
                    UpdateExpression="SET #p = :p, #s = :s",
                    ConditionExpression="attribute_exists(PK)",
                    ExpressionAttributeNames={"#p": keys.TYPE_INDEX_PK, "#s": keys.TYPE_INDEX_SK},
                    ExpressionAttributeValues={":p": entry[keys.TYPE_INDEX_PK], ":s": entry[keys.TYPE_INDEX_SK]},
                )
                updated += 1
            if "LastEvaluatedKey" not in page:
                return updated
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", help="only this workspace's resources")
    parser.add_argument("--segments", type=int, default=4, help="parallel Scan segments (1-64)")
    args = parser.parse_args(argv)
    if not 1 <= args.segments <= 64:
        parser.error("--segments must be 1..64")
    report = Reindexer().run(args.workspace, args.segments)
    print(json.dumps(report.as_dict()))  # counts only: no ids, no PHI
    return 0


if __name__ == "__main__":
    sys.exit(main())
