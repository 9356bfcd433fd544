"""Event-sourced FHIR resource storage: immutable events, a materialised current version, index
entries and counters, all changed together in one DynamoDB transaction.

One resource change writes (TransactWriteItems, ≤ 100 items):
  - ``CURRENT`` — conditioned on the previous version (``attribute_not_exists`` for a create), so of
    two concurrent writers exactly one wins and the other gets :class:`VersionConflict`;
  - the event ``V#{n}`` — conditioned on ``attribute_not_exists`` (events are immutable); it and a
    live ``CURRENT`` carry their ``TypeIndex`` GSI attributes (type history, ``_sort=_id``:
    ``storage/keys.py``);
  - search index entries: vanished ones deleted, new/changed ones put (``fhir_platform.search``);
  - one counter shard (``ADD``), and the entity item when the resource anchors a new entity.

A delete is a change like any other: a new version whose event has ``event_type: "deleted"`` (it
keeps the last ``data``, so history shows what was deleted; ``fields_affected`` is empty),
``CURRENT`` replaced by that version marked ``deleted`` (conditioned on the version read), every
index item of the resource deleted, and the counters ``rt_{type}`` and ``ds#{source}#{type}`` (the
source of the version that was current) decremented. Reads of a deleted resource are 410; search
and lists never see it (its index items are gone; readers of ``CURRENT`` skip ``deleted``). A later
write to the same id re-creates it: the next version, its index items put as if none existed,
counters incremented again (``ResourceChange.revives``), never skipped as unchanged content.

Resource JSON is stored as a string attribute (exact JSON, no float/empty-string coercion). A
version whose JSON exceeds :data:`INLINE_LIMIT` is written to S3 first and referenced by key
(DynamoDB items are capped at 400 KB); an orphaned object from a lost race is harmless.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from fhir_platform import aws, config
from fhir_platform.storage import keys, wire
from fhir_platform.storage.base import Repository, cancellation_codes, error_code, plain
from fhir_platform.world.entities import EntityLink

_NOT_EVENT_FIELDS = ("PK", "SK", "data", "data_s3_key", keys.TYPE_INDEX_PK, keys.TYPE_INDEX_SK)
INLINE_LIMIT = 300_000  # bytes of resource JSON kept inline; above it the data goes to S3
# the stored JSON text: json.dumps(separators=(",", ":"), ensure_ascii=False), its encoder built once
# (json.dumps builds one per call with these options); parsed JSON has no cycles to check for
_STORED_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, check_circular=False)
MAX_TRANSACTION_ITEMS = 100  # DynamoDB's TransactWriteItems cap
# DynamoDB refuses a TransactWriteItems request over 4 MB; packing keeps each transaction's estimated
# size (:func:`_weight`) under this, leaving room for the counter update and the touch operations
MAX_TRANSACTION_BYTES = 3_000_000


class VersionConflict(Exception):
    """Another writer changed the resource between our read and our write."""


class TransactionTooLarge(Exception):
    """Changes that need more items than one TransactWriteItems takes; ``size`` is how many."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} transaction items (at most {MAX_TRANSACTION_ITEMS})")
        self.size = size


class CompartmentConflict(VersionConflict):
    """Only a patient's compartment touch item moved (another resource of that patient was
    written concurrently): the resource itself is unchanged, so the write is simply retried."""


# (workspace, patient id, event time, previous touch item, entity id, count, the Patient's own change
# among them or None, timeline count deltas per domain) -> transaction ops
TouchOps = Callable[
    [str, str, str, "dict[str, Any] | None", "str | None", int, "ResourceChange | None", "dict[str, int]"],
    list[dict[str, Any]],
]


