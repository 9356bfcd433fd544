"""Manual world-model decisions: merge, split, and a reviewer's accept / reject of a match
candidate. Each is ONE DynamoDB transaction conditioned on the ``version`` of every entity it
changes (and on the candidate still being ``open``), so two reviewers racing on the same entity
cannot both win: the loser gets :class:`~fhir_platform.errors.Conflict` (409) and nothing is
half-written. Item formats: ``docs/entities.md``.

Merge ``from`` S ``into`` T (accept = merge of the candidate's new-record entity into the other):
  - T ``META``: ``version`` + 1, ``member_count`` + |S|, ``updated_at``;
  - S ``META``: ``status = merged``, ``merged_into = T``, ``member_count = 0``, ``version`` + 1;
  - each link of S: deleted from S, put on T as ``method = manual``, ``pinned``, ``confidence`` 1.0,
    ``linked_by`` = the actor (its former confidence/method/evidence kept as ``previous``);
  - each moved member's anchor: ``ALIAS`` → T (deleted when the anchor *is* T: no alias needed);
  - ``NOT`` items between S and T deleted (a person's explicit merge overrides an earlier reject);
  - every other ``NOT`` of S (S was ruled apart from X) carried to T both ways (T–X), so the
    members S brings are still never linked with or proposed for X; S's own items stay (a split
    that brings S back keeps them);
  - a ``merged`` history event on both; the workspace counters ``entity_count`` and
    ``et_{type}`` − 1 (a random counter shard, as the write path does).
Split resources R out of E:
  - the new entity N is the anchor of R's first resource when that entity id is free (no entity,
    or an entity that was merged away: the usual undo of a merge, which brings S back with its
    history) and a new uuid otherwise;
  - E ``META`` ``version`` + 1, ``member_count`` − |R|; N ``META`` created (or re-activated);
  - each link of R moved E → N, pinned ``manual``; aliases of their anchors → N (deleted when the
    anchor is N);
  - ``NOT`` items both ways (the resolver never puts them together again; candidates never
    proposed); a ``split`` event on both; ``entity_count`` / ``et_{type}`` + 1.

Limits: a decision moves at most :data:`MAX_DECISION_MEMBERS` links (3 transaction items each, in
DynamoDB's 100-item transaction). A merge whose source holds more is refused with 409 naming the
limit (split the source first, then merge the parts); a split lists at most that many resources
(422 from the request model).

Entities written before link items existed (the deterministic resolver's ``META`` with its
``anchor``) are handled: their one anchor link is written as a real link item by the decision.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from fhir_platform.errors import Conflict, NotFound, Unprocessable
from fhir_platform.storage import keys
from fhir_platform.storage.base import Repository, cancellation_codes, error_code
from fhir_platform.storage.entities import EntityOps, EntityStore
from fhir_platform.storage.entity_reads import Entity, EntityReader, link_ref
from fhir_platform.world.entities import anchor_entity_id

MAX_DECISION_MEMBERS = 30


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Actor:
    """Who decides: an API key id, or ``admin`` for the platform credential."""

    actor_id: str
    reason: str | None = None


class EntityDecisions(Repository):
    def __init__(self, table: Any | None = None, reader: EntityReader | None = None, clock: Any = now_iso) -> None:
        super().__init__(table)
        self._reader = reader
        self.clock = clock

    @property
    def reader(self) -> EntityReader:
        if self._reader is None:
            self._reader = EntityReader(self._table)
        return self._reader

    # ---- merge ------------------------------------------------------------------------------------

    def merge(self, ws: str, target_id: str, source_id: str, actor: Actor, *, request: dict[str, Any] | None = None) -> Entity:
        """Merge entity ``source_id`` into ``target_id``; the target after the merge."""
        if target_id == source_id:
            raise Unprocessable(
                "An entity cannot be merged with itself",
                details=[{"loc": ["body", "from_entity_id"], "msg": "same as the entity in the path", "type": "value_error"}],
            )
        target = self._active(ws, target_id, ["path", "entity_id"])
        source = self._active(ws, source_id, ["body", "from_entity_id"])
        self._transact(self._merge_ops(ws, target, source, actor, request or {"from_entity_id": source_id}), "merge")
        return self._reread(ws, target_id)

    def _merge_ops(self, ws: str, target: Entity, source: Entity, actor: Actor, request: dict[str, Any]) -> list[dict[str, Any]]:
        if target.entity_type != source.entity_type:
            raise Conflict(
                f"Entities of different types cannot be merged ({source.entity_type} into {target.entity_type})",
                details=[{"loc": ["body", "from_entity_id"], "msg": "entity types differ", "type": "conflict"}],
            )
        moving = source.links
        if len(moving) > MAX_DECISION_MEMBERS:
            raise Conflict(
                f"Entity {source.entity_id} holds {len(moving)} resources; one merge moves at most {MAX_DECISION_MEMBERS}."
                " Split it into smaller entities first, then merge each",
                details=[{"loc": ["body", "from_entity_id"], "msg": f"more than {MAX_DECISION_MEMBERS} members", "type": "too_many_members"}],
            )
        now, t, s = self.clock(), target.entity_id, source.entity_id
        refs = [_ref_json(link) for link in moving]
        ops = [
            self._meta_update(ws, target, now, member_delta=len(moving)),
            self._meta_update(ws, source, now, member_delta=-len(source.links), merged_into=t),
            *self._materialise(target),
        ]
        for link in moving:
            ops += self._move(ws, link, source, t, now, actor)
        ops += [
            {"Delete": {"Key": {"PK": keys.entity_pk(ws, t), "SK": keys.entity_not_sk(s)}}},
            {"Delete": {"Key": {"PK": keys.entity_pk(ws, s), "SK": keys.entity_not_sk(t)}}},
        ]
        carried = Actor(actor.actor_id, f"carried from entity {s}, merged into {t}")
        for other in sorted(EntityStore(self.table).not_together(ws, s) - {t}):  # one Query
            ops += [self._not(ws, t, other, now, carried), self._not(ws, other, t, now, carried)]
        ops += [
            self._event(ws, t, "merged", now, actor, request, resources=refs, other_entity_id=s, direction="into"),
            self._event(ws, s, "merged", now, actor, request, resources=refs, other_entity_id=t, direction="from", merged_into=t),
            self._counter(ws, target.entity_type, -1),
        ]
        return ops

    # ---- split ------------------------------------------------------------------------------------

    def split(
        self, ws: str, entity_id: str, resources: list[tuple[str, str]], actor: Actor, *, request: dict[str, Any] | None = None
    ) -> tuple[Entity, Entity]:
        """Move ``resources`` out of ``entity_id`` into a new entity: ``(entity, new entity)``."""
        entity = self._active(ws, entity_id, ["path", "entity_id"])
        by_ref = {link_ref(link): link for link in entity.links}
        seen: set[tuple[str, str]] = set()
        for i, ref in enumerate(resources):
            loc = ["body", "resources", i]
            if ref in seen:
                raise Unprocessable(f"{ref[0]}/{ref[1]} is listed twice", details=[{"loc": loc, "msg": "listed twice", "type": "value_error"}])
            seen.add(ref)
            if ref not in by_ref:
                raise Unprocessable(
                    f"{ref[0]}/{ref[1]} is not a member of entity {entity_id}",
                    details=[{"loc": loc, "msg": "not a member of this entity", "type": "value_error"}],
                )
        if len(seen) >= len(entity.links):
            raise Unprocessable(
                "A split must leave at least one resource in the entity",
                details=[{"loc": ["body", "resources"], "msg": "lists every member of the entity", "type": "value_error"}],
            )
        if len(resources) > MAX_DECISION_MEMBERS:  # the request model caps it too
            raise Unprocessable(
                f"A split moves at most {MAX_DECISION_MEMBERS} resources",
                details=[{"loc": ["body", "resources"], "msg": "too many resources", "type": "too_long"}],
            )
        moving = [by_ref[r] for r in resources]
        now = self.clock()
        first = {**moving[0], "display_name": self.reader.display_name(ws, *link_ref(moving[0]))}
        candidate_id = _anchor(ws, first)
        reused = self.reader.entity(ws, candidate_id) if candidate_id != entity_id else None
        if candidate_id == entity_id or (reused is not None and reused.status != "merged"):
            candidate_id, reused = str(uuid.uuid4()), None
        new_id = candidate_id
        refs = [_ref_json(link) for link in moving]
        request = request or {"resources": refs}
        ops = [self._meta_update(ws, entity, now, member_delta=-len(moving))]
        if reused is not None:
            ops.append(self._meta_update(ws, reused, now, member_delta=len(moving), reactivate=True, display_name=first.get("display_name")))
        else:
            ops.append(
                {
                    "Put": {
                        "Item": _item(
                            {
                                "PK": keys.entity_pk(ws, new_id),
                                "SK": keys.ENTITY_SK,
                                "entity_id": new_id,
                                "entity_type": entity.entity_type,
                                "display_name": first.get("display_name"),
                                "status": "active",
                                "member_count": len(moving),
                                "created_at": now,
                                "updated_at": now,
                                "version": 1,
                                "anchor": "{}/{}".format(*link_ref(first)),
                            }
                        ),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                }
            )
        ops += self._materialise(entity, skip={link_ref(m) for m in moving})
        for link in moving:
            ops += self._move(ws, link, entity, new_id, now, actor)
        ops += [
            self._not(ws, entity_id, new_id, now, actor),
            self._not(ws, new_id, entity_id, now, actor),
            self._event(ws, entity_id, "split", now, actor, request, resources=refs, other_entity_id=new_id, direction="from"),
            self._event(ws, new_id, "split", now, actor, request, resources=refs, other_entity_id=entity_id, direction="into"),
            self._counter(ws, entity.entity_type, +1),
        ]
        self._transact(ops, "split")
        return self._reread(ws, entity_id), self._reread(ws, new_id)

    # ---- candidates -------------------------------------------------------------------------------

    def decide_candidate(self, ws: str, candidate_id: str, decision: str, actor: Actor) -> tuple[dict[str, Any], Entity | None]:
        """Accept (merge the candidate's two entities) or reject (never together again) an open
        candidate: ``(candidate as decided, the entity after an accept)``. 409 when already decided."""
        cand = self.reader.candidate(ws, candidate_id)
        if cand is None:
            raise NotFound(f"Match candidate {candidate_id} not found", details=[{"loc": ["path", "candidate_id"], "msg": "unknown candidate", "type": "not_found"}])
        if cand.get("status") != "open":
            raise Conflict(
                f"Match candidate {candidate_id} was already {cand.get('status')}",
                details=[{"loc": ["path", "candidate_id"], "msg": f"already {cand.get('status')}", "type": "conflict"}],
            )
        new_record = self.reader.resolve(ws, str(cand["entity_id"]))
        existing = self.reader.resolve(ws, str(cand["other_entity_id"]))
        if new_record is None or existing is None:
            raise Conflict(
                f"An entity of match candidate {candidate_id} no longer exists",
                details=[{"loc": ["path", "candidate_id"], "msg": "entity missing", "type": "conflict"}],
            )
        now = self.clock()
        status = "accepted" if decision == "accept" else "rejected"
        request = {"candidate_id": candidate_id, "decision": decision, **({"reason": actor.reason} if actor.reason else {})}
        ops = self._candidate_ops(ws, cand, status, now, actor)
        same = new_record.entity_id == existing.entity_id
        if decision == "accept":
            if not same:  # (already one entity: a person merged them meanwhile — the candidate is simply accepted)
                ops = self._merge_ops(ws, existing, new_record, actor, request) + ops
        else:
            if same:
                raise Conflict(
                    f"The records of match candidate {candidate_id} are already one entity ({existing.entity_id}); split them instead",
                    details=[{"loc": ["path", "candidate_id"], "msg": "already one entity", "type": "conflict"}],
                )
            a, b = new_record.entity_id, existing.entity_id
            ops += [self._not(ws, a, b, now, actor), self._not(ws, b, a, now, actor)]
        self._transact(ops, "candidate decision")
        decided = self.reader.candidate(ws, candidate_id) or cand
        return decided, self._reread(ws, existing.entity_id) if decision == "accept" else None

    def _candidate_ops(self, ws: str, cand: dict[str, Any], status: str, now: str, actor: Actor) -> list[dict[str, Any]]:
        cid = str(cand["candidate_id"])
        decided = {"status": status, "decided_at": now, "decided_by": actor.actor_id, **({"decision_reason": actor.reason} if actor.reason else {})}
        listed = {k: v for k, v in cand.items() if k not in ("PK", "SK")} | decided
        list_sk = f"{cand['created_at']}#{cid}"
        names = {f"#d{i}": k for i, k in enumerate(decided)}
        values = {f":d{i}": v for i, v in enumerate(decided.values())}
        return [
            {
                "Update": {
                    "Key": {"PK": keys.candidate_pk(ws), "SK": keys.candidate_sk(cid)},
                    "UpdateExpression": "SET " + ", ".join(f"#d{i} = :d{i}" for i in range(len(decided))),
                    "ConditionExpression": "#st = :open",
                    "ExpressionAttributeNames": {**names, "#st": "status"},
                    "ExpressionAttributeValues": {**_dec_values(values), ":open": "open"},
                }
            },
            {"Delete": {"Key": {"PK": keys.candidate_status_pk(ws, "open"), "SK": list_sk}}},
            {"Put": {"Item": _item({"PK": keys.candidate_status_pk(ws, status), "SK": list_sk, **listed})}},
            {
                "Update": {
                    "Key": {"PK": keys.candidate_count_pk(ws), "SK": keys.CANDIDATE_COUNT_SK},
                    "UpdateExpression": "ADD #o :minus, #n :plus",
                    "ExpressionAttributeNames": {"#o": "open", "#n": status},
                    "ExpressionAttributeValues": {":minus": -1, ":plus": 1},
                }
            },
        ]

    # ---- item operations --------------------------------------------------------------------------

    def _active(self, ws: str, entity_id: str, loc: list[Any]) -> Entity:
        found = self.reader.entity(ws, entity_id)
        if found is None:
            raise NotFound(f"Entity {entity_id} not found", details=[{"loc": loc, "msg": "unknown entity", "type": "not_found"}])
        if found.status == "merged":
            raise Conflict(
                f"Entity {entity_id} was merged into {found.merged_into}; act on that entity instead",
                details=[{"loc": loc, "msg": f"merged into {found.merged_into}", "type": "conflict"}],
            )
        return found

    def _reread(self, ws: str, entity_id: str) -> Entity:
        found = self.reader.entity(ws, entity_id)
        assert found is not None
        return found

    def _meta_update(
        self,
        ws: str,
        entity: Entity,
        now: str,
        *,
        member_delta: int,
        merged_into: str | None = None,
        reactivate: bool = False,
        display_name: str | None = None,
    ) -> dict[str, Any]:
        """``META`` update conditioned on the version read (a missing ``version`` is 0)."""
        names = {"#v": "version", "#u": "updated_at", "#m": "member_count", "#s": "status"}
        values: dict[str, Any] = {":v": entity.version + 1, ":now": now, ":base": len(entity.links), ":d": member_delta}
        sets = ["#v = :v", "#u = :now", "#m = if_not_exists(#m, :base) + :d"]
        removes: list[str] = []
        if merged_into:
            names["#mi"] = "merged_into"
            values |= {":merged": "merged", ":to": merged_into, ":zero": 0}
            sets = ["#v = :v", "#u = :now", "#m = :zero", "#s = :merged", "#mi = :to"]
        elif reactivate:
            names["#mi"] = "merged_into"
            values |= {":active": "active", ":n": member_delta}
            sets = ["#v = :v", "#u = :now", "#m = :n", "#s = :active"]
            removes.append("#mi")
            if display_name:
                names["#dn"] = "display_name"
                values[":dn"] = display_name
                sets.append("#dn = :dn")
            del values[":base"], values[":d"]
        if entity.version:
            condition = "#v = :prev"
            values[":prev"] = entity.version
        else:
            condition = "attribute_exists(PK) AND attribute_not_exists(#v)"
        if reactivate:  # only an entity that is still merged away is brought back
            condition += " AND #s = :mg"
            values[":mg"] = "merged"
        else:
            condition += " AND (attribute_not_exists(#s) OR #s = :act)"
            values[":act"] = "active"
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        return {
            "Update": {
                "Key": {"PK": keys.entity_pk(ws, entity.entity_id), "SK": keys.ENTITY_SK},
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _materialise(self, entity: Entity, skip: set[tuple[str, str]] = frozenset()) -> list[dict[str, Any]]:  # type: ignore[assignment]
        """Write an entity's virtual (pre-link-item) anchor link as a real link item."""
        return [
            {"Put": {"Item": _item({k: v for k, v in link.items() if k != "virtual"})}}
            for link in entity.links
            if link.get("virtual") and link_ref(link) not in skip
        ]

    def _move(self, ws: str, link: dict[str, Any], source: Entity, target_id: str, now: str, actor: Actor) -> list[dict[str, Any]]:
        rt, rid = link_ref(link)
        anchor = _anchor(ws, link)
        previous = {k: link[k] for k in ("confidence", "method", "evidence", "linked_at", "linked_by") if link.get(k) is not None}
        moved = {k: v for k, v in link.items() if k not in ("PK", "SK", "virtual", "previous")}
        moved |= {
            "PK": keys.entity_pk(ws, target_id),
            "SK": keys.entity_link_sk(rt, rid),
            "entity_id": target_id,
            "anchor_id": anchor,
            "confidence": 1.0,
            "method": "manual",
            "pinned": True,
            "linked_at": now,
            "linked_by": actor.actor_id,
            "previous": previous,
        }
        ops: list[dict[str, Any]] = [
            {"Delete": {"Key": {"PK": keys.entity_pk(ws, source.entity_id), "SK": keys.entity_link_sk(rt, rid)}}},
            {"Put": {"Item": _item(moved)}},
        ]
        entity_ops = EntityOps(self.table.name)
        ops.append(entity_ops.delete_alias(ws, anchor) if anchor == target_id else entity_ops.put_alias(ws, anchor, target_id))
        return ops

    def _not(self, ws: str, entity_id: str, other: str, now: str, actor: Actor) -> dict[str, Any]:
        return {
            "Put": {
                "Item": _item(
                    {
                        "PK": keys.entity_pk(ws, entity_id),
                        "SK": keys.entity_not_sk(other),
                        "other_entity_id": other,
                        "at": now,
                        "actor": actor.actor_id,
                        "reason": actor.reason,
                    }
                )
            }
        }

    def _event(
        self, ws: str, entity_id: str, event_type: str, now: str, actor: Actor, request: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        event_id = str(uuid.uuid4())
        return {
            "Put": {
                "Item": _item(
                    {
                        "PK": keys.entity_pk(ws, entity_id),
                        "SK": keys.entity_event_sk(now, event_id),
                        "event_id": event_id,
                        "entity_id": entity_id,
                        "event_type": event_type,
                        "at": now,
                        "actor": actor.actor_id,
                        "reason": actor.reason or f"{event_type} requested by {actor.actor_id}",
                        "request": request,
                        **extra,
                    }
                ),
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }

    def _counter(self, ws: str, entity_type: str, delta: int) -> dict[str, Any]:
        return {
            "Update": {
                "Key": {"PK": keys.stats_pk(ws), "SK": keys.stats_sk(random.randrange(keys.COUNTER_SHARDS))},
                "UpdateExpression": "ADD #e :d, #t :d",
                "ExpressionAttributeNames": {"#e": "entity_count", "#t": f"et_{entity_type}"},
                "ExpressionAttributeValues": {":d": delta},
            }
        }

    def _transact(self, ops: list[dict[str, Any]], what: str) -> None:
        items = []
        for op in ops:
            ((kind, body),) = op.items()
            items.append({kind: {**_dec_body(body), "TableName": self.table.name}})
        if len(items) > 100:  # the member caps keep every decision within one transaction
            raise Conflict(f"The {what} needs {len(items)} writes, more than one transaction holds; split the entity first")
        try:
            self.table.meta.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            codes = cancellation_codes(exc)
            if "ConditionalCheckFailed" in codes or "TransactionConflict" in codes:
                raise Conflict(
                    f"The entities changed while the {what} was being written; nothing was changed, re-read and retry",
                    details=[{"loc": ["path"], "msg": "concurrent change", "type": "conflict"}],
                ) from None
            raise


def _anchor(ws: str, link: dict[str, Any]) -> str:
    return str(link.get("anchor_id") or anchor_entity_id(ws, *link_ref(link)))


def _ref_json(link: dict[str, Any]) -> dict[str, str]:
    rt, rid = link_ref(link)
    return {"resource_type": rt, "resource_id": rid}


def _dec(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _dec(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_dec(v) for v in value]
    return value


def _item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _dec(v) for k, v in values.items() if v is not None}


def _dec_values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _dec(v) for k, v in values.items()}


def _dec_body(body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    if "ExpressionAttributeValues" in out:
        out["ExpressionAttributeValues"] = _dec_values(out["ExpressionAttributeValues"])
    if "Item" in out:
        out["Item"] = _item(out["Item"])
    return out
