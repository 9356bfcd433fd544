"""Sync state of the connector: per-type cursor and lease, daily counters, and sync failures.

Item families (see ``keys.py``) and their access patterns:

- ``WS#{ws}#DS#{ds}`` / ``SYNC#{type}`` — one per (source, resource type): ``cursor`` (the
  ``meta.lastUpdated`` the next poll starts from, inclusive), the lease (``lease_owner``,
  ``lease_expires_at``: taken with a conditional write, renewed with each checkpoint, lapses by
  itself if a poll dies), and the last poll's outcome. All types of a source: one Query. For
  deletes (``connector/inbound.py``): ``history_unsupported`` (the EHR answered 400/404/405/501 to
  the type's ``_history``: not asked again) and ``history_since`` (the ``_since`` the next history
  read starts from; kept where it was when a history read fails), recorded with the outcome.
- ``WS#{ws}#DS#{ds}`` / ``DAY#{date}`` and ``TOTAL`` — counters ADDed per stored page
  (``event_count`` new versions, ``synced_count`` resources accepted, ``failed_count``
  failures). ``sync-history?days=n`` is one Query of ≤ 90 items; status is one GetItem.
- ``WS#{ws}#SYNCFAIL`` / ``{type}#{id}#{ds}#{direction}`` — one failure per resource (or per type,
  id ``~``, for a page that could not be fetched), updated on every attempt, ``resolved`` when a
  later sync of the same resource succeeds. A copy under ``WS#{ws}#SYNCFAIL#ID#{id}`` serves the
  ``fhir_resource_id`` filter without a type. Totals: counters ``ALL`` / ``T#{type}`` ADDed when
  a failure item is first created; the type+id filter counts its ≤ 2-item range.
- ``WS#{ws}#DS#{ds}#FAILLOG`` / ``{created_at}#{event_id}`` — every failure event (90-day TTL);
  ``recent_failures`` is one Query, newest first.
- EHR id map (``docs/connector.md``, Outbound). ``WS#{ws}#R#{type}#{id}`` / ``EHR#{ds}`` — the
  resource's id at source ``ds`` (``ehr_id``) and the EHR version last seen (``ehr_version``,
  ``ehr_last_updated``): put by the inbound poll for every resource it accepts (one BatchWriteItem
  per 25) and by every outbound write; read by the outbound writer (GetItem) for the ``If-Match``.
  ``WS#{ws}#DS#{ds}#EHRID#{type}#{ehr_id}`` / ``LINK`` — ``platform_id``, only where the ids differ
  (an outbound POST: the EHR assigned its own); the inbound poll reads these for each page (one
  BatchGetItem per 100 resources) so the EHR's copy is written to the platform's resource.
- ``WS#{ws}#R#{type}#{id}`` / ``OUT#{version}#{ds}`` — outbound idempotency marker of one event
  and source (``state`` pending/done/conflict/uncertain/failed, ``lease_until``, ``method``),
  kept 14 days (TTL): a stream redelivery of a change already written finds it ``done``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from fhir_platform.storage import keys
from fhir_platform.storage.base import Repository, error_code, plain

MARKER_DAYS = 14
NO_ID = "~"  # not a valid FHIR id character: the SK slot of a type-level (page) failure
FAILURE_LOG_DAYS = 90


class SyncRepository(Repository):
    # ---- state, cursor and lease ---------------------------------------------------------------

    def states(self, ws: str, ds: str) -> dict[str, dict[str, Any]]:
        items = self.table.query(
            KeyConditionExpression=Key("PK").eq(keys.data_source_pk(ws, ds)) & Key("SK").begins_with(keys.SYNC_STATE_SK_PREFIX),
            ConsistentRead=True,
        )["Items"]
        return {i["SK"][len(keys.SYNC_STATE_SK_PREFIX) :]: _strip(i) for i in items}

    def acquire(self, ws: str, ds: str, rt: str, owner: str, now: str, expires_at: str) -> dict[str, Any] | None:
        """Take the lease on (source, type): the state with the lease, or ``None`` while another
        poll holds an unexpired lease."""
        try:
            out = self.table.update_item(
                Key={"PK": keys.data_source_pk(ws, ds), "SK": keys.sync_state_sk(rt)},
                UpdateExpression="SET lease_owner = :me, lease_expires_at = :exp, poll_started_at = :now, resource_type = :rt",
                ConditionExpression="attribute_not_exists(lease_expires_at) OR lease_expires_at < :now",
                ExpressionAttributeValues={":me": owner, ":exp": expires_at, ":now": now, ":rt": rt},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return _strip(out["Attributes"])

    def checkpoint(self, ws: str, ds: str, rt: str, owner: str, cursor: str | None, expires_at: str) -> bool:
        """Store the cursor and renew the lease, if the lease is still ours (False: it lapsed and
        another poll took it, so this one must stop)."""
        values: dict[str, Any] = {":me": owner, ":exp": expires_at}
        expr = "SET lease_expires_at = :exp"
        if cursor is not None:
            expr += ", #c = :c"
            values[":c"] = cursor
        try:
            self.table.update_item(
                Key={"PK": keys.data_source_pk(ws, ds), "SK": keys.sync_state_sk(rt)},
                UpdateExpression=expr,
                ConditionExpression="lease_owner = :me",
                ExpressionAttributeValues=values,
                **({"ExpressionAttributeNames": {"#c": "cursor"}} if cursor is not None else {}),
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self, ws: str, ds: str, rt: str, owner: str, outcome: dict[str, Any]) -> None:
        """Drop the lease and record the poll's outcome (only if the lease is still ours)."""
        names = {f"#f{i}": k for i, k in enumerate(outcome)}
        values = {f":v{i}": v for i, v in enumerate(outcome.values())}
        sets = ", ".join(f"#f{i} = :v{i}" for i in range(len(outcome)))
        kwargs: dict[str, Any] = {"ExpressionAttributeNames": names} if names else {}
        try:
            self.table.update_item(
                Key={"PK": keys.data_source_pk(ws, ds), "SK": keys.sync_state_sk(rt)},
                UpdateExpression=(f"SET {sets} " if sets else "") + "REMOVE lease_owner, lease_expires_at",
                ConditionExpression="lease_owner = :me",
                ExpressionAttributeValues={**values, ":me": owner},
                **kwargs,
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    # ---- counters --------------------------------------------------------------------------------

    def count(self, ws: str, ds: str, day: str, *, events: int = 0, synced: int = 0, failed: int = 0) -> None:
        if not (events or synced or failed):
            return
        for sk in (keys.sync_day_sk(day), keys.SYNC_TOTAL_SK):
            self.table.update_item(
                Key={"PK": keys.data_source_pk(ws, ds), "SK": sk},
                UpdateExpression="ADD event_count :e, synced_count :s, failed_count :f",
                ExpressionAttributeValues={":e": events, ":s": synced, ":f": failed},
            )

    def totals(self, ws: str, ds: str) -> dict[str, int]:
        item = self.table.get_item(Key={"PK": keys.data_source_pk(ws, ds), "SK": keys.SYNC_TOTAL_SK}).get("Item") or {}
        return {k: int(item.get(k, 0)) for k in ("event_count", "synced_count", "failed_count")}

    def days(self, ws: str, ds: str, first_day: str, last_day: str) -> dict[str, dict[str, int]]:
        items = self.table.query(
            KeyConditionExpression=Key("PK").eq(keys.data_source_pk(ws, ds))
            & Key("SK").between(keys.sync_day_sk(first_day), keys.sync_day_sk(last_day)),
        )["Items"]
        return {
            i["SK"][4:]: {k: int(i.get(k, 0)) for k in ("event_count", "synced_count", "failed_count")} for i in items
        }

    # ---- failures --------------------------------------------------------------------------------

    def record_failure(
        self, ws: str, ds: str, direction: str, rt: str, rid: str | None, error: str, now: str, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Create the failure, or count one more attempt on it (re-opening a resolved one); and log
        the failure event. Returns the failure."""
        slot = rid or NO_ID
        key = {"PK": keys.sync_failure_pk(ws), "SK": f"{rt}#{slot}#{ds}#{direction}"}
        by_id = {"PK": keys.sync_failure_by_id_pk(ws, rid), "SK": f"{rt}#{ds}#{direction}"} if rid else None
        failure = {
            "id": str(uuid.uuid4()),
            "data_source_id": ds,
            "direction": direction,
            "fhir_resource_type": rt,
            "fhir_resource_id": rid,
            "error": error,
            "attempts": 1,
            "first_failed_at": now,
            "last_failed_at": now,
            "resolved": False,
            **(extra or {}),
        }
        client = self.table.meta.client
        ops: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table.name, "Item": _ser({**key, **failure}), "ConditionExpression": "attribute_not_exists(PK)"}}
        ]
        if by_id:
            ops.append({"Put": {"TableName": self.table.name, "Item": _ser({**by_id, **failure})}})
        for sk in ("ALL", f"T#{rt}"):
            ops.append(
                {
                    "Update": {
                        "TableName": self.table.name,
                        "Key": {"PK": keys.sync_failure_count_pk(ws), "SK": sk},
                        "UpdateExpression": "ADD failures :one",
                        "ExpressionAttributeValues": {":one": 1},
                    }
                }
            )
        try:
            client.transact_write_items(TransactItems=ops)
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            # it exists: one more attempt (both copies)
            set_extra = "".join(f", #x{i} = :x{i}" for i in range(len(extra or {})))
            names = {f"#x{i}": k for i, k in enumerate(extra or {})}
            values = {f":x{i}": v for i, v in enumerate((extra or {}).values())}
            for k in (key, by_id):
                if k is None:
                    continue
                out = self.table.update_item(
                    Key=k,
                    UpdateExpression=f"SET #e = :e, last_failed_at = :now, resolved = :f{set_extra} ADD attempts :one REMOVE resolved_at",
                    ExpressionAttributeNames={"#e": "error", **names},
                    ExpressionAttributeValues={":e": error, ":now": now, ":f": False, ":one": 1, **values},
                    ReturnValues="ALL_NEW",
                )
                if k is key:
                    failure = _strip(out["Attributes"])
        event_id = str(uuid.uuid4())
        expires = int(datetime.now(UTC).timestamp()) + FAILURE_LOG_DAYS * 86400
        self.table.put_item(
            Item=_ser(
                {
                    "PK": keys.failure_log_pk(ws, ds),
                    "SK": f"{now}#{event_id}",
                    "event_id": event_id,
                    "event_type": f"sync_failed_{direction}",
                    "fhir_resource_type": rt,
                    "fhir_resource_id": rid,
                    "sync_error": error,
                    "created_at": now,
                    "ttl": expires,
                }
            )
        )
        return failure

    def open_failures(self, ws: str, ds: str, direction: str, rt: str, rids: list[str | None]) -> list[dict[str, Any]]:
        """The unresolved failures among these resources (one BatchGetItem per 100)."""
        wanted = [{"PK": keys.sync_failure_pk(ws), "SK": f"{rt}#{rid or NO_ID}#{ds}#{direction}"} for rid in rids]
        return [_strip(i) for i in self.batch_get_items(wanted) if not i.get("resolved")]

    def resolve(self, ws: str, failures: list[dict[str, Any]], now: str) -> None:
        for f in failures:
            ds, direction, rt, rid = f["data_source_id"], f["direction"], f["fhir_resource_type"], f.get("fhir_resource_id")
            ks = [{"PK": keys.sync_failure_pk(ws), "SK": f"{rt}#{rid or NO_ID}#{ds}#{direction}"}]
            if rid:
                ks.append({"PK": keys.sync_failure_by_id_pk(ws, rid), "SK": f"{rt}#{ds}#{direction}"})
            for k in ks:
                try:
                    self.table.update_item(
                        Key=k,
                        UpdateExpression="SET resolved = :t, resolved_at = :now",
                        ConditionExpression=Attr("PK").exists(),
                        ExpressionAttributeValues={":t": True, ":now": now},
                    )
                except ClientError as exc:
                    if error_code(exc) != "ConditionalCheckFailedException":
                        raise

    # ---- EHR id map and outbound markers ----------------------------------------------------------

    def platform_ids(self, ws: str, ds: str, rt: str, ehr_ids: list[str]) -> dict[str, str]:
        """``{ehr id: platform id}`` for the EHR resources the platform knows under another id
        (one BatchGetItem per 100)."""
        return {eid: pid for (_, eid), pid in self.platform_refs(ws, ds, [(rt, e) for e in ehr_ids]).items()}

    def platform_refs(self, ws: str, ds: str, refs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """``{(type, ehr id): platform id}`` where they differ (one BatchGetItem per 100)."""
        items = self.batch_get_items([{"PK": keys.ehr_id_pk(ws, ds, rt, e), "SK": keys.EHR_ID_SK} for rt, e in refs])
        return {(i["resource_type"], i["ehr_id"]): i["platform_id"] for i in items}

    def ehr_refs(self, ws: str, ds: str, refs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """``{(type, platform id): ehr id}`` where they differ (one BatchGetItem per 100, projected)."""
        items = self.batch_get_items(
            [{"PK": keys.resource_pk(ws, rt, rid), "SK": keys.ehr_link_sk(ds)} for rt, rid in refs],
            ProjectionExpression="PK, ehr_id",
        )
        out: dict[tuple[str, str], str] = {}
        for item in items:
            rt, rid = item["PK"].split("#R#", 1)[1].split("#", 1)
            if item.get("ehr_id") and item["ehr_id"] != rid:
                out[(rt, rid)] = item["ehr_id"]
        return out

    def ehr_link(self, ws: str, ds: str, rt: str, rid: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"PK": keys.resource_pk(ws, rt, rid), "SK": keys.ehr_link_sk(ds)}, ConsistentRead=True).get("Item")
        return _strip(item) if item else None

    def link_item(self, ws: str, ds: str, rt: str, rid: str, ehr_id: str, version: str | None, last_updated: str | None, now: str) -> dict[str, Any]:
        return _ser(
            {
                "PK": keys.resource_pk(ws, rt, rid),
                "SK": keys.ehr_link_sk(ds),
                "data_source_id": ds,
                "ehr_id": ehr_id,
                "ehr_version": version,
                "ehr_last_updated": last_updated,
                "seen_at": now,
            }
        )

    def reverse_item(self, ws: str, ds: str, rt: str, rid: str, ehr_id: str) -> dict[str, Any]:
        return {"PK": keys.ehr_id_pk(ws, ds, rt, ehr_id), "SK": keys.EHR_ID_SK, "resource_type": rt, "ehr_id": ehr_id, "platform_id": rid}

    def record_links(self, ws: str, ds: str, rt: str, links: list[tuple[str, str, str | None, str | None]], now: str) -> None:
        """Put ``(platform id, ehr id, ehr version, ehr lastUpdated)`` links seen by the inbound
        poll (BatchWriteItem, 25 per call)."""
        if not links:
            return
        with self.table.batch_writer(overwrite_by_pkeys=["PK", "SK"]) as batch:
            for rid, eid, version, last_updated in links:
                batch.put_item(Item=self.link_item(ws, ds, rt, rid, eid, version, last_updated, now))

    def claim_outbound(self, ws: str, rt: str, rid: str, version: int, ds: str, event_id: str, method: str, now: datetime, lease_seconds: int) -> tuple[str, dict[str, Any]]:
        """Take the marker of writing this event to ``ds``: ``("claimed", previous marker or {})``,
        ``("done", marker)`` when a delivery already finished it, ``("busy", marker)`` while another
        delivery holds an unexpired lease."""
        stamp = int(now.timestamp())
        key = {"PK": keys.resource_pk(ws, rt, rid), "SK": keys.outbound_sk(version, ds)}
        try:
            out = self.table.update_item(
                Key=key,
                UpdateExpression="SET #s = :pending, lease_until = :until, event_id = :eid, #m = :m, #t = :ttl ADD attempts :one",
                ConditionExpression="attribute_not_exists(PK) OR #s = :failed OR (#s = :pending AND lease_until < :now)",
                ExpressionAttributeNames={"#s": "state", "#m": "method", "#t": "ttl"},
                ExpressionAttributeValues={
                    ":pending": "pending", ":failed": "failed", ":until": stamp + lease_seconds, ":now": stamp, ":eid": event_id,
                    ":m": method, ":one": 1, ":ttl": stamp + MARKER_DAYS * 86400,
                },
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            item = _strip(self.table.get_item(Key=key, ConsistentRead=True).get("Item") or {})
            return ("busy" if item.get("state") == "pending" else "done"), item
        return "claimed", _strip(out.get("Attributes") or {})

    def outbound_marker_op(self, ws: str, rt: str, rid: str, version: int, ds: str, state: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """A transaction Update setting the marker's final ``state``."""
        values = {":s": state, **{f":x{i}": v for i, v in enumerate((extra or {}).values())}}
        names = {"#s": "state", **{f"#x{i}": k for i, k in enumerate(extra or {})}}
        sets = "".join(f", #x{i} = :x{i}" for i in range(len(extra or {})))
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": {"PK": keys.resource_pk(ws, rt, rid), "SK": keys.outbound_sk(version, ds)},
                "UpdateExpression": f"SET #s = :s{sets} REMOVE lease_until",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def transact(self, ops: list[dict[str, Any]]) -> None:
        self.table.meta.client.transact_write_items(TransactItems=ops)

    def list_failures(
        self, ws: str, rt: str | None, rid: str | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """A page of failures (ordered by type, id, source, direction) and the filtered total."""
        if rid is not None:
            cond = Key("PK").eq(keys.sync_failure_by_id_pk(ws, rid))
            if rt is not None:
                cond = cond & Key("SK").begins_with(f"{rt}#")
            query = {"KeyConditionExpression": cond}
            total = self._count(query)
        else:
            cond = Key("PK").eq(keys.sync_failure_pk(ws))
            if rt is not None:
                cond = cond & Key("SK").begins_with(f"{rt}#")
            query = {"KeyConditionExpression": cond}
            counter = self.table.get_item(
                Key={"PK": keys.sync_failure_count_pk(ws), "SK": "ALL" if rt is None else f"T#{rt}"}
            ).get("Item") or {}
            total = int(counter.get("failures", 0))
        items, has_more = self.query_window(query, offset, limit)
        return [_strip(i) for i in items], total, has_more

    def _count(self, query: dict[str, Any]) -> int:
        total, kwargs = 0, dict(query)
        while True:
            page = self.table.query(**kwargs, Select="COUNT")
            total += page["Count"]
            if "LastEvaluatedKey" not in page:
                return total
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def recent_failures(self, ws: str, ds: str, limit: int = 20) -> list[dict[str, Any]]:
        items = self.table.query(
            KeyConditionExpression=Key("PK").eq(keys.failure_log_pk(ws, ds)), ScanIndexForward=False, Limit=limit
        )["Items"]
        return [_strip(i) for i in items]


def _strip(item: dict[str, Any]) -> dict[str, Any]:
    return {k: plain(v) for k, v in item.items() if k not in ("PK", "SK", "ttl")}


def _ser(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if v is not None}
