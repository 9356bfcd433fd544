"""World-model entities: read an entity and its history, review match candidates, merge and split.

Reads need ``read``; decisions (merge, split, accept, reject) need ``write``. Everything stays in
the key's workspace (another workspace's key is 403, an unknown entity or candidate 404). The
decisions are transactions in :mod:`fhir_platform.storage.entity_decisions`; ``docs/entities.md``
describes the items, the limits and what a merged entity answers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform.api import deps
from fhir_platform.api.entity_models import (
    CandidateDecisionResponse,
    EntityHistoryResponse,
    EntityResponse,
    MatchCandidatePage,
    MergeEntityRequest,
    SplitEntityRequest,
    SplitEntityResponse,
)
from fhir_platform.api.openapi import responds
from fhir_platform.api.resolver import json_response
from fhir_platform.auth.permissions import READ, WRITE
from fhir_platform.auth.principal import Principal
from fhir_platform.errors import NotFound
from fhir_platform.paging import MAX_OFFSET
from fhir_platform.storage.entity_decisions import Actor, EntityDecisions
from fhir_platform.storage.entity_reads import Entity, EntityReader

get_entity = APIGatewayHttpRouter()
entity_history = APIGatewayHttpRouter()
merge_entity = APIGatewayHttpRouter()
split_entity = APIGatewayHttpRouter()
list_entity_candidates = APIGatewayHttpRouter()
accept_entity_candidate = APIGatewayHttpRouter()
reject_entity_candidate = APIGatewayHttpRouter()

MAX_LINKS_SHOWN = 100
CandidateId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


def _evidence(value: Any) -> list[dict[str, Any]]:
    out = []
    for e in value or []:
        if isinstance(e, dict) and e.get("field"):
            out.append({"field": str(e["field"]), "level": e.get("level"), "weight": e.get("weight")})
        elif isinstance(e, str):
            out.append({"field": e})
    return out


def entity_out(reader: EntityReader, ws: str, entity: Entity) -> EntityResponse:
    meta = entity.meta
    links = entity.links[:MAX_LINKS_SHOWN]
    display = meta.get("display_name")
    if display is None and entity.links:
        display = reader.display_name(ws, str(entity.links[0]["resource_type"]), str(entity.links[0]["resource_id"]))
    return EntityResponse.model_validate(
        {
            "entity_id": entity.entity_id,
            "entity_type": entity.entity_type,
            "display_name": display,
            "status": entity.status,
            "merged_into": entity.merged_into if entity.status == "merged" else None,
            "member_count": len(entity.links),
            "links": [
                {
                    "resource_type": link["resource_type"],
                    "resource_id": link["resource_id"],
                    "confidence": link.get("confidence"),
                    "method": link.get("method"),
                    "linked_at": link.get("linked_at"),
                    "linked_by": link.get("linked_by"),
                    "pinned": bool(link.get("pinned")),
                    "evidence": _evidence(link.get("evidence")),
                }
                for link in links
            ],
            "links_truncated": len(entity.links) > len(links),
            "created_at": meta.get("created_at"),
            "updated_at": meta.get("updated_at") or meta.get("created_at"),
            "version": entity.version,
        }
    )


def _candidate_out(item: dict[str, Any]) -> dict[str, Any]:
    resources = item.get("resources")
    if not isinstance(resources, list):
        resources = [
            {"resource_type": item[t], "resource_id": item[i]}
            for t, i in (("resource_type", "resource_id"), ("other_resource_type", "other_resource_id"))
            if item.get(t) and item.get(i)
        ]
    return {
        **{k: item.get(k) for k in ("candidate_id", "status", "entity_id", "other_entity_id", "confidence", "grade", "created_at", "decided_at", "decided_by")},
        "resources": resources,
        "evidence": _evidence(item.get("evidence")),
    }


def _actor(caller: Principal, reason: str | None = None) -> Actor:
    return Actor(caller.key_id or ("admin" if caller.is_admin else "unknown"), reason)


def _entity_or_404(reader: EntityReader, ws: str, entity_id: UUID) -> Entity:
    found = reader.entity(ws, str(entity_id))
    if found is None:
        raise NotFound(f"Entity {entity_id} not found", details=[{"loc": ["path", "entity_id"], "msg": "unknown entity", "type": "not_found"}])
    return found


@get_entity.get("/v1/<workspace_id>/entities/<entity_id>", responses=responds(200, EntityResponse))
def get_one(workspace_id: UUID, entity_id: UUID):
    deps.authorize(get_entity, workspace_id, READ)
    reader = EntityReader()
    return json_response(200, entity_out(reader, str(workspace_id), _entity_or_404(reader, str(workspace_id), entity_id)))


@entity_history.get("/v1/<workspace_id>/entities/<entity_id>/history", responses=responds(200, EntityHistoryResponse))
def get_history(
    workspace_id: UUID,
    entity_id: UUID,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
):
    deps.authorize(entity_history, workspace_id, READ)
    deps.reject_unknown_params(entity_history, ("limit", "offset"))
    ws, reader = str(workspace_id), EntityReader()
    if not reader.metas(ws, [str(entity_id)]):
        raise NotFound(f"Entity {entity_id} not found", details=[{"loc": ["path", "entity_id"], "msg": "unknown entity", "type": "not_found"}])
    items, total, has_more = reader.history(ws, str(entity_id), limit, offset)
    entries = []
    for item in items:
        reason = item.get("reason")
        # the resolver's events carry their decision ({decision, confidence, method, reason, evidence}),
        # a person's decision its text, and the request that made it
        decided = reason if isinstance(reason, dict) else {}
        text = reason if isinstance(reason, str) else decided.get("reason") or decided.get("decision")
        evidence = item.get("evidence") if item.get("evidence") is not None else decided.get("evidence") if decided else reason if isinstance(reason, list) else None
        entries.append(
            {
                **{k: item.get(k) for k in ("event_id", "event_type", "at", "other_entity_id", "direction")},
                "actor": item.get("actor") or "system",
                "reason": str(text) if text is not None else None,
                "method": decided.get("method"),
                "confidence": item.get("confidence", decided.get("confidence")),
                "evidence": _evidence(evidence) if evidence is not None else None,
                "request": item.get("request") if isinstance(item.get("request"), dict) else None,
                "resources": item.get("resources") if isinstance(item.get("resources"), list) else [],
            }
        )
    return json_response(
        200,
        EntityHistoryResponse.model_validate(
            {"entity_id": entity_id, "entries": entries, "total": total, "has_more": has_more, "next_offset": offset + len(items) if has_more else None}
        ),
    )


@merge_entity.post("/v1/<workspace_id>/entities/<entity_id>/merge", responses=responds(200, EntityResponse, errors=(409,)))
def post_merge(workspace_id: UUID, entity_id: UUID, body: MergeEntityRequest):
    caller = deps.authorize(merge_entity, workspace_id, WRITE)
    ws = str(workspace_id)
    decisions = EntityDecisions()
    merged = decisions.merge(ws, str(entity_id), str(body.from_entity_id), _actor(caller, body.reason), request=body.model_dump(mode="json"))
    return json_response(200, entity_out(decisions.reader, ws, merged))


@split_entity.post("/v1/<workspace_id>/entities/<entity_id>/split", responses=responds(201, SplitEntityResponse, errors=(409,)))
def post_split(workspace_id: UUID, entity_id: UUID, body: SplitEntityRequest):
    caller = deps.authorize(split_entity, workspace_id, WRITE)
    ws = str(workspace_id)
    decisions = EntityDecisions()
    refs = [(r.resource_type, r.resource_id) for r in body.resources]
    kept, new = decisions.split(ws, str(entity_id), refs, _actor(caller, body.reason), request=body.model_dump(mode="json"))
    out = {"entity": entity_out(decisions.reader, ws, kept), "new_entity": entity_out(decisions.reader, ws, new)}

    return json_response(201, SplitEntityResponse.model_validate(out))


@list_entity_candidates.get("/v1/<workspace_id>/entity-candidates", responses=responds(200, MatchCandidatePage))
def get_candidates(
    workspace_id: UUID,
    status: Annotated[Literal["open", "accepted", "rejected"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
):
    deps.authorize(list_entity_candidates, workspace_id, READ)
    deps.reject_unknown_params(list_entity_candidates, ("status", "limit", "offset"))
    items, total, has_more = EntityReader().candidates(str(workspace_id), status, limit, offset)
    return json_response(
        200,
        MatchCandidatePage.model_validate(
            {
                "candidates": [_candidate_out(i) for i in items],
                "total": total,
                "has_more": has_more,
                "next_offset": offset + len(items) if has_more else None,
            }
        ),
    )


def _decide(router: Any, workspace_id: UUID, candidate_id: str, decision: str):
    caller = deps.authorize(router, workspace_id, WRITE)
    ws = str(workspace_id)
    decisions = EntityDecisions()
    candidate, entity = decisions.decide_candidate(ws, candidate_id, decision, _actor(caller, f"candidate {candidate_id} {decision}ed by a reviewer"))
    body = {"candidate": _candidate_out(candidate), "entity": entity_out(decisions.reader, ws, entity) if entity else None}
    return json_response(200, CandidateDecisionResponse.model_validate(body))


@accept_entity_candidate.post("/v1/<workspace_id>/entity-candidates/<candidate_id>/accept", responses=responds(200, CandidateDecisionResponse, errors=(409,)))
def post_accept(workspace_id: UUID, candidate_id: CandidateId):
    return _decide(accept_entity_candidate, workspace_id, candidate_id, "accept")


@reject_entity_candidate.post("/v1/<workspace_id>/entity-candidates/<candidate_id>/reject", responses=responds(200, CandidateDecisionResponse, errors=(409,)))
def post_reject(workspace_id: UUID, candidate_id: CandidateId):
    return _decide(reject_entity_candidate, workspace_id, candidate_id, "reject")