class CompartmentTouches:
    """Patients' compartment touch items as read before committing, kept current as transactions
    succeed, so each packed transaction touches every patient exactly once (DynamoDB refuses two
    operations on one item in a transaction)."""

    def __init__(self, ws: str, previous: dict[str, dict[str, Any] | None], make_ops: TouchOps) -> None:
        self.ws, self.previous, self._make_ops = ws, previous, make_ops

    def ops(self, changes: list["ResourceChange"]) -> list[dict[str, Any]]:
        per_patient: dict[str, list[ResourceChange]] = {}
        for change in changes:
            for pid in change.touches:
                per_patient.setdefault(pid, []).append(change)
        out: list[dict[str, Any]] = []
        for pid, group in per_patient.items():
            latest = max(c.last_updated for c in group)
            entity = next((c.link.entity_id for c in group if c.link.entity_id), None)
            own = next((c for c in group if c.resource_type == "Patient" and c.resource_id == pid), None)
            timeline: dict[str, int] = {}
            for c in group:
                if c.timeline.get(pid):
                    timeline[c.timeline_domain] = timeline.get(c.timeline_domain, 0) + c.timeline[pid]
            out += self._make_ops(self.ws, pid, latest, self.previous.get(pid), entity, len(group), own, timeline)
        return out

    def committed(self, ops: list[dict[str, Any]]) -> None:
        for op in ops:
            item = op.get("Put", {}).get("Item", {})
            if "event_count" in item and "last_event_at" in item:
                self.previous[item["id"]] = item


@dataclass
class StoredResource:
    resource_type: str
    resource_id: str
    version: int
    data: dict[str, Any]
    entity_id: str | None
    confidence: float | None
    content_hash: str
    created_at: str
    last_updated: str
    data_source_id: str | None = None  # of the current version's write
    deleted: bool = False  # the current version is a delete (``data`` is the last data before it)


@dataclass
class ResourceChange:
    """Everything one write commits. Built by the domain service, committed atomically here."""

    workspace_id: str
    resource_type: str
    resource_id: str
    version: int
    data: dict[str, Any]
    content_hash: str
    created_at: str  # of the resource (first version)
    last_updated: str
    link: EntityLink
    event: dict[str, Any]  # event attributes: event_id, event_type, source, ... fields_affected
    previous_version: int | None
    index_put: list[dict[str, Any]] = field(default_factory=list)
    index_delete: list[dict[str, str]] = field(default_factory=list)
    new_entity: bool = False
    touches: list[str] = field(default_factory=list)  # patients whose compartment this change is in
    previous_data_source_id: str | None = None
    deleted: bool = False  # this change deletes the resource (``data`` is the last data, kept on the event)
    revives: bool = False  # the previous version was a delete: this change re-creates the resource
    # patient id -> +1 when this change puts the resource on that patient's timeline, -1 when it
    # takes it off (deleted, or moved to another patient); the touch item's ``tl`` counts move with it
    timeline: dict[str, int] = field(default_factory=dict)
    timeline_domain: str = "other"
    # world-model entity items written with the resource (storage/entities.py operations) and their
    # counter deltas; the resolver fills them (``EntityLink.ops`` / ``counters``)
    extra_ops: list[dict[str, Any]] = field(default_factory=list)
    extra_counters: dict[str, int] = field(default_factory=dict)
    # the stored JSON text of ``data`` (built once: packing weighs it, the items carry it)
    text: str | None = field(default=None, repr=False, compare=False)

    def json_text(self) -> str:
        if self.text is None:
            self.text = _STORED_JSON.encode(self.data)
        return self.text

    @property
    def data_source_id(self) -> str | None:
        return self.event.get("data_source_id")


