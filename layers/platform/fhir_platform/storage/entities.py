"""World-model entity items (docs/entities.md): the bounded reads the resolver needs, and every
write-time item as a TransactWriteItems operation, so resolution commits in the resource's own
transaction.

Reads (each bounded whatever the workspace size):

- :meth:`EntityStore.blocking_members` — the members of up to
  :data:`~fhir_platform.world.blocking.MAX_KEYS_PER_RECORD` keys: one Query per key with
  ``Limit = MAX_MEMBERS_PER_KEY + 1``, issued together from a small thread pool (the latency of
  one Query, not of eight); a key answering more than ``MAX_MEMBERS_PER_KEY`` items is
  *saturated* and skipped (too common to tell records apart). ≤ 14 Queries, ≤ 700 members.
- :meth:`EntityStore.current_entities` — anchor → current entity: one consistent BatchGetItem of
  ``ALIAS`` items per 100 distinct anchors (no alias → the anchor itself).
- :meth:`EntityStore.not_together` — the ``NOT#`` items of one entity (one Query, capped).
- :meth:`EntityStore.current_link` — a resource's current entity, its link item and that entity's
  ``META``: one BatchGetItem (``ALIAS`` + ``META`` + ``LINK`` in the anchor's partition), plus a
  second one only when an alias points elsewhere.

Writes are built by :class:`EntityOps` as low-level ``TransactItems`` entries (``Put`` /
``Update`` / ``Delete`` with the table name), appended to the resource change by the resolver
(``ResourceChange.extra_ops``). Conditions keep concurrent writers honest: a new entity's ``META``
is ``attribute_not_exists``; a member joins only an ``active`` entity; a member leaves on the
``member_count`` it read; a link is moved only if it is still there and not pinned. A failed
condition cancels the resource's transaction, which the write path re-reads and retries.
"""

from __future__ import annotations

import json
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.conditions import Key

from fhir_platform.storage import keys
from fhir_platform.storage.base import Repository, plain
from fhir_platform.world.blocking import MAX_KEYS_PER_RECORD, MAX_MEMBERS_PER_KEY
from fhir_platform.world.entities import CurrentLink

MAX_NOT_ITEMS = 500  # never-together items read per entity (a reviewer's rejections of one entity)

_EVENT_NS = uuid.UUID("0b8a4f0e-7f3c-4a55-8c59-3c5b2b7a9d11")


