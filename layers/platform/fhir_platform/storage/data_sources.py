"""Data sources: META items, their scheduler due entries, and the per-workspace count.

Item families (see ``keys.py``):

- ``WS#{ws}`` / ``DS#{ds}`` — the data source (config, schedule, is_active, last sync outcome,
  ``due_at`` and ``type_last_queued`` for the scheduler). A workspace holds at most
  :data:`MAX_DATA_SOURCES`, so listing one workspace's sources is one Query of a small partition
  range (filters and paging are applied to that bounded set).
- ``DUE#{shard}`` / ``{due_at}#{ws}#{ds}`` — one entry per active scheduled source, at the instant
  it next has a type to sync. The scheduler queries ``SK <= now`` on each shard, so a run reads the
  due sources only, never the ones that are not due. The entry moves (delete + put) in the same
  transaction that records what was queued.
- the workspace META carries ``data_source_count`` (ADD ±1 in the create/delete transaction,
  conditioned on the cap).
"""

from __future__ import annotations

import zlib
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from fhir_platform.errors import Conflict, NotFound
from fhir_platform.storage import keys
from fhir_platform.storage.base import Repository, cancellation_codes, error_code, plain, stored

MAX_DATA_SOURCES = 100
_INTERNAL = ("PK", "SK")


def due_shard(ds: str) -> int:
    return zlib.crc32(ds.encode()) % keys.DUE_SHARDS


def due_key(ws: str, ds: str, due_at: str) -> dict[str, str]:
    return {"PK": keys.due_pk(due_shard(ds)), "SK": f"{due_at}#{ws}#{ds}"}