class ResourceStore(Repository):
    def __init__(self, table: Any | None = None, s3: Any | None = None, writer: Any | None = None) -> None:
        super().__init__(table)
        self._s3 = s3
        self._writer = writer
        self._table_name: str | None = None

    @property
    def writer(self) -> Any:
        """The low-level client transactions go through (:func:`fhir_platform.aws.dynamodb_writer`;
        requests built by :mod:`fhir_platform.storage.wire`). For an injected table, a writer to the
        same endpoint and region."""
        if self._writer is None:
            if self._table is None:
                self._writer = aws.dynamodb_writer()
            else:
                meta = self._table.meta.client.meta
                self._writer = aws.dynamodb_writer(meta.region_name, meta.endpoint_url)
        return self._writer

    @property
    def table_name(self) -> str:
        if self._table_name is None:
            self._table_name = self.table.name
        return self._table_name

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = aws.client("s3")
        return self._s3

    # ---- reads -------------------------------------------------------------------------------

    def get(self, ws: str, resource_type: str, resource_id: str) -> StoredResource | None:
        item = self.table.get_item(
            Key={"PK": keys.resource_pk(ws, resource_type, resource_id), "SK": keys.CURRENT_SK},
            ConsistentRead=True,
        ).get("Item")
        return self._to_stored(item) if item else None

    def entity_of(self, ws: str, resource_type: str, resource_id: str) -> str | None:
        item = self.table.get_item(
            Key={"PK": keys.resource_pk(ws, resource_type, resource_id), "SK": keys.CURRENT_SK},
            ProjectionExpression="entity_id",
        ).get("Item")
        return item.get("entity_id") if item else None

    def events(self, ws: str, resource_type: str, resource_id: str, newest: int, oldest: int) -> list[dict[str, Any]]:
        """Events with versions ``oldest..newest`` (inclusive), newest first: one Query (plus
        continuation pages only when the 1 MB response cap is hit, bounded by the page size)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("PK").eq(keys.resource_pk(ws, resource_type, resource_id))
            & Key("SK").between(keys.version_sk(oldest), keys.version_sk(newest)),
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        out: list[dict[str, Any]] = []
        while True:
            page = self.table.query(**kwargs)
            out += [self._event(i) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def events_at(self, ws: str, versions: list[tuple[str, str, int]]) -> dict[tuple[str, str, int], dict[str, Any]]:
        """Events of many resources by ``(type, id, version)`` (BatchGetItem, 100 per call)."""
        wanted = {(keys.resource_pk(ws, t, i), keys.version_sk(v)): (t, i, v) for t, i, v in versions}
        found = self.batch_get_items([{"PK": pk, "SK": sk} for pk, sk in wanted])
        return {wanted[(item["PK"], item["SK"])]: self._event(item) for item in found}

    def get_items(self, item_keys: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Arbitrary items by key (consistent BatchGetItem, 100 per call), keyed by (PK, SK)."""
        return {(i["PK"], i["SK"]): plain(i) for i in self.batch_get_items(item_keys)}

    def batch_get(self, ws: str, refs: list[tuple[str, str]]) -> dict[tuple[str, str], StoredResource]:
        """Current versions of many resources (BatchGetItem, 100 per call)."""
        found: dict[tuple[str, str], StoredResource] = {}
        for item in self._batch_get_wire([keys.resource_pk(ws, t, i) for t, i in refs], keys.CURRENT_SK):
            stored = self._to_stored(item)
            found[(stored.resource_type, stored.resource_id)] = stored
        return found

    def batch_read(
        self, ws: str, refs: list[tuple[str, str]], item_keys: list[dict[str, str]]
    ) -> tuple[dict[tuple[str, str], StoredResource], dict[tuple[str, str], dict[str, Any]]]:
        """The current versions of ``refs`` and the items ``item_keys`` (``{"PK", "SK"}``) in shared
        consistent BatchGetItem calls of up to 100 keys (the write path's reads of one batch: its
        resources, the patients they reference, their compartment touch items): ``(current
        versions by (type, id), other items by (PK, SK), plain values)``."""
        pairs = [(keys.resource_pk(ws, t, i), keys.CURRENT_SK) for t, i in refs]
        pairs += [(k["PK"], k["SK"]) for k in item_keys]
        current: dict[tuple[str, str], StoredResource] = {}
        other: dict[tuple[str, str], dict[str, Any]] = {}
        for item in self._batch_get_pairs(pairs):
            if item["SK"] == keys.CURRENT_SK and "resource_type" in item:
                stored = self._to_stored(item)
                current[(stored.resource_type, stored.resource_id)] = stored
            else:
                other[(item["PK"], item["SK"])] = plain(item)
        return current, other

    def _batch_get_wire(self, pks: list[str], sk: str) -> list[dict[str, Any]]:
        return self._batch_get_pairs([(pk, sk) for pk in pks])

    def _batch_get_pairs(self, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Consistent BatchGetItem of ``(pk, sk)`` items (100 keys per call, unprocessed keys
        retried) through the low-level :attr:`writer`, items decoded by :func:`wire.read_item`: the
        same items as :meth:`batch_get_items`, without the boto3 resource layer's per-value
        (de)serialisers (the write path reads every batch's current versions this way)."""
        table = self.table_name
        unique = list(dict.fromkeys(pairs))
        found: list[dict[str, Any]] = []
        for start in range(0, len(unique), 100):
            chunk = [{"PK": {"S": pk}, "SK": {"S": sk}} for pk, sk in unique[start : start + 100]]
            request: dict[str, Any] | None = {table: {"Keys": chunk, "ConsistentRead": True}}
            while request:
                resp = self.writer.batch_get_item(RequestItems=request)
                found += [wire.read_item(i) for i in resp.get("Responses", {}).get(table, [])]
                request = resp.get("UnprocessedKeys") or None
        return found

    # ---- writes ------------------------------------------------------------------------------

    def commit(self, change: ResourceChange, touches: CompartmentTouches | None = None, items: list[dict[str, Any]] | None = None) -> None:
        """Commit one change (``items``: its :meth:`_items`, when the caller built them already)."""
        self._commit_group([change], touches, [items if items is not None else self._items(change)])

    def _commit_group(
        self, changes: list[ResourceChange], touches: CompartmentTouches | None, built: list[list[dict[str, Any]]] | None = None
    ) -> None:
        """One transaction: each change's operations (``built``, in the order of ``changes``, or
        built here), the counter update, then the compartment touches."""
        items: list[dict[str, Any]] = []
        for change_items in built if built is not None else [self._items(c) for c in changes]:
            items += change_items
        items.append(self._counter_update(changes))
        touch_ops = touches.ops(changes) if touches else []
        first_touch = len(items)
        items += touch_ops
        label = f"{changes[0].resource_type}/{changes[0].resource_id}" if len(changes) == 1 else f"{len(changes)} resources"
        self._transact(items, label, first_touch)
        if touches:
            touches.committed(touch_ops)

    def commit_atomic(self, changes: list[ResourceChange], touches: CompartmentTouches | None = None) -> None:
        """Every change in **one** TransactWriteItems (all or nothing, each conditioned on the
        version read), or :class:`TransactionTooLarge` before anything is written when they need
        more than :data:`MAX_TRANSACTION_ITEMS` items (FHIR transaction Bundles)."""
        size = sum(_size(c) for c in changes)
        size += 1 + (len(touches.ops(changes)) if touches else 0)  # the counter update, the compartment touches
        if size > MAX_TRANSACTION_ITEMS:
            raise TransactionTooLarge(size)
        self._commit_group(changes, touches)

    def commit_many(self, changes: list[ResourceChange], touches: CompartmentTouches | None = None) -> list[ResourceChange]:
        """Commit many changes with few calls: changes are packed first-fit into transactions of at
        most :data:`MAX_TRANSACTION_ITEMS` items (one merged counter update each, room kept for the
        compartment touches), so each resource is still all-or-nothing. A change goes into the first
        transaction with room that comes after every transaction holding one of its items (its
        resource's earlier version, an entity item an earlier change writes): DynamoDB checks a
        condition against the item as it was before the transaction, and refuses two operations on
        one item in one transaction, so such changes must commit in order, in separate transactions.
        Transactions are sent in order. A packed transaction that loses a race is retried change by
        change; returns the changes that lost (the caller re-reads and retries them)."""
        lost: list[ResourceChange] = []
        for group in _pack(changes, [_size(c) for c in changes], touches, [_weight(c) for c in changes]):
            # each group's operations built just before it is sent (building the whole batch's at
            # once keeps them all alive: measurably more garbage-collection work)
            group_built = [self._items(c) for c in group]
            try:
                self._commit_group(group, touches, group_built)
            except VersionConflict:
                for change, items in zip(group, group_built):
                    try:
                        self.commit(change, touches, items)
                    except VersionConflict:
                        lost.append(change)
        return lost

    def _transact(self, items: list[dict[str, Any]], label: str, first_touch: int | None = None) -> None:
        """Send plain ``{kind: body}`` operations as one TransactWriteItems (``TableName`` added
        where missing): written straight to the request's JSON text
        (:func:`~fhir_platform.storage.wire.transact_items`) when the writer sends such text (
        :class:`~fhir_platform.storage.wire.WireRequests`), else in wire form
        (:func:`~fhir_platform.storage.wire.transact_op`)."""
        table = self.table_name
        request: list[dict[str, Any]] | None = None
        if isinstance(getattr(self.writer, "_serializer", None), wire.WireRequests):
            try:
                request = wire.transact_items(items, table)
            except wire.NeedsWireForm:
                request = None
        if request is None:
            request = [wire.transact_op(op, table) for op in items]
        try:
            self.writer.transact_write_items(TransactItems=request)
        except ClientError as exc:
            codes = cancellation_codes(exc) if error_code(exc) == "TransactionCanceledException" else []
            failed = [i for i, code in enumerate(codes) if code == "ConditionalCheckFailed"]
            if failed and first_touch is not None and min(failed) >= first_touch:
                raise CompartmentConflict(f"{label}: a patient compartment changed concurrently") from None
            if failed:
                raise VersionConflict(f"{label} changed concurrently") from None
            if "TransactionConflict" in codes:
                raise VersionConflict(f"{label} is being written concurrently") from None
            raise

    def _items(self, change: ResourceChange) -> list[dict[str, Any]]:
        """The transaction operations of one change, without the counter update: plain
        ``{kind: body}`` dicts (``None`` attributes are not stored; :meth:`_transact` serialises)."""
        ws, rt, rid = change.workspace_id, change.resource_type, change.resource_id
        pk = keys.resource_pk(ws, rt, rid)
        body = self._body(ws, rt, rid, change.version, change.json_text())
        current = {
            "PK": pk,
            "SK": keys.CURRENT_SK,
            "resource_type": rt,
            "resource_id": rid,
            "version": change.version,
            "content_hash": change.content_hash,
            "created_at": change.created_at,
            "last_updated": change.last_updated,
            "entity_id": change.link.entity_id,
            "confidence": change.link.confidence,
            **({"data_source_id": change.data_source_id} if change.data_source_id else {}),
            # live: listed in its type's id order (``TypeIndex``, ``_sort=_id``); deleted: not
            **({"deleted": True} if change.deleted else keys.id_order_key(ws, rt, rid)),
            **body,
        }
        event = {
            "PK": pk,
            "SK": keys.version_sk(change.version),
            "version": change.version,
            "resource_type": rt,
            "resource_id": rid,
            "content_hash": change.content_hash,
            "entity_id": change.link.entity_id,
            **change.event,
            # the event's entry in its type's history (FHIR ``GET {type}/_history``, ``TypeIndex``)
            **keys.type_history_key(ws, rt, rid, change.version, change.last_updated),
            **body,
        }
        items: list[dict[str, Any]] = []
        if change.previous_version is None:
            items.append({"Put": {"Item": current, "ConditionExpression": "attribute_not_exists(PK)"}})
        else:
            items.append(
                {
                    "Put": {
                        "Item": current,
                        "ConditionExpression": "version = :prev",
                        "ExpressionAttributeValues": {":prev": change.previous_version},
                    }
                }
            )
        items.append({"Put": {"Item": event, "ConditionExpression": "attribute_not_exists(PK)"}})
        for key in change.index_delete:
            items.append({"Delete": {"Key": key}})
        for entry in change.index_put:
            items.append({"Put": {"Item": entry}})
        if change.new_entity and change.link.entity_id:
            items.append(
                {
                    "Put": {
                        "Item": {
                            "PK": keys.entity_pk(ws, change.link.entity_id),
                            "SK": keys.ENTITY_SK,
                            "entity_id": change.link.entity_id,
                            "entity_type": change.link.entity_type,
                            "created_at": change.last_updated,
                            "anchor": f"{rt}/{rid}",
                            "evidence": list(change.link.evidence),
                            "confidence": change.link.confidence,
                        },
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                }
            )
        items += change.extra_ops
        return items

    def _counter_update(self, changes: list[ResourceChange]) -> dict[str, Any]:
        """One ADD on a random counter shard covering every change of a transaction: events, new
        resources per type (``rt_{type}``), new entities, and per data source the resources of each
        type whose current version came from it (``ds#{source}#{type}``: +1 on arrival, -1 when a
        later version comes from another source). A delete is -1 on both (the source of the version
        it replaces); a write re-creating a deleted resource is +1 like a create."""
        totals: dict[str, int] = {"event_count": len(changes)}

        def add(name: str, n: int) -> None:
            totals[name] = totals.get(name, 0) + n

        for change in changes:
            rt, new_src, old_src = change.resource_type, change.data_source_id, change.previous_data_source_id
            add(f"ev_{rt}", 1)  # the type's history length (FHIR ``GET {type}/_history`` total)
            if change.deleted:  # the resource leaves its type's and its (current) source's counts
                add(f"rt_{rt}", -1)
                if old_src:
                    add(f"ds#{old_src}#{rt}", -1)
                continue
            if change.previous_version is None or change.revives:
                add(f"rt_{rt}", 1)
                old_src = None
            if new_src != old_src:
                if old_src:
                    add(f"ds#{old_src}#{rt}", -1)
                if new_src:
                    add(f"ds#{new_src}#{rt}", 1)
            for name, n in change.extra_counters.items():
                add(name, n)
            if change.new_entity and change.link.entity_type:
                totals["entity_count"] = totals.get("entity_count", 0) + 1
                totals[f"et_{change.link.entity_type}"] = totals.get(f"et_{change.link.entity_type}", 0) + 1
        names = {f"#a{i}": name for i, name in enumerate(totals)}
        values: dict[str, Any] = {f":a{i}": n for i, n in enumerate(totals.values())}
        names["#lc"] = "last_change_at"
        values[":now"] = max(c.last_updated for c in changes)
        adds = ", ".join(f"#a{i} :a{i}" for i in range(len(totals)))
        return {
            "Update": {
                "Key": {"PK": keys.stats_pk(changes[0].workspace_id), "SK": keys.stats_sk(random.randrange(keys.COUNTER_SHARDS))},
                "UpdateExpression": f"ADD {adds} SET #lc = :now",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def counters(self, ws: str) -> dict[str, Any]:
        """Sum of the counter shards: one Query over a 10-item partition."""
        items = self.table.query(KeyConditionExpression=Key("PK").eq(keys.stats_pk(ws)), ConsistentRead=True)["Items"]
        totals: dict[str, Any] = {
            "event_count": 0,
            "entity_count": 0,
            "resource_type_counts": {},
            "entity_type_counts": {},
            "data_source_counts": {},  # {source: {type: resources whose current version came from it}}
            "event_type_counts": {},  # {type: events (versions, deletes included) written}
            "last_change_at": None,
        }
        for item in items:
            for name, value in plain(item).items():
                if name in ("event_count", "entity_count"):
                    totals[name] += value
                elif name.startswith("rt_"):
                    totals["resource_type_counts"][name[3:]] = totals["resource_type_counts"].get(name[3:], 0) + value
                elif name.startswith("ds#"):
                    _, src, rt = name.split("#", 2)
                    per_type = totals["data_source_counts"].setdefault(src, {})
                    per_type[rt] = per_type.get(rt, 0) + value
                elif name.startswith("ev_"):
                    totals["event_type_counts"][name[3:]] = totals["event_type_counts"].get(name[3:], 0) + value
                elif name.startswith("et_"):
                    totals["entity_type_counts"][name[3:]] = totals["entity_type_counts"].get(name[3:], 0) + value
                elif name == "last_change_at" and (totals["last_change_at"] or "") < value:
                    totals["last_change_at"] = value
        return totals

    # ---- item <-> domain -----------------------------------------------------------------------

    def _body(self, ws: str, rt: str, rid: str, version: int, text: str) -> dict[str, Any]:
        if len(text.encode("utf-8")) <= INLINE_LIMIT:
            return {"data": text}
        key = f"resources/{ws}/{rt}/{rid}/{version}.json"
        self.s3.put_object(Bucket=config.imports_bucket(), Key=key, Body=text.encode("utf-8"), ContentType="application/fhir+json")
        return {"data_s3_key": key}

    def _load(self, item: dict[str, Any]) -> dict[str, Any]:
        if "data" in item:
            return json.loads(item["data"])
        body = self.s3.get_object(Bucket=config.imports_bucket(), Key=item["data_s3_key"])["Body"].read()
        return json.loads(body)

    def load_data(self, item: dict[str, Any]) -> dict[str, Any]:
        """The resource JSON of a CURRENT or event item: inline ``data``, or the S3 object named by
        ``data_s3_key`` (versions over :data:`INLINE_LIMIT`). Search passes this to the executor."""
        return self._load(item)

    def event_sources(self, ws: str, versions: list[tuple[str, str, int]]) -> dict[tuple[str, str], dict[str, Any]]:
        """``source_system`` / ``data_source_id`` / ``source`` of the given versions' events
        (``(type, id, version)``), keyed by ``(type, id)``: consistent BatchGetItem with a projection
        (the events' ``data`` is not read), 100 keys per call."""
        names = {"#ss": "source_system", "#ds": "data_source_id", "#so": "source", "#rt": "resource_type", "#ri": "resource_id"}
        items = self.batch_get_items(
            [{"PK": keys.resource_pk(ws, t, i), "SK": keys.version_sk(v)} for t, i, v in versions],
            ProjectionExpression=", ".join(names),
            ExpressionAttributeNames=names,
        )
        return {
            (item["resource_type"], item["resource_id"]): {k: item.get(k) for k in ("source_system", "data_source_id", "source")}
            for item in items
        }

    def _to_stored(self, item: dict[str, Any]) -> StoredResource:
        return StoredResource(
            resource_type=item["resource_type"],
            resource_id=item["resource_id"],
            version=int(item["version"]),
            data=self._load(item),
            entity_id=item.get("entity_id"),
            confidence=plain(item.get("confidence")),
            content_hash=item["content_hash"],
            created_at=item["created_at"],
            last_updated=item["last_updated"],
            data_source_id=item.get("data_source_id"),
            deleted=bool(item.get("deleted")),
        )

    def _event(self, item: dict[str, Any]) -> dict[str, Any]:
        out = {k: plain(v) for k, v in item.items() if k not in _NOT_EVENT_FIELDS}
        out["data"] = self._load(item)
        return out


def _weight(change: ResourceChange) -> int:
    """A bound on the bytes ``change`` adds to a TransactWriteItems request: its JSON twice
    (``CURRENT`` and the event) when stored inline, each copy counted twice for the request's JSON
    escaping (an escaped quote is 2 bytes, a 2-3 byte character's ``\\u`` escape 6; a 4-byte one's
    12: the margin under 4 MB covers it), plus 1 KB per other operation (index and entity items are
    small: a key and a few attributes)."""
    text = change.json_text()
    n = len(text) if text.isascii() else len(text.encode("utf-8"))
    return (4 * n if n <= INLINE_LIMIT else 1024) + 1024 * _size(change)


def _size(change: ResourceChange) -> int:
    """How many operations :meth:`ResourceStore._items` builds for ``change``."""
    return 2 + len(change.index_delete) + len(change.index_put) + (1 if change.new_entity and change.link.entity_id else 0) + len(change.extra_ops)


def _pack(
    changes: list[ResourceChange], sizes: list[int], touches: CompartmentTouches | None, weights: list[int] | None = None
) -> list[list[ResourceChange]]:
    """First-fit packing of ``changes`` (``sizes``: their operation counts) into transactions, in
    the order they are to be sent (see :meth:`ResourceStore.commit_many`). Each transaction keeps
    room for its counter update and, per patient whose compartment it touches, the touch operations
    :func:`~fhir_platform.search.indexing.compartment_touch` can write: 3 (the touch item, the
    ``sort.last_event_at`` entry moved), 5 when the patient's list entry is per data source too;
    and the transaction's estimated bytes (``weights``, :func:`_weight`) stay within
    :data:`MAX_TRANSACTION_BYTES` (a change heavier than that alone gets a transaction alone)."""
    weights = weights or [0] * len(changes)
    sourced = {pid for pid, item in (touches.previous.items() if touches else ()) if item and item.get("src")}
    sourced |= {c.resource_id for c in changes if c.resource_type == "Patient" and c.data_source_id}

    def touch_room(patients: set[str]) -> int:
        return sum(5 if pid in sourced else 3 for pid in patients)

    groups: list[list[int]] = []  # each transaction's changes, as indexes into ``changes``
    free: list[int] = []  # room left in each: 100 - its changes' operations - counter - touch room
    room: list[int] = []  # bytes left in each
    patients: list[set[str]] = []
    last_group: dict[Any, int] = {}  # an item key (or a resource) -> the last group writing it

    def place(i: int, item_keys: list[Any]) -> None:
        change, size = changes[i], sizes[i]
        first = max((last_group[k] + 1 for k in item_keys if k in last_group), default=0)
        for g in range(first, len(groups)):
            if free[g] < size or room[g] < weights[i]:
                continue
            need = size + touch_room({p for p in change.touches if p not in patients[g]})
            if need <= free[g]:
                break
        else:
            g = len(groups)
            groups.append([])
            free.append(MAX_TRANSACTION_ITEMS - 1)  # the counter update
            room.append(MAX_TRANSACTION_BYTES)
            patients.append(set())
            need = size + touch_room(set(change.touches))
        groups[g].append(i)
        free[g] -= need
        room[g] -= weights[i]
        patients[g].update(change.touches)
        for k in item_keys:
            last_group[k] = g

    keys_of = [[(c.resource_type, c.resource_id), *(_op_key(op) for op in c.extra_ops)] for c in changes]
    writers: dict[Any, int] = {}
    for item_keys in keys_of:
        for k in item_keys:
            writers[k] = writers.get(k, 0) + 1
    # changes sharing no item with another one go first, largest first (first-fit decreasing: the
    # small ones fill what the large ones leave); then the others in their order, each after the
    # transactions holding its items
    alone = [i for i, item_keys in enumerate(keys_of) if all(writers[k] == 1 for k in item_keys)]
    chained = [i for i, item_keys in enumerate(keys_of) if any(writers[k] > 1 for k in item_keys)]
    for i in sorted(alone, key=lambda i: -sizes[i]):
        place(i, keys_of[i])
    for i in chained:
        place(i, keys_of[i])
    # within a transaction, the changes keep their order in the batch
    return [[changes[i] for i in sorted(g)] for g in groups]


def _op_key(op: dict[str, Any]) -> tuple[str, str]:
    (body,) = op.values()
    key = body.get("Key") or body.get("Item")
    return key["PK"], key["SK"]