@dataclass(frozen=True)
class BlockingMember:
    resource_type: str
    resource_id: str
    anchor_id: str
    features: dict[str, Any]

    @property
    def record_id(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


@dataclass
class BlockingRead:
    members: list[BlockingMember] = field(default_factory=list)  # distinct records, first-seen order
    saturated: list[str] = field(default_factory=list)  # keys skipped: more than the cap
    per_key: dict[str, list[str]] = field(default_factory=dict)  # key -> record ids (non-saturated keys)
    calls: int = 0


class EntityStore(Repository):
    """Reads of the entity item families, and :attr:`ops` to build their transaction operations."""

    @property
    def ops(self) -> EntityOps:
        return EntityOps(self.table.name)

    # ---- reads -------------------------------------------------------------------------------

    def blocking_members(
        self, ws: str, entity_type: str, block_keys: list[str], max_members: int = MAX_MEMBERS_PER_KEY
    ) -> BlockingRead:
        """Members of each key: one Query per key (``Limit`` cap + 1, features projected); keys
        holding more than ``max_members`` are saturated and contribute nothing."""
        out = BlockingRead()
        seen: dict[str, BlockingMember] = {}
        distinct = list(dict.fromkeys(block_keys))
        pks = [keys.blocking_pk(ws, entity_type, key) for key in distinct]
        if len(pks) > 1:  # the Queries are independent: issue them together (latency of one, not 8)
            pages = list(_pool().map(lambda pk: self._members_page(pk, max_members + 1), pks))
        else:
            pages = [self._members_page(pk, max_members + 1) for pk in pks]
        for key, items in zip(distinct, pages):
            out.calls += 1
            if len(items) > max_members:
                out.saturated.append(key)
                continue
            ids: list[str] = []
            for item in items:
                member = _member(item)
                ids.append(member.record_id)
                seen.setdefault(member.record_id, member)
            out.per_key[key] = ids
        out.members = list(seen.values())
        return out

    def keys_in_use(self, ws: str, entity_keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which ``(entity_type, key)`` pairs have a presence item (a directory key some record
        was ever put under): one consistent BatchGetItem per 100 distinct keys. A key not in the
        answer has no members, so its Query can be skipped."""
        distinct = list(dict.fromkeys(entity_keys))
        by_pk = {keys.blocking_presence_pk(ws, et, k): (et, k) for et, k in distinct}
        found = self.batch_get_items([{"PK": pk, "SK": keys.BLOCKING_PRESENCE_SK} for pk in by_pk], ProjectionExpression="PK")
        return {by_pk[i["PK"]] for i in found if i["PK"] in by_pk}

    def _members_page(self, pk: str, limit: int) -> list[dict[str, Any]]:
        """One Query through the low-level client (thread-safe, unlike the Table resource)."""
        return self.table.meta.client.query(
            TableName=self.table.name,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": pk},
            Limit=limit,
            ConsistentRead=True,
        )["Items"]

    def current_entities(self, ws: str, anchors: list[str]) -> dict[str, str]:
        """anchor → current entity id (the alias' target, else the anchor): one consistent
        BatchGetItem per 100 distinct anchors."""
        distinct = list(dict.fromkeys(a for a in anchors if a))
        out = {a: a for a in distinct}
        if not distinct:
            return out
        for item in self.batch_get_items(
            [{"PK": keys.entity_pk(ws, a), "SK": keys.ALIAS_SK} for a in distinct],
            ProjectionExpression="PK, entity_id",
        ):
            anchor = item["PK"].rsplit("#E#", 1)[1]
            if item.get("entity_id"):
                out[anchor] = item["entity_id"]
        return out

    def not_together(self, ws: str, entity_id: str) -> set[str]:
        """Entities never to be linked with or proposed for ``entity_id`` (rejections, splits)."""
        page = self.table.query(
            KeyConditionExpression=Key("PK").eq(keys.entity_pk(ws, entity_id)) & Key("SK").begins_with(keys.ENTITY_NOT_SK_PREFIX),
            ProjectionExpression="SK",
            Limit=MAX_NOT_ITEMS,
            ConsistentRead=True,
        )
        return {i["SK"][len(keys.ENTITY_NOT_SK_PREFIX) :] for i in page["Items"]}

    def current_link(self, ws: str, resource_type: str, resource_id: str, anchor_id: str) -> CurrentLink:
        """The resource's current entity, link item and entity META (1 BatchGetItem, 2 when aliased)."""
        return self.current_links(ws, [(resource_type, resource_id, anchor_id)])[f"{resource_type}/{resource_id}"]

    def current_links(self, ws: str, records: list[tuple[str, str, str]]) -> dict[str, CurrentLink]:
        """:meth:`current_link` of many ``(type, id, anchor)`` records, keyed ``"Type/id"``: one
        consistent BatchGetItem per 33 records (3 keys each: the anchor's ALIAS and META, the link),
        then one per 50 aliased records (the alias target's META and link)."""
        pairs = []
        for rt, rid, anchor in records:
            apk = keys.entity_pk(ws, anchor)
            pairs += [(apk, keys.ALIAS_SK), (apk, keys.ENTITY_SK), (apk, keys.entity_link_sk(rt, rid))]
        found = self._get_many(list(dict.fromkeys(pairs)))
        out: dict[str, CurrentLink] = {}
        aliased: list[tuple[str, str, str, str]] = []
        for rt, rid, anchor in records:
            apk, link_sk = keys.entity_pk(ws, anchor), keys.entity_link_sk(rt, rid)
            alias = (found.get((apk, keys.ALIAS_SK)) or {}).get("entity_id")
            anchor_meta = found.get((apk, keys.ENTITY_SK))
            if not alias or alias == anchor:
                out[f"{rt}/{rid}"] = CurrentLink(anchor, anchor, None, found.get((apk, link_sk)), anchor_meta, anchor_meta is not None)
            else:
                aliased.append((rt, rid, anchor, alias))
        if aliased:
            wanted = []
            for rt, rid, _, alias in aliased:
                epk = keys.entity_pk(ws, alias)
                wanted += [(epk, keys.ENTITY_SK), (epk, keys.entity_link_sk(rt, rid))]
            more = self._get_many(list(dict.fromkeys(wanted)))
            for rt, rid, anchor, alias in aliased:
                epk, link_sk = keys.entity_pk(ws, alias), keys.entity_link_sk(rt, rid)
                anchor_meta = found.get((keys.entity_pk(ws, anchor), keys.ENTITY_SK))
                out[f"{rt}/{rid}"] = CurrentLink(anchor, alias, alias, more.get((epk, link_sk)), more.get((epk, keys.ENTITY_SK)), anchor_meta is not None)
        return out

    def entity(self, ws: str, entity_id: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"PK": keys.entity_pk(ws, entity_id), "SK": keys.ENTITY_SK}, ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def world_settings(self, ws: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None, bool]:
        """(the workspace's ``world_thresholds`` override or None, the stored model parameters item
        or None, whether its Patient keys have presence items — ``WORLD#PATIENT_KEYS``): one
        BatchGetItem."""
        wpk = keys.workspace_pk(ws)
        found = self._get_many(
            [(wpk, keys.WORKSPACE_SK), (wpk, keys.WORLD_PARAMS_SK), (wpk, keys.PATIENT_KEYS_SK)],
            projection=("world_thresholds", "params", "records", "next_refresh_at", "estimated_at"),
        )
        meta = found.get((wpk, keys.WORKSPACE_SK)) or {}
        return meta.get("world_thresholds"), found.get((wpk, keys.WORLD_PARAMS_SK)), (wpk, keys.PATIENT_KEYS_SK) in found

    def recent_patients(self, ws: str, limit: int, resources: Any) -> list[dict[str, Any]]:
        """The data of up to ``limit`` most recently written Patients, for re-estimating the model:
        the ``_lastUpdated`` index's 8 shards newest first (one Query each, ``Limit`` = limit / 8
        rounded up, more pages only up to that), then their current versions (BatchGetItem, 100 per
        call) through ``resources`` (a ``ResourceStore``). Bounded by ``limit``, never a Scan."""
        from fhir_platform.search.indexing import LAST_UPDATED, ORDERED_SHARDS, ordered_pk

        per_shard = -(-limit // ORDERED_SHARDS)
        ids: list[str] = []
        for shard in range(ORDERED_SHARDS):
            query = {"KeyConditionExpression": Key("PK").eq(ordered_pk(ws, "Patient", LAST_UPDATED, shard)), "ScanIndexForward": False, "ProjectionExpression": "id"}
            items, _ = self.query_window(query, 0, per_shard)
            ids += [i["id"] for i in items]
        found = resources.batch_get(ws, [("Patient", i) for i in ids[:limit]])
        return [r.data for r in found.values() if not r.deleted]

    def put_parameters(self, ws: str, params_json: str, records: int, next_refresh_at: int, estimated_at: str) -> None:
        self.table.put_item(
            Item={
                "PK": keys.workspace_pk(ws),
                "SK": keys.WORLD_PARAMS_SK,
                "params": params_json,
                "records": records,
                "next_refresh_at": next_refresh_at,
                "estimated_at": estimated_at,
            }
        )

    def _get_many(self, pairs: list[tuple[str, str]], projection: tuple[str, ...] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        options: dict[str, Any] = {}
        if projection:
            names = {f"#p{i}": p for i, p in enumerate(("PK", "SK", *projection))}
            options = {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
        items = self.batch_get_items([{"PK": pk, "SK": sk} for pk, sk in pairs], **options)
        return {(i["PK"], i["SK"]): plain(i) for i in items}


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """Threads for one record's blocking Queries (boto3 clients are thread-safe); one pool per
    execution environment."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=MAX_KEYS_PER_RECORD, thread_name_prefix="blocking")
    return _POOL


def _member(item: dict[str, Any]) -> BlockingMember:
    features = item.get("features")
    return BlockingMember(
        resource_type=item["resource_type"],
        resource_id=item["resource_id"],
        anchor_id=item["anchor_id"],
        features=json.loads(features) if isinstance(features, str) else {},
    )


def grade(confidence: float, link: float, review: float) -> str:
    """FHIR match grade of a candidate: ``certain`` at or above the link threshold, ``probable`` in
    the review band, ``possible`` below it."""
    return "certain" if confidence >= link else "probable" if confidence >= review else "possible"


def event_id(*parts: str) -> str:
    """Deterministic id of an entity history event (a retried write writes the same event)."""
    return str(uuid.uuid5(_EVENT_NS, "/".join(parts)))


class EntityOps:
    """Transaction operations (``TransactItems`` entries) of the entity item families."""

    def __init__(self, table_name: str) -> None:
        self.table = table_name

    def _put(self, item: dict[str, Any], condition: str | None = None, **expr: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"TableName": self.table, "Item": _clean(item)}
        if condition:
            body["ConditionExpression"] = condition
        body.update({k: v for k, v in expr.items() if v})
        return {"Put": body}

    # ---- entity META -------------------------------------------------------------------------

    def create_entity(self, ws: str, entity_id: str, entity_type: str, display_name: str | None, at: str, member_count: int = 1) -> dict[str, Any]:
        """A new entity (``attribute_not_exists``: an id is never reused)."""
        return self._put(_entity_meta(ws, entity_id, entity_type, display_name, at, member_count), "attribute_not_exists(PK)")

    def replace_entity(
        self, ws: str, entity_id: str, entity_type: str, display_name: str | None, at: str, member_count: int, merged_into: str | None = None
    ) -> dict[str, Any]:
        """Overwrite a META written before entities had members (the deterministic resolver's
        anchor META: no ``status`` nor ``member_count``) when its Patient is first re-resolved."""
        return self._put(_entity_meta(ws, entity_id, entity_type, display_name, at, member_count, merged_into), "attribute_not_exists(member_count)")

    def add_member(self, ws: str, entity_id: str, at: str, display_name: str | None = None) -> dict[str, Any]:
        """One more member in an existing, active entity (concurrent joins commute)."""
        sets = "updated_at = :at" + (", display_name = if_not_exists(display_name, :dn)" if display_name else "")
        values: dict[str, Any] = {":one": 1, ":at": at, ":active": "active"}
        if display_name:
            values[":dn"] = display_name
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"PK": keys.entity_pk(ws, entity_id), "SK": keys.ENTITY_SK},
                "UpdateExpression": f"ADD member_count :one, version :one SET {sets}",
                "ConditionExpression": "attribute_exists(PK) AND #st = :active",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": values,
            }
        }

    def remove_member(self, ws: str, entity_id: str, at: str, member_count: int, merged_into: str | None = None) -> dict[str, Any]:
        """One member leaves, conditioned on the ``member_count`` read. The last member leaving for
        another entity makes this one ``merged`` into it (the caller moves the counters: −1)."""
        values: dict[str, Any] = {":minus": -1, ":one": 1, ":at": at, ":n": member_count}
        sets = "updated_at = :at"
        if member_count <= 1 and merged_into:
            sets += ", #st = :merged, merged_into = :into"
            values |= {":merged": "merged", ":into": merged_into}
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"PK": keys.entity_pk(ws, entity_id), "SK": keys.ENTITY_SK},
                "UpdateExpression": f"ADD member_count :minus, version :one SET {sets}",
                "ConditionExpression": "member_count = :n",
                **({"ExpressionAttributeNames": {"#st": "status"}} if ":merged" in values else {}),
                "ExpressionAttributeValues": values,
            }
        }

    # ---- link, history, alias ----------------------------------------------------------------

    def put_link(
        self,
        ws: str,
        entity_id: str,
        resource_type: str,
        resource_id: str,
        *,
        anchor_id: str,
        confidence: float,
        method: str,
        evidence: list[dict[str, Any]],
        linked_at: str,
        linked_by: str = "system",
        pinned: bool = False,
        features: dict[str, Any] | str | None = None,
        blocking_keys: list[str] | None = None,
        proposed: str | None = None,
    ) -> dict[str, Any]:
        """The member item. ``blocking_keys`` (all the record's keys, saturated ones too) lets the
        next version delete the keys it no longer has; ``proposed`` is the entity of the record's
        open review candidate, so re-resolving the same record does not propose it twice."""
        return self._put(
            {
                "PK": keys.entity_pk(ws, entity_id),
                "SK": keys.entity_link_sk(resource_type, resource_id),
                "entity_id": entity_id,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "anchor_id": anchor_id,
                "confidence": _num(confidence),
                "method": method,
                "evidence": [_clean_num(e) for e in evidence],
                "linked_at": linked_at,
                "linked_by": linked_by,
                "pinned": pinned,
                "features": features if isinstance(features, str) or features is None else json.dumps(features, separators=(",", ":"), sort_keys=True),
                "blocking_keys": blocking_keys if blocking_keys else None,
                "proposed": proposed,
            }
        )

    def delete_link(self, ws: str, entity_id: str, resource_type: str, resource_id: str) -> dict[str, Any]:
        """Remove a member item that must still be there and not pinned (a concurrent merge or
        manual decision cancels the move)."""
        return {
            "Delete": {
                "TableName": self.table,
                "Key": {"PK": keys.entity_pk(ws, entity_id), "SK": keys.entity_link_sk(resource_type, resource_id)},
                "ConditionExpression": "attribute_exists(PK) AND (attribute_not_exists(pinned) OR pinned = :f)",
                "ExpressionAttributeValues": {":f": False},
            }
        }

    def event(
        self,
        ws: str,
        entity_id: str,
        event_type: str,
        at: str,
        *,
        actor: str = "system",
        reason: Any = None,
        resources: list[dict[str, str]] | None = None,
        other_entity_id: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """A history event (``created``, ``linked``, ``unlinked``, ``merged``, ``split``)."""
        eid = event_id or str(uuid.uuid4())
        return self._put(
            {
                "PK": keys.entity_pk(ws, entity_id),
                "SK": keys.entity_event_sk(at, eid),
                "event_id": eid,
                "entity_id": entity_id,
                "event_type": event_type,
                "at": at,
                "actor": actor,
                "reason": _clean_num(reason) if reason is not None else None,
                "resources": resources or None,
                "other_entity_id": other_entity_id,
            }
        )

    def put_alias(self, ws: str, anchor_id: str, entity_id: str) -> dict[str, Any]:
        return self._put({"PK": keys.entity_pk(ws, anchor_id), "SK": keys.ALIAS_SK, "entity_id": entity_id, "anchor_id": anchor_id})

    def delete_alias(self, ws: str, anchor_id: str) -> dict[str, Any]:
        return {"Delete": {"TableName": self.table, "Key": {"PK": keys.entity_pk(ws, anchor_id), "SK": keys.ALIAS_SK}}}

    # ---- blocking members --------------------------------------------------------------------

    def put_member(self, ws: str, entity_type: str, key: str, resource_type: str, resource_id: str, anchor_id: str, features: dict[str, Any]) -> dict[str, Any]:
        return self._put(
            {
                "PK": keys.blocking_pk(ws, entity_type, key),
                "SK": keys.blocking_sk(resource_type, resource_id),
                "resource_type": resource_type,
                "resource_id": resource_id,
                "anchor_id": anchor_id,
                "features": json.dumps(features, separators=(",", ":"), sort_keys=True),
            }
        )

    def put_key_in_use(self, ws: str, entity_type: str, key: str) -> dict[str, Any]:
        """The presence item of a directory key (written with its first member; never deleted:
        a key whose members all left costs a Query that finds nothing)."""
        return self._put({"PK": keys.blocking_presence_pk(ws, entity_type, key), "SK": keys.BLOCKING_PRESENCE_SK})

    def delete_member(self, ws: str, entity_type: str, key: str, resource_type: str, resource_id: str) -> dict[str, Any]:
        return {"Delete": {"TableName": self.table, "Key": {"PK": keys.blocking_pk(ws, entity_type, key), "SK": keys.blocking_sk(resource_type, resource_id)}}}

    # ---- match candidates --------------------------------------------------------------------

    def open_candidate(
        self,
        ws: str,
        candidate_id: str,
        at: str,
        *,
        entity_id: str,
        other_entity_id: str,
        resources: list[dict[str, str]],
        confidence: float,
        grade: str,
        evidence: list[dict[str, Any]],
        reason: str | None = None,
    ) -> list[dict[str, Any]]:
        """An open candidate: its item, the copy in the ``open`` list, ``open`` counter +1."""
        item = {
            "PK": keys.candidate_pk(ws),
            "SK": keys.candidate_sk(candidate_id),
            "candidate_id": candidate_id,
            "status": "open",
            "entity_id": entity_id,
            "other_entity_id": other_entity_id,
            "resources": resources,
            "confidence": _num(confidence),
            "grade": grade,
            "evidence": [_clean_num(e) for e in evidence],
            "reason": reason,
            "created_at": at,
        }
        return [
            self._put(item, "attribute_not_exists(PK)"),
            self._put({**item, "PK": keys.candidate_status_pk(ws, "open"), "SK": f"{at}#{candidate_id}"}),
            {
                "Update": {
                    "TableName": self.table,
                    "Key": {"PK": keys.candidate_count_pk(ws), "SK": keys.CANDIDATE_COUNT_SK},
                    "UpdateExpression": "ADD #o :one",
                    "ExpressionAttributeNames": {"#o": "open"},
                    "ExpressionAttributeValues": {":one": 1},
                }
            },
        ]


    # ---- counters ----------------------------------------------------------------------------

    def counter_delta(self, ws: str, deltas: dict[str, int]) -> dict[str, Any]:
        """``ADD`` on one random counter shard (``entity_count``, ``et_{type}`` …), for decisions
        committed outside a resource write (merge −1, split +1). Resource writes add theirs to the
        resource's own counter update instead (``ResourceChange.extra_counters``)."""
        names = {f"#c{i}": k for i, k in enumerate(deltas)}
        values = {f":c{i}": n for i, n in enumerate(deltas.values())}
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"PK": keys.stats_pk(ws), "SK": keys.stats_sk(random.randrange(keys.COUNTER_SHARDS))},
                "UpdateExpression": "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(deltas))),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }


def op_key(op: dict[str, Any]) -> tuple[str, str]:
    """The (PK, SK) an operation touches (DynamoDB refuses two operations on one item per transaction)."""
    (body,) = op.values()
    key = body.get("Key") or body.get("Item")
    return key["PK"], key["SK"]


def _num(value: float) -> Any:
    from decimal import Decimal

    return Decimal(str(round(value, 6))) if isinstance(value, float) else value


def _clean_num(value: Any) -> Any:
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, dict):
        return {k: _clean_num(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_clean_num(v) for v in value]
    return value


def _clean(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if v is not None}


def _entity_meta(
    ws: str, entity_id: str, entity_type: str, display_name: str | None, at: str, member_count: int, merged_into: str | None = None
) -> dict[str, Any]:
    return {
        "PK": keys.entity_pk(ws, entity_id),
        "SK": keys.ENTITY_SK,
        "entity_id": entity_id,
        "entity_type": entity_type,
        "display_name": display_name,
        "status": "merged" if merged_into else "active",
        "merged_into": merged_into,
        "member_count": member_count,
        "created_at": at,
        "updated_at": at,
        "version": 1,
    }
