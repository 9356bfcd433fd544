"""Reads of the world-model entity items (``docs/entities.md``): an entity with its links, its
history, the match candidates, and the read-time indirection every response that shows a
resource's ``entity_id`` goes through (:meth:`EntityReader.current_entities`).

Access patterns (all on keys; nothing scans):
- an entity and its links: one Query ``WS#{ws}#E#{eid}`` ``SK BETWEEN "LINK#" AND "META"`` (the link
  items sort just before ``META``; ``EV#``, ``ALIAS`` and ``NOT#`` items fall outside the range), more
  pages only past 1 MB of links;
- the current entity of anchors: BatchGetItem of their ``ALIAS`` items, 100 per call (missing
  alias → the anchor itself);
- history page: Query ``begins_with(SK, "EV#")`` newest first (``Limit`` offset + limit) plus a
  ``COUNT`` Query of the same range (one entity's events: a narrow partition) for ``total``;
- candidates by status: Query ``WS#{ws}#CAND#{status}`` newest first, ``total`` from the counter
  item ``WS#{ws}#CAND#COUNT``.

Entities written before link items existed (the deterministic resolver's META, which names its
``anchor`` resource) are read as holding that one anchor resource (``virtual`` link: it is written
as a real link item by the first decision that touches the entity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from boto3.dynamodb.conditions import Key

from fhir_platform.storage import keys
from fhir_platform.storage.base import Repository, plain

MAX_MERGE_HOPS = 10  # merged_into chains followed when an entity id is looked up


@dataclass
class Entity:
    entity_id: str
    meta: dict[str, Any]
    links: list[dict[str, Any]] = field(default_factory=list)  # each: the link item (plain), ``virtual`` when synthesised

    @property
    def version(self) -> int:
        return int(self.meta.get("version") or 0)

    @property
    def status(self) -> str:
        return str(self.meta.get("status") or "active")

    @property
    def entity_type(self) -> str:
        return str(self.meta.get("entity_type") or "patient")

    @property
    def merged_into(self) -> str | None:
        return self.meta.get("merged_into")


def link_ref(link: dict[str, Any]) -> tuple[str, str]:
    return str(link["resource_type"]), str(link["resource_id"])


class EntityReader(Repository):
    # ---- the read-time indirection ----------------------------------------------------------------

    def current_entities(self, ws: str, anchors: Iterable[str | None]) -> dict[str, str]:
        """``{anchor: current entity id}``: :meth:`EntityStore.current_entities` (one consistent
        BatchGetItem of the anchors' ``ALIAS`` items per 100 distinct anchors; no alias → the anchor)."""
        from fhir_platform.storage.entities import EntityStore

        return EntityStore(self.table).current_entities(ws, [a for a in anchors if a])

    def current_entity(self, ws: str, anchor: str | None) -> str | None:
        return self.current_entities(ws, [anchor]).get(anchor) if anchor else None  # type: ignore[arg-type]

    # ---- entities -----------------------------------------------------------------------------------

    def entity(self, ws: str, entity_id: str) -> Entity | None:
        """The entity's META and its links (one Query; more pages only past 1 MB of links)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("PK").eq(keys.entity_pk(ws, entity_id)) & Key("SK").between(keys.ENTITY_LINK_SK_PREFIX, keys.ENTITY_SK),
            "ConsistentRead": True,
        }
        items: list[dict[str, Any]] = []
        while True:
            page = self.table.query(**kwargs)
            items += [plain(i) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        meta = next((i for i in items if i["SK"] == keys.ENTITY_SK), None)
        if meta is None:
            return None
        links = sorted((i for i in items if i["SK"].startswith(keys.ENTITY_LINK_SK_PREFIX)), key=lambda i: i["SK"])
        if not links and meta.get("status", "active") == "active" and isinstance(meta.get("anchor"), str) and "/" in meta["anchor"]:
            rt, rid = meta["anchor"].split("/", 1)  # an entity from before link items: its anchor resource
            links = [
                {
                    "PK": keys.entity_pk(ws, entity_id),
                    "SK": keys.entity_link_sk(rt, rid),
                    "resource_type": rt,
                    "resource_id": rid,
                    "anchor_id": entity_id,
                    "confidence": meta.get("confidence", 1.0),
                    "method": "identifier",
                    "evidence": [],
                    "linked_at": meta.get("created_at"),
                    "linked_by": "system",
                    "pinned": False,
                    "virtual": True,
                }
            ]
        return Entity(entity_id, meta, links)

    def resolve(self, ws: str, entity_id: str) -> Entity | None:
        """The entity ``entity_id`` is now: itself, or where its ``merged_into`` chain ends."""
        found = self.entity(ws, entity_id)
        for _ in range(MAX_MERGE_HOPS):
            if found is None or found.status != "merged" or not found.merged_into:
                return found
            found = self.entity(ws, found.merged_into)
        return found

    def metas(self, ws: str, entity_ids: list[str]) -> dict[str, dict[str, Any]]:
        items = self.batch_get_items([{"PK": keys.entity_pk(ws, e), "SK": keys.ENTITY_SK} for e in entity_ids])
        return {str(i["entity_id"]): plain(i) for i in items}

    def display_name(self, ws: str, rt: str, rid: str) -> str | None:
        """A person's or a place's name from the resource's current version (for a new entity)."""
        import json

        from fhir_platform.search.views import _name

        item = self.table.get_item(Key={"PK": keys.resource_pk(ws, rt, rid), "SK": keys.CURRENT_SK}, ProjectionExpression="#d", ExpressionAttributeNames={"#d": "data"}).get("Item")
        if not item or "data" not in item:
            return None
        data = json.loads(item["data"])
        if rt in ("Patient", "Practitioner"):
            return _name(data)[0]
        name = data.get("name")
        return name if isinstance(name, str) else None

    # ---- history ------------------------------------------------------------------------------------

    def history(self, ws: str, entity_id: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], int, bool]:
        """A page of the entity's events, newest first, and their exact total."""
        cond = Key("PK").eq(keys.entity_pk(ws, entity_id)) & Key("SK").begins_with(keys.ENTITY_EVENT_SK_PREFIX)
        items, has_more = self.query_window({"KeyConditionExpression": cond, "ScanIndexForward": False, "ConsistentRead": True}, offset, limit)
        total, kwargs = 0, {"KeyConditionExpression": cond, "Select": "COUNT", "ConsistentRead": True}
        while True:
            page = self.table.query(**kwargs)
            total += int(page["Count"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return [plain(i) for i in items], total, has_more

    # ---- candidates ---------------------------------------------------------------------------------

    def candidate(self, ws: str, candidate_id: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"PK": keys.candidate_pk(ws), "SK": keys.candidate_sk(candidate_id)}, ConsistentRead=True).get("Item")
        return plain(item) if item else None

    def candidates(self, ws: str, status: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], int, bool]:
        """A page of the candidates with ``status``, newest first, and the status's total (counter)."""
        query = {"KeyConditionExpression": Key("PK").eq(keys.candidate_status_pk(ws, status)), "ScanIndexForward": False, "ConsistentRead": True}
        items, has_more = self.query_window(query, offset, limit)
        counts = self.table.get_item(Key={"PK": keys.candidate_count_pk(ws), "SK": keys.CANDIDATE_COUNT_SK}, ConsistentRead=True).get("Item") or {}
        return [plain(i) for i in items], max(0, int(counts.get(status, 0) or 0)), has_more


def map_current_entities(table: Any, ws: str, rows: list[dict[str, Any]], field_name: str = "entity_id") -> None:
    """Replace the anchor in ``rows[i][field_name]`` by its current entity, in place: one
    BatchGetItem per 100 distinct anchors (none when no row has one)."""
    anchors = [r.get(field_name) for r in rows]
    if not any(anchors):
        return
    current = EntityReader(table).current_entities(ws, anchors)
    for row in rows:
        if row.get(field_name):
            row[field_name] = current.get(row[field_name], row[field_name])