class DataSourceRepository(Repository):
    # ---- reads -----------------------------------------------------------------------------------

    def get(self, ws: str, ds: str) -> dict[str, Any]:
        item = self.table.get_item(
            Key={"PK": keys.workspace_pk(ws), "SK": keys.data_source_sk(ds)}, ConsistentRead=True
        ).get("Item")
        if not item:
            raise NotFound(f"Data source {ds} not found")
        return _strip(item)

    def list_all(self, ws: str) -> list[dict[str, Any]]:
        """Every source of the workspace (≤ MAX_DATA_SOURCES items: one or two Query pages)."""
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("PK").eq(keys.workspace_pk(ws)) & Key("SK").begins_with(keys.DATA_SOURCE_SK_PREFIX),
            "ConsistentRead": True,
        }
        items: list[dict[str, Any]] = []
        while True:
            page = self.table.query(**query)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return [_strip(i) for i in items]
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def due(self, now: str, limit: int = 100) -> list[tuple[str, str, str]]:
        """``(ws, ds, due_at)`` of sources due at ``now``: one Query per shard, reading due entries only."""
        out: list[tuple[str, str, str]] = []
        for shard in range(keys.DUE_SHARDS):
            page = self.table.query(
                KeyConditionExpression=Key("PK").eq(keys.due_pk(shard)) & Key("SK").lte(f"{now}#~"),
                Limit=limit,
            )
            for item in page["Items"]:
                due_at, ws, ds = item["SK"].split("#", 2)
                out.append((ws, ds, due_at))
        return out

    def get_many(self, refs: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        found = self.batch_get_items([{"PK": keys.workspace_pk(ws), "SK": keys.data_source_sk(ds)} for ws, ds in refs])
        return {(i["workspace_id"], i["id"]): _strip(i) for i in found}

    # ---- writes ----------------------------------------------------------------------------------

    def create(self, source: dict[str, Any]) -> dict[str, Any]:
        ws, ds = source["workspace_id"], source["id"]
        item = {"PK": keys.workspace_pk(ws), "SK": keys.data_source_sk(ds), **source}
        ops: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table.name, "Item": _ser(item), "ConditionExpression": "attribute_not_exists(PK)"}},
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": {"PK": keys.workspace_pk(ws), "SK": keys.WORKSPACE_SK},
                    "UpdateExpression": "ADD data_source_count :one",
                    "ConditionExpression": "attribute_exists(PK) AND (attribute_not_exists(data_source_count) OR data_source_count < :max)",
                    "ExpressionAttributeValues": {":one": 1, ":max": MAX_DATA_SOURCES},
                }
            },
        ]
        if source.get("due_at"):
            ops.append({"Put": {"TableName": self.table.name, "Item": due_key(ws, ds, source["due_at"])}})
        try:
            self.table.meta.client.transact_write_items(TransactItems=ops)
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException" and cancellation_codes(exc)[1:2] == ["ConditionalCheckFailed"]:
                raise Conflict(f"A workspace can have at most {MAX_DATA_SOURCES} data sources") from None
            raise
        return source

    def update(self, ws: str, ds: str, changes: dict[str, Any], old_due: str | None, new_due: str | None) -> dict[str, Any]:
        """SET ``changes`` (``None`` values are removed) and move the due entry, atomically."""
        changes = {**changes, "due_at": new_due}
        names = {f"#f{i}": k for i, k in enumerate(changes)}
        sets = [f"#f{i} = :v{i}" for i, v in enumerate(changes.values()) if v is not None]
        removes = [f"#f{i}" for i, v in enumerate(changes.values()) if v is None]
        values = {f":v{i}": stored(v) for i, v in enumerate(changes.values()) if v is not None}
        expr = ("SET " + ", ".join(sets) if sets else "") + (" REMOVE " + ", ".join(removes) if removes else "")
        update: dict[str, Any] = {
            "TableName": self.table.name,
            "Key": {"PK": keys.workspace_pk(ws), "SK": keys.data_source_sk(ds)},
            "UpdateExpression": expr,
            "ConditionExpression": "attribute_exists(PK)",
            "ExpressionAttributeNames": names,
        }
        if values:
            update["ExpressionAttributeValues"] = values
        ops: list[dict[str, Any]] = [{"Update": update}]
        if old_due != new_due:
            if old_due:
                ops.append({"Delete": {"TableName": self.table.name, "Key": due_key(ws, ds, old_due)}})
            if new_due:
                ops.append({"Put": {"TableName": self.table.name, "Item": due_key(ws, ds, new_due)}})
        self._transact_on_source(ops, ds)
        return self.get(ws, ds)

    def delete(self, ws: str, ds: str, due_at: str | None) -> None:
        ops: list[dict[str, Any]] = [
            {
                "Delete": {
                    "TableName": self.table.name,
                    "Key": {"PK": keys.workspace_pk(ws), "SK": keys.data_source_sk(ds)},
                    "ConditionExpression": "attribute_exists(PK)",
                }
            },
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": {"PK": keys.workspace_pk(ws), "SK": keys.WORKSPACE_SK},
                    "UpdateExpression": "ADD data_source_count :minus",
                    "ExpressionAttributeValues": {":minus": -1},
                }
            },
        ]
        if due_at:
            ops.append({"Delete": {"TableName": self.table.name, "Key": due_key(ws, ds, due_at)}})
        self._transact_on_source(ops, ds)

    def _transact_on_source(self, ops: list[dict[str, Any]], ds: str) -> None:
        """A transaction whose first operation is conditioned on the source existing."""
        try:
            self.table.meta.client.transact_write_items(TransactItems=ops)
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException" and cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
                raise NotFound(f"Data source {ds} not found") from None
            raise

    def mark_queued(self, ws: str, ds: str, types: list[str], now: str, old_due: str, new_due: str | None) -> bool:
        """Record that ``types`` were queued at ``now`` and move the due entry — only if the source
        still has ``old_due`` (a concurrent PATCH or delete wins). False when it did not."""
        names = {"#q": "type_last_queued", "#d": "due_at"}
        sets = []
        values: dict[str, Any] = {":old": old_due}
        for i, t in enumerate(types):
            names[f"#t{i}"] = t
            values[":now"] = now
            sets.append(f"#q.#t{i} = :now")
        if new_due:
            sets.append("#d = :new")
            values[":new"] = new_due
        expr = "SET " + ", ".join(sets) if sets else ""
        if not new_due:
            expr += " REMOVE #d"
        ops: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": {"PK": keys.workspace_pk(ws), "SK": keys.data_source_sk(ds)},
                    "UpdateExpression": expr.strip(),
                    "ConditionExpression": "#d = :old",
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            },
            {"Delete": {"TableName": self.table.name, "Key": due_key(ws, ds, old_due)}},
        ]
        if new_due and new_due != old_due:
            ops.append({"Put": {"TableName": self.table.name, "Item": due_key(ws, ds, new_due)}})
        try:
            self.table.meta.client.transact_write_items(TransactItems=ops)
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException":
                return False
            raise
        return True

    def drop_due(self, ws: str, ds: str, due_at: str) -> None:
        """Remove a due entry whose source is gone or moved (the scheduler's clean-up)."""
        self.table.delete_item(Key=due_key(ws, ds, due_at))

    def record_sync(self, ws: str, ds: str, fields: dict[str, Any]) -> None:
        """The latest poll outcome on the META item (SET only: never clobbers the config)."""
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values = {f":v{i}": v for i, v in enumerate(fields.values())}
        try:
            self.table.update_item(
                Key={"PK": keys.workspace_pk(ws), "SK": keys.data_source_sk(ds)},
                UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields))),
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":  # deleted while polling: nothing to record
                raise


def _strip(item: dict[str, Any]) -> dict[str, Any]:
    return {k: plain(v) for k, v in item.items() if k not in _INTERNAL}


def _ser(item: dict[str, Any]) -> dict[str, Any]:
    return {k: stored(v) for k, v in item.items() if v is not None}
