"""The FHIR-native REST facade, ``/v1/{ws}/fhir/r4`` (``docs/fhir-rest.md``): one router per
interaction, over the same services as the platform's own routes (``ResourceService``, the search
executor, the bundle import's preparation). Bodies and responses are plain FHIR JSON; errors are
``OperationOutcome`` (:mod:`fhir_platform.api.fhir_rest`).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from datetime import datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl, urlencode
from uuid import UUID, uuid4

from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform import errors
from fhir_platform.api import deps
from fhir_platform.api.fhir_rest import base_url, fhir_response, raw_locations, resource_body
from fhir_platform.api.params import ResourceId, ResourceType
from fhir_platform.auth.permissions import READ, WRITE
from fhir_platform.fhir.resource_types import STORABLE_RESOURCE_TYPES
from fhir_platform.resources.service import WriteContext, WriteOutcome, check_resource_type

# Loaded by the interactions that use them, not at every facade function's init (docs/operations.md,
# Cold starts): the search executor and query parser (search, conditional writes, $everything), the
# bundle preparation and atomic commit (transaction), the search parameters (metadata).
if TYPE_CHECKING:
    from fhir_platform.storage.resources import StoredResource

capabilities = APIGatewayHttpRouter()
read = APIGatewayHttpRouter()
vread = APIGatewayHttpRouter()
history = APIGatewayHttpRouter()
type_history = APIGatewayHttpRouter()
create = APIGatewayHttpRouter()
update = APIGatewayHttpRouter()
conditional_update = APIGatewayHttpRouter()
search = APIGatewayHttpRouter()
search_post = APIGatewayHttpRouter()
delete = APIGatewayHttpRouter()
transaction = APIGatewayHttpRouter()
everything = APIGatewayHttpRouter()

FHIR_VERSION = "4.0.1"
CAPABILITY_DATE = "2026-11-30"  # when what the facade serves last changed
_ETAG = re.compile(r'^\s*(?:W/)?"(\d+)"\s*$')
HISTORY_MAX = 50
REVINCLUDE_MAX = 100  # resources per _revinclude search (10 matches each)
# search result parameters the facade serves itself (the rest go to the platform's search)
INCLUDES = {"Encounter": ("Encounter:patient",), "Observation": ("Observation:patient",), "Patient": ("Patient:general-practitioner",)}
REVINCLUDES = {"Patient": ("Encounter:patient", "Observation:patient")}
_INCLUDE_PATHS = {"Encounter:patient": ("subject", "Patient"), "Observation:patient": ("subject", "Patient"), "Patient:general-practitioner": ("generalPractitioner", None)}


# ---- shared ------------------------------------------------------------------------------------


def _http_date(instant: str) -> str:
    return format_datetime(datetime.fromisoformat(instant.replace("Z", "+00:00")), usegmt=True)


def _with_meta(data: dict[str, Any], version: int | None, last_updated: str | None) -> dict[str, Any]:
    meta = dict(data.get("meta") or {})
    if version is not None:
        meta["versionId"] = str(version)
    if last_updated:
        meta["lastUpdated"] = last_updated
    return {**data, "meta": meta}


def _resource_headers(router: Any, ws: Any, stored: StoredResource) -> dict[str, str]:
    location = f"{base_url(router, ws)}/{stored.resource_type}/{stored.resource_id}/_history/{stored.version}"
    return {"ETag": f'W/"{stored.version}"', "Last-Modified": _http_date(stored.last_updated), "Location": location}


def _prefer_minimal(router: Any) -> bool:
    prefer = (router.current_event.headers or {}).get("prefer", "")
    return any(p.strip().lower() == "return=minimal" for p in prefer.split(";") + prefer.split(","))


def _write_response(router: Any, ws: Any, status: int, stored: StoredResource):
    headers = _resource_headers(router, ws, stored)
    if _prefer_minimal(router):
        return fhir_response(status, None, headers)
    return fhir_response(status, _with_meta(stored.data, stored.version, stored.last_updated), headers)


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    match = _ETAG.match(value)
    if not match:
        raise errors.InvalidInput(
            'If-Match must be a version ETag such as W/"3"',
            details=[{"loc": ["header", "if-match"], "msg": "not a version ETag", "type": "value_error"}],
        )
    return int(match.group(1))


def _bad_param(name: str, msg: str) -> errors.InvalidQuery:
    return errors.InvalidQuery(f"Invalid query parameter {name}: {msg}", details=[{"loc": ["query", name], "msg": msg, "type": "value_error"}])


# ---- metadata ----------------------------------------------------------------------------------

def _sort_documentation(rtype: str) -> str:
    from fhir_platform.search.sorting import sort_fields

    return (
        f"sort fields: {', '.join(sort_fields(rtype))} (prefix - for descending), optionally followed by _id or -_id "
        "as the tie-break; combinable with every search parameter; resources without a value come last"
    )


def capability_statement(base: str) -> dict[str, Any]:
    """What the facade really serves: every storable type, its interactions and the search
    parameters of :func:`~fhir_platform.search.parameters.params_for`, with their FHIR types."""
    from fhir_platform.search.parameters import Kind, params_for

    type_names = {Kind.STRING: "string", Kind.TEXT: "string", Kind.TOKEN: "token", Kind.DATE: "date", Kind.REFERENCE: "reference", Kind.PHONE: "token", Kind.ID: "token"}
    resources = []
    for rtype in sorted(STORABLE_RESOURCE_TYPES):
        params = [
            {"name": p.name, "type": type_names[p.kind]}
            for p in sorted(params_for(rtype).values(), key=lambda p: p.name)
            if p.name != "q"
        ]
        params.append({"name": "q", "type": "string", "documentation": "platform search: every word is a prefix of a word of the names/displays"})
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": c} for c in ("read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type")],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalUpdate": True,
            "conditionalDelete": "not-supported",
            "searchInclude": list(INCLUDES.get(rtype, ())),
            "searchRevInclude": list(REVINCLUDES.get(rtype, ())),
            "searchParam": params + [{"name": "_count", "type": "number"}, {"name": "_offset", "type": "number"}, {"name": "_sort", "type": "string", "documentation": _sort_documentation(rtype)}],
        }
        if rtype == "Patient":
            entry["operation"] = [{"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": CAPABILITY_DATE,
        "kind": "instance",
        "software": {"name": "fhir-platform"},
        "implementation": {"description": "FHIR clinical-data platform, FHIR R4 REST facade", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {"description": "Authorization: Bearer <platform API key>", "cors": False},
                "resource": resources,
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }


@capabilities.get("/v1/<workspace_id>/fhir/r4/metadata")
def get_metadata(workspace_id: UUID):
    deps.authorize_fhir(capabilities, workspace_id, READ)
    return fhir_response(200, capability_statement(base_url(capabilities, workspace_id)))


# ---- instance reads ----------------------------------------------------------------------------


@read.get("/v1/<workspace_id>/fhir/r4/<resource_type>/<resource_id>")
def get_resource(workspace_id: UUID, resource_type: ResourceType, resource_id: ResourceId):
    deps.authorize_fhir(read, workspace_id, READ)
    stored = deps.resources().read(str(workspace_id), resource_type, resource_id)
    return fhir_response(200, _with_meta(stored.data, stored.version, stored.last_updated), _resource_headers(read, workspace_id, stored))


def _history_entry(base: str, rtype: str, rid: str, event: dict[str, Any]) -> dict[str, Any]:
    version = int(event["version"])
    deleted = event.get("event_type") == "deleted"
    when = event.get("created_at")
    entry: dict[str, Any] = {"fullUrl": f"{base}/{rtype}/{rid}"}
    if not deleted and isinstance(event.get("data"), dict):
        entry["resource"] = _with_meta(event["data"], version, when)
    method = "DELETE" if deleted else ("POST" if version == 1 else "PUT")
    entry["request"] = {"method": method, "url": f"{rtype}/{rid}" if method != "POST" else rtype}
    entry["response"] = {"status": "410 Gone" if deleted else ("201 Created" if version == 1 else "200 OK"), "etag": f'W/"{version}"'}
    if when:
        entry["response"]["lastModified"] = when
    return entry


@history.get("/v1/<workspace_id>/fhir/r4/<resource_type>/<resource_id>/_history")
def get_history(workspace_id: UUID, resource_type: ResourceType, resource_id: ResourceId):
    deps.authorize_fhir(history, workspace_id, READ)
    pairs = parse_qsl(history.current_event.raw_query_string or "", keep_blank_values=True)
    query = dict(pairs)
    for name in query:
        if name not in ("_count", "_offset", "_format", "_pretty"):
            raise _bad_param(name, "unknown parameter (supported: _count, _offset)")
    count, offset = _int_param(query, "_count", 10, 1, HISTORY_MAX), _int_param(query, "_offset", 0, 0, None)
    page = deps.resources().history(str(workspace_id), resource_type, resource_id, count, offset)
    base = base_url(history, workspace_id)
    self_url = f"{base}/{resource_type}/{resource_id}/_history"
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "history",
        "total": page.total,
        "link": _links(self_url, [("_count", str(count))], offset, count, page.has_more),
        "entry": [_history_entry(base, resource_type, resource_id, e) for e in page.entries],
    }
    return fhir_response(200, bundle)


@type_history.get("/v1/<workspace_id>/fhir/r4/<resource_type>/_history")
def get_type_history(workspace_id: UUID, resource_type: ResourceType):
    """``GET {type}/_history``: every change of the type's resources (creates, updates, deletes),
    newest first, from the table's ``TypeIndex`` entries of the events (``TPK``/``TSK`` set on each
    event item: 8 shard Queries merged, ``Limit`` 100 then 1,000, keys only; a global secondary
    index, so an event is listed once the index has it, typically within a second of its write) and
    the page's events in one BatchGetItem.
    ``_count`` 1-50 (default 10), ``_offset``, ``_since`` (an instant or date: changes at or after
    it). ``total``: the type's write-time event counter without ``_since``; with it, exact when the
    walk reached the end, else left out."""
    from fhir_platform.search.executor import _Reader
    from fhir_platform.search.indexing import KeyCondition
    from fhir_platform.search.normalize import date_range
    from fhir_platform.storage import keys

    deps.authorize_fhir(type_history, workspace_id, READ)
    check_resource_type(resource_type)
    pairs = parse_qsl(type_history.current_event.raw_query_string or "", keep_blank_values=True)
    query = dict(pairs)
    for name in query:
        if name not in ("_count", "_offset", "_since", "_format", "_pretty"):
            raise _bad_param(name, "unknown parameter (supported: _count, _offset, _since)")
    count, offset = _int_param(query, "_count", 10, 1, HISTORY_MAX), _int_param(query, "_offset", 0, 0, None)
    since = None
    if query.get("_since"):
        try:
            since = date_range(query["_since"])[0]
        except ValueError:
            raise _bad_param("_since", "must be an instant or date (YYYY, YYYY-MM-DD, YYYY-MM-DDThh:mm:ss[.fff]Z)") from None
    ws, store = str(workspace_id), deps.resources().store
    prefix = keys.type_history_pk(ws, resource_type)
    conds = [
        KeyCondition(f"{prefix}#{s}", ">=" if since else "all", (since,) if since else (), index=keys.TYPE_INDEX)
        for s in range(keys.TYPE_HISTORY_SHARDS)
    ]
    reader = _Reader(store.table, Counter())
    walked = []
    for item in reader.merged(conds, False):
        _, rid, version = item[keys.TYPE_INDEX_SK].rsplit("#", 2)  # {at}#{id}#{version}
        walked.append((rid, int(version)))
        if len(walked) > offset + count:
            break
    page = walked[offset : offset + count]
    has_more = len(walked) > offset + count
    events = store.events_at(ws, [(resource_type, rid, v) for rid, v in page])
    base = base_url(type_history, workspace_id)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history"}
    if since is None:
        bundle["total"] = store.counters(ws)["event_type_counts"].get(resource_type, 0)
    elif not has_more:
        bundle["total"] = len(walked)
    kept = [(k, v) for k, v in pairs if k in ("_count", "_since")] or [("_count", str(count))]
    bundle["link"] = _links(f"{base}/{resource_type}/_history", kept, offset, count, has_more)
    bundle["entry"] = [_history_entry(base, resource_type, rid, events[(resource_type, rid, v)]) for rid, v in page if (resource_type, rid, v) in events]
    return fhir_response(200, bundle)


@vread.get("/v1/<workspace_id>/fhir/r4/<resource_type>/<resource_id>/_history/<version_id>")
def get_version(workspace_id: UUID, resource_type: ResourceType, resource_id: ResourceId, version_id: Annotated[str, Path(max_length=20)]):
    deps.authorize_fhir(vread, workspace_id, READ)
    if not version_id.isdigit() or int(version_id) < 1:
        raise errors.InvalidInput("Version id must be a positive integer", details=[{"loc": ["path", "version_id"], "msg": "not a version number", "type": "value_error"}])
    wanted = int(version_id)
    service, ws = deps.resources(), str(workspace_id)
    newest = service.history(ws, resource_type, resource_id, 1, 0)  # its total is the current version
    if wanted > newest.total:
        raise errors.NotFound(f"{resource_type}/{resource_id} has no version {wanted}")
    page = newest if wanted == newest.total else service.history(ws, resource_type, resource_id, 1, newest.total - wanted)
    event = page.entries[0]
    if event.get("event_type") == "deleted":
        raise errors.Gone(f"{resource_type}/{resource_id} version {wanted} is its deletion")
    when = event.get("created_at") or event.get("effective_at")
    headers = {"ETag": f'W/"{wanted}"'} | ({"Last-Modified": _http_date(when)} if when else {})
    return fhir_response(200, _with_meta(event["data"], wanted, when), headers)


# ---- writes ------------------------------------------------------------------------------------


def conditional_matches(ws: str, resource_type: str, pairs: list[tuple[str, str]], where: list[str]) -> list[str]:
    """Ids of the resources (at most 2: one, or "several") that conditional criteria find — a
    conditional create's ``If-None-Exist`` / ``ifNoneExist``, a conditional update's query. The
    criteria are the type's search parameters (at least one), run by the platform's search; a
    problem is a 422 whose ``loc`` is ``where`` + the parameter."""
    from fhir_platform.search.executor import search_resources
    from fhir_platform.search.query import QueryError, parse_search_pairs

    store = deps.resources().store
    try:
        if any(k.startswith("_") and k != "_id" for k, _ in pairs):
            raise QueryError(next(k for k, _ in pairs if k.startswith("_") and k != "_id"), "conditional criteria take search parameters only")
        query = parse_search_pairs(resource_type, [*pairs, ("_count", "2")])
        if not query.criteria:
            raise QueryError("criteria", "conditional criteria need at least one search parameter (e.g. identifier=system|value)")
        with deps.search_errors():
            page = search_resources(store.table, ws, query, load_data=store.load_data)
    except QueryError as exc:
        raise errors.InvalidQuery(f"Invalid conditional criteria {exc.param}: {exc.msg}", details=[{"loc": [*where, exc.param], "msg": exc.msg, "type": "value_error"}]) from None
    return [e["resource"]["id"] for e in page.entries]


def criteria_pairs(raw: str, resource_type: str, where: list[Any]) -> list[tuple[str, str]]:
    """``identifier=a|b``, ``?identifier=a|b`` or ``Patient?identifier=a|b`` → the pairs (``where``:
    the ``loc`` of a problem)."""
    text = raw.strip()
    if "?" in text:
        head, _, text = text.partition("?")
        if head.strip("/").rsplit("/", 1)[-1] not in ("", resource_type):
            raise errors.InvalidQuery("Conditional criteria name another resource type", details=[{"loc": where, "msg": f"must be criteria on {resource_type}", "type": "value_error"}])
    return parse_qsl(text, keep_blank_values=True)


@create.post("/v1/<workspace_id>/fhir/r4/<resource_type>")
def post_resource(workspace_id: UUID, resource_type: ResourceType, if_none_exist: Annotated[str | None, Header(max_length=2000)] = None):
    """``POST {type}``; with ``If-None-Exist: criteria`` (FHIR conditional create; or the criteria
    as the query string, ``POST {type}?criteria``) nothing is created when the criteria find one
    resource (200 with it), and several are 412."""
    deps.authorize_fhir(create, workspace_id, WRITE)
    check_resource_type(resource_type)
    data = resource_body(create, resource_type)
    ws = str(workspace_id)
    in_url = [(k, v) for k, v in parse_qsl(create.current_event.raw_query_string or "", keep_blank_values=True) if k not in ("_format", "_pretty")]
    if if_none_exist is not None and in_url:
        raise _bad_param(in_url[0][0], "give conditional-create criteria in If-None-Exist or in the query string, not both")
    if if_none_exist is not None or in_url:
        # the header is FHIR's; criteria in the URL are how some clients (fhirpy's get_or_create) send them
        pairs, where = (criteria_pairs(if_none_exist, resource_type, ["header", "if-none-exist"]), ["header", "if-none-exist"]) if if_none_exist is not None else (in_url, ["query"])
        found = conditional_matches(ws, resource_type, pairs, where)
        if len(found) > 1:
            raise errors.PreconditionFailed("If-None-Exist criteria match more than one resource; make them more selective")
        if found:
            return _write_response(create, workspace_id, 200, deps.resources().read(ws, resource_type, found[0]))
    with raw_locations():
        outcome = deps.resources().create(ws, resource_type, data, WriteContext(source="api"))
    return _write_response(create, workspace_id, 201, outcome.resource)


@delete.delete("/v1/<workspace_id>/fhir/r4/<resource_type>/<resource_id>")
def delete_resource(workspace_id: UUID, resource_type: ResourceType, resource_id: ResourceId):
    """``DELETE {type}/{id}``: a new version recording the deletion (the write path's delete: its
    index items go, its history stays; reads then answer 410). 204 with the deletion's ``ETag``;
    deleting a deleted resource is 204 too (idempotent); an id never written is 404."""
    deps.authorize_fhir(delete, workspace_id, WRITE)
    check_resource_type(resource_type)
    service, ws = deps.resources(), str(workspace_id)
    outcome = service.delete(ws, resource_type, resource_id, WriteContext(source="api"))
    if outcome is None:
        stored = service.store.get(ws, resource_type, resource_id)
        if stored is None:
            raise errors.NotFound(f"{resource_type}/{resource_id} not found")
        return fhir_response(204, None, {"ETag": f'W/"{stored.version}"'})
    return fhir_response(204, None, {"ETag": f'W/"{outcome.resource.version}"'})


@update.put("/v1/<workspace_id>/fhir/r4/<resource_type>/<resource_id>")
def put_resource(workspace_id: UUID, resource_type: ResourceType, resource_id: ResourceId, if_match: Annotated[str | None, Header()] = None):
    deps.authorize_fhir(update, workspace_id, WRITE)
    check_resource_type(resource_type)
    data = resource_body(update, resource_type)
    if "id" not in data:
        raise errors.InvalidInput("The resource body must carry its id (FHIR update)", details=[{"loc": ["body", "id"], "msg": "missing", "type": "missing"}])
    version = _if_match(if_match)
    with raw_locations():
        outcome = deps.resources().upsert(str(workspace_id), resource_type, resource_id, data, WriteContext(source="api"), version)
    return _write_response(update, workspace_id, 201 if outcome.created else 200, outcome.resource)


@conditional_update.put("/v1/<workspace_id>/fhir/r4/<resource_type>")
def put_conditional(workspace_id: UUID, resource_type: ResourceType):
    """``PUT {type}?criteria`` (FHIR conditional update): no match → create (with the body's id,
    or a new one); one match → update it; more than one → 412. The criteria are the type's
    search parameters (at least one), run by the platform's search."""
    deps.authorize_fhir(conditional_update, workspace_id, WRITE)
    check_resource_type(resource_type)
    pairs = parse_qsl(conditional_update.current_event.raw_query_string or "", keep_blank_values=True)
    data = resource_body(conditional_update, resource_type)
    ws = str(workspace_id)
    found = conditional_matches(ws, resource_type, pairs, ["query"])
    if len(found) > 1:
        raise errors.PreconditionFailed("Conditional update criteria match more than one resource; make them more selective")
    if found:
        rid = found[0]
        if data.get("id") not in (None, rid):
            raise errors.InvalidInput(
                "Body id does not match the resource the criteria found",
                details=[{"loc": ["body", "id"], "msg": "does not match the resource found", "type": "value_error"}],
            )
    else:
        rid = data.get("id") if isinstance(data.get("id"), str) else str(uuid4())
    with raw_locations():
        outcome = deps.resources().upsert(ws, resource_type, rid, {**data, "id": rid}, WriteContext(source="api"))
    return _write_response(conditional_update, workspace_id, 201 if outcome.created else 200, outcome.resource)


# ---- search ------------------------------------------------------------------------------------


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < low or (high is not None and int(raw) > high):
        raise _bad_param(name, f"must be an integer from {low}" + (f" to {high}" if high is not None else ""))
    return int(raw)


def _links(self_url: str, kept: list[tuple[str, str]], offset: int, count: int, has_more: bool) -> list[dict[str, str]]:
    def url(off: int) -> str:
        pairs = kept + ([("_offset", str(off))] if off else [])
        return f"{self_url}?{urlencode(pairs, safe=':,/|')}" if pairs else self_url

    links = [{"relation": "self", "url": url(offset)}]
    if has_more:
        links.append({"relation": "next", "url": url(offset + count)})
    if offset > 0:
        links.append({"relation": "previous", "url": url(max(0, offset - count))})
    return links


def _reference_ids(resource: dict[str, Any], element: str, target: str | None) -> list[tuple[str, str]]:
    refs = resource.get(element)
    out = []
    for ref in refs if isinstance(refs, list) else [refs]:
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            parts = ref["reference"].split("/")
            if len(parts) >= 2 and (target is None or parts[-2] == target):
                out.append((parts[-2], parts[-1]))
    return out


def _includes(ws: str, entries: list[dict[str, Any]], specs: list[str]) -> list[dict[str, Any]]:
    """``_include``: the resources this page's matches reference, in one BatchGetItem (per 100)."""
    refs: list[tuple[str, str]] = []
    for spec in specs:
        element, target = _INCLUDE_PATHS[spec]
        for e in entries:
            for ref in _reference_ids(e["resource"], element, target):
                if ref[0] in STORABLE_RESOURCE_TYPES and ref not in refs:
                    refs.append(ref)
    if not refs:
        return []
    found = deps.resources().store.batch_get(ws, refs)
    out = []
    for ref in refs:
        stored = found.get(ref)
        if stored is not None and not stored.deleted:
            out.append(_with_meta(stored.data, stored.version, stored.last_updated))
    return out


def _revincludes(ws: str, entries: list[dict[str, Any]], specs: list[str]) -> tuple[list[dict[str, Any]], bool]:
    """``_revinclude``: resources of the named type whose ``patient`` reference is one of this
    page's matches, through the reference index (one search per spec, bounded by ``_count``)."""
    from fhir_platform.search.executor import search_resources
    from fhir_platform.search.query import parse_search_pairs

    store = deps.resources().store
    ids = [e["resource"]["id"] for e in entries]
    found: list[dict[str, Any]] = []
    truncated = False
    for spec in specs:
        rtype = spec.split(":")[0]
        for start in range(0, len(ids), 10):  # 10 OR-ed values per search parameter
            query = parse_search_pairs(rtype, [("patient", ",".join(ids[start : start + 10])), ("_count", str(REVINCLUDE_MAX))])
            page = search_resources(store.table, ws, query, load_data=store.load_data)
            found += [e["resource"] for e in page.entries]
            truncated |= page.has_more
    return found, truncated


@search.get("/v1/<workspace_id>/fhir/r4/<resource_type>")
def get_search(workspace_id: UUID, resource_type: ResourceType):
    return _search(search, workspace_id, resource_type)


@search_post.post("/v1/<workspace_id>/fhir/r4/<resource_type>/_search")
def post_search(workspace_id: UUID, resource_type: ResourceType):
    """``POST {type}/_search``: the parameters in an ``application/x-www-form-urlencoded`` body
    (and/or the URL), exactly as ``GET {type}?...`` (:func:`~fhir_platform.api.fhir_rest.form_search_handler`
    moves the form into the query string before routing). The links are GET URLs."""
    if (search_post.current_event.body or "").strip():
        raise errors.InvalidInput(
            "POST _search takes its parameters as an application/x-www-form-urlencoded body",
            details=[{"loc": ["body"], "msg": "not a form body", "type": "unsupported_content_type"}],
        )
    return _search(search_post, workspace_id, resource_type)


def _search(router: Any, workspace_id: UUID, resource_type: str):
    from fhir_platform.search.executor import search_resources
    from fhir_platform.search.query import QueryError, parse_search_pairs
    from fhir_platform.search.sorted_search import search_sorted
    from fhir_platform.search.sorting import SortError, parse_sort

    deps.authorize_fhir(router, workspace_id, READ)
    check_resource_type(resource_type)
    ws = str(workspace_id)
    pairs = parse_qsl(router.current_event.raw_query_string or "", keep_blank_values=True)
    criteria = [(k, v) for k, v in pairs if k not in ("_sort", "_include", "_revinclude", "_total")]
    sorts = [v for k, v in pairs if k == "_sort"]
    includes = [v for k, v in pairs if k == "_include"]
    revincludes = [v for k, v in pairs if k == "_revinclude"]
    for value in includes:
        if value not in INCLUDES.get(resource_type, ()):
            raise _bad_param("_include", f"supported for {resource_type}: {', '.join(INCLUDES.get(resource_type, ())) or 'none'}")
    for value in revincludes:
        if value not in REVINCLUDES.get(resource_type, ()):
            raise _bad_param("_revinclude", f"supported for {resource_type}: {', '.join(REVINCLUDES.get(resource_type, ())) or 'none'}")
    store = deps.resources().store
    with deps.search_errors():
        query = parse_search_pairs(resource_type, criteria)
        try:
            spec = parse_sort(resource_type, sorts)
        except SortError as exc:
            raise QueryError("_sort", str(exc)) from None
        known_total = store.counters(ws)["resource_type_counts"].get(resource_type, 0) if not query.criteria else None
        if spec is None:
            page = search_resources(store.table, ws, query, known_total=known_total, load_data=store.load_data)
        else:
            page = search_sorted(store.table, ws, query, spec, known_total=known_total, load_data=store.load_data)
        reverse, truncated = _revincludes(ws, page.entries, revincludes)
        included = _includes(ws, page.entries, includes) + reverse
    base = base_url(router, workspace_id)
    kept = [(k, v) for k, v in pairs if k != "_offset"]
    if not any(k == "_count" for k, _ in kept):
        kept.append(("_count", str(query.count)))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "id": str(uuid4()), "type": "searchset"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = _links(f"{base}/{resource_type}", kept, query.offset, query.count, page.has_more)
    seen = {(resource_type, e["resource"]["id"]) for e in page.entries}
    entry = [{"fullUrl": f"{base}/{resource_type}/{e['resource']['id']}", "resource": e["resource"], "search": {"mode": "match"}} for e in page.entries]
    for res in included:
        key = (res["resourceType"], res["id"])
        if key not in seen:
            seen.add(key)
            entry.append({"fullUrl": f"{base}/{key[0]}/{key[1]}", "resource": res, "search": {"mode": "include"}})
    if truncated:  # said, not silently cut: the client can search the type itself for the rest
        warning = {
            "severity": "warning",
            "code": "too-costly",
            "diagnostics": f"_revinclude returned at most {REVINCLUDE_MAX} resources per {10} matches; search the type with patient=<id> for all of them",
        }
        entry.append({"resource": {"resourceType": "OperationOutcome", "issue": [warning]}, "search": {"mode": "outcome"}})
    bundle["entry"] = entry
    return fhir_response(200, bundle)


# ---- transaction / batch -----------------------------------------------------------------------


_DELETE_URL = re.compile(r"^(?:https?://.+/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})/?$")


def _delete_entries(entries: list[Any]) -> tuple[dict[int, tuple[str, str]], list[dict[str, Any]]]:
    """``DELETE Type/id`` entries (index → (type, id)) and the problems of those that are not."""
    found: dict[int, tuple[str, str]] = {}
    problems: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or str(request.get("method", "")).upper() != "DELETE":
            continue
        match = _DELETE_URL.match(str(request.get("url") or ""))
        if not match or match.group(1) not in STORABLE_RESOURCE_TYPES:
            problems.append({"loc": ["body", "entry", index, "request", "url"], "msg": "DELETE takes Type/id (conditional delete is not served)", "type": "value_error"})
        found[index] = (match.group(1), match.group(2)) if match else ("", "")
    return found, problems


def _entry_index(location: str) -> int | None:
    index = location.removeprefix("entry[").removesuffix("]")
    return int(index) if index.isdigit() else None


def _outcome(status: str, code: str, message: str) -> dict[str, Any]:
    return {"response": {"status": status, "outcome": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": message}]}}}


_STATUS_LINE = {400: "400 Bad Request", 404: "404 Not Found", 409: "409 Conflict", 410: "410 Gone", 412: "412 Precondition Failed", 422: "422 Unprocessable Entity"}


def _entry_error(exc: errors.DomainError) -> dict[str, Any]:
    from fhir_platform.api.resolver import _STATUS  # the platform's status for each domain error

    status = int(_STATUS.get(type(exc), 422))
    return _outcome(_STATUS_LINE.get(status, f"{status} Error"), "processing" if status == 422 else "invalid", exc.message)


@transaction.post("/v1/<workspace_id>/fhir/r4")
def post_bundle(workspace_id: UUID):
    """A ``transaction`` (validated as a whole, then written in one DynamoDB transaction when it
    fits: all or nothing) or ``batch`` Bundle (each entry on its own); references between entries
    resolved by the import's preparation; ``ifNoneExist`` / ``PUT Type?criteria`` / ``DELETE
    Type/id`` entries honoured (``docs/fhir-rest.md``)."""
    from fhir_platform.imports.bundle import prepare_bundle
    from fhir_platform.imports.common import iter_references
    from fhir_platform.resources.transaction import commit_atomically
    from fhir_platform.storage.resources import TransactionTooLarge

    deps.authorize_fhir(transaction, workspace_id, WRITE)
    bundle = resource_body(transaction, "Bundle")
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise errors.InvalidInput("Bundle.type must be transaction or batch", details=[{"loc": ["body", "type"], "msg": "must be transaction or batch", "type": "value_error"}])
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise errors.InvalidInput("Bundle.entry must be a list", details=[{"loc": ["body", "entry"], "msg": "must be a list", "type": "list_type"}])
    deletes, delete_problems = _delete_entries(entries)
    prepared = prepare_bundle(bundle)
    # GET/PATCH entries, unsupported types (DELETE entries are served here)
    unsupported = [i for i in prepared.issues if i.kind != "error" and _entry_index(i.location) not in deletes]
    transactional = kind == "transaction"
    if transactional and (prepared.transaction_failed or unsupported or delete_problems):
        detail = [{**d, "loc": ["body", *d["loc"][2:]]} for d in prepared.failure_detail()] + delete_problems
        for issue in unsupported:
            index = _entry_index(issue.location)
            detail.append({"loc": ["body", "entry", index] if index is not None else ["body", "entry"], "msg": issue.reason, "type": "not_supported"})
        raise errors.Unprocessable("Transaction not processed: some entries are invalid or not supported (nothing was written)", details=detail)
    targets = [(item.resource_type, item.resource_id) for item in prepared.entries] + [t for t in deletes.values() if t[0]]
    if transactional and len(set(targets)) < len(targets):
        raise errors.Unprocessable("Transaction not processed: a resource is both written and deleted, or deleted twice (nothing was written)",
                                   details=[{"loc": ["body", "entry"], "msg": "the same resource in two entries", "type": "value_error"}])
    base = base_url(transaction, workspace_id)
    service = deps.resources()
    ws = str(workspace_id)
    ctx = WriteContext(source="api")
    results: dict[int, dict[str, Any]] = {}
    for issue in prepared.issues:
        index = _entry_index(issue.location)
        if index is not None and index not in deletes:
            results[index] = _outcome("400 Bad Request", "invalid", issue.reason)
    for problem in delete_problems:
        results[problem["loc"][2]] = _outcome("400 Bad Request", "invalid", problem["msg"])

    # conditional entries: search before writing (a transaction fails as a whole on any problem)
    writes: list[tuple[int, str, str, dict[str, Any]]] = []
    existing: dict[int, str] = {}  # ifNoneExist matched: nothing to write, answer with that resource
    renamed: dict[str, str] = {}  # Type/id the preparation gave a conditional entry -> Type/id of the match
    for item in prepared.entries:
        index = _entry_index(item.location)
        rt, rid = item.resource_type, item.resource_id
        if item.if_none_exist:
            where = ["body", "entry", index, "request", "ifNoneExist" if item.method == "POST" else "url"]
            try:
                found = conditional_matches(ws, rt, criteria_pairs(item.if_none_exist, rt, where), where)
                if len(found) > 1:
                    raise errors.PreconditionFailed(f"entry[{index}]: conditional criteria match more than one {rt}; make them more selective (nothing was written)" if transactional else f"conditional criteria match more than one {rt}")
            except errors.DomainError as exc:
                if transactional:
                    raise
                results[index] = _entry_error(exc)
                continue
            if found:
                renamed[f"{rt}/{rid}"] = f"{rt}/{found[0]}"
                if item.method == "POST":
                    existing[index] = found[0]
                    continue
                rid = found[0]
        writes.append((index, rt, rid, {**item.data, "id": rid}))
    if renamed:  # references to a matched conditional entry point at the resource it matched
        for _, _, _, data in writes:
            for holder, _ in iter_references(data):
                holder["reference"] = renamed.get(holder["reference"], holder["reference"])

    def answer(stored: StoredResource, status: str) -> dict[str, Any]:
        return {
            "fullUrl": f"{base}/{stored.resource_type}/{stored.resource_id}",
            "response": {
                "status": status,
                "location": f"{stored.resource_type}/{stored.resource_id}/_history/{stored.version}",
                "etag": f'W/"{stored.version}"',
                "lastModified": stored.last_updated,
            },
        }

    removals = [(i, rt, rid) for i, (rt, rid) in sorted(deletes.items()) if rt and i not in results]
    ops: list[tuple[str, str, dict[str, Any] | None]] = [(rt, rid, data) for _, rt, rid, data in writes] + [(rt, rid, None) for _, rt, rid in removals]
    op_index = [i for i, *_ in writes] + [i for i, *_ in removals]
    atomic = False
    if transactional:
        try:
            with raw_locations():
                outcomes = commit_atomically(service, ws, ops, ctx)
            atomic = True
        except TransactionTooLarge:
            outcomes = None  # over one DynamoDB transaction: entry by entry, as documented
        if outcomes is not None:
            for index, (rt, rid, data), outcome in zip(op_index, ops, outcomes, strict=True):
                results[index] = _op_answer(answer, data is None, outcome)
    if not atomic:
        written: list[str] = []
        for index, (rt, rid, data) in zip(op_index, ops, strict=True):
            try:
                if data is None:
                    outcome = service.delete(ws, rt, rid, ctx)
                    if outcome is None:
                        stored = service.store.get(ws, rt, rid)
                        if stored is None:
                            raise errors.NotFound(f"{rt}/{rid} not found")
                        outcome = WriteOutcome(stored, created=False, changed=False)
                else:
                    outcome = service.upsert(ws, rt, rid, data, ctx)
            except errors.DomainError as exc:
                if transactional:  # validated up front, so only a write conflict gets here: say what was written
                    exc.message = f"{exc.message} (transaction over one DynamoDB transaction's size, written entry by entry: stopped at entry[{index}]; already written: {', '.join(written) or 'none'})"
                    raise
                results[index] = _entry_error(exc)
                continue
            written.append(f"entry[{index}]")
            results[index] = _op_answer(answer, data is None, outcome)
    for index, rid in existing.items():
        item = next(e for e in prepared.entries if _entry_index(e.location) == index)
        results[index] = answer(service.read(ws, item.resource_type, rid), "200 OK")
    for sup in prepared.superseded:
        index = _entry_index(getattr(sup, "location", ""))
        if index is not None:
            results.setdefault(index, {"response": {"status": "200 OK"}})
    out = [results.get(i, {"response": {"status": "200 OK"}}) for i in range(len(entries))]
    return fhir_response(200, {"resourceType": "Bundle", "id": str(uuid4()), "type": f"{kind}-response", "entry": out})


def _op_answer(answer: Any, is_delete: bool, outcome: WriteOutcome) -> dict[str, Any]:
    if is_delete:
        return {"response": {"status": "204 No Content", "etag": f'W/"{outcome.resource.version}"'}}
    return answer(outcome.resource, "201 Created" if outcome.created else "200 OK")


# ---- Patient/{id}/$everything ------------------------------------------------------------------

EVERYTHING_MAX = 100
@functools.cache
def compartment_types() -> tuple[str, ...]:
    """The compartment's types: those with a ``patient`` search parameter (the reference index
    serves it). Computed on first use: it reads every type's search parameters, which imports
    ~500 fhir.resources models — a second of cold start for functions that never need it."""
    from fhir_platform.search.parameters import params_for

    return tuple(t for t in sorted(STORABLE_RESOURCE_TYPES) if "patient" in params_for(t))


@everything.get("/v1/<workspace_id>/fhir/r4/Patient/<resource_id>/$everything")
def get_everything(workspace_id: UUID, resource_id: ResourceId):
    """The Patient, then every resource of its compartment, type by type (in name order), each
    type newest first by the reference index; paged by ``_count`` (1-100, default 50) and
    ``_offset``. Only types the workspace holds (its write-time counters) are searched, each with
    an exact count, so ``total`` is exact and the calls per page depend on the types present, not
    on the patient's history length (index ids are counted a 1 MB page at a time)."""
    from fhir_platform.search.executor import search_resources
    from fhir_platform.search.query import parse_search_pairs

    deps.authorize_fhir(everything, workspace_id, READ)
    ws = str(workspace_id)
    query = dict(parse_qsl(everything.current_event.raw_query_string or "", keep_blank_values=True))
    for name in query:
        if name not in ("_count", "_offset", "_format", "_pretty"):
            raise _bad_param(name, "unknown parameter (supported: _count, _offset)")
    count, offset = _int_param(query, "_count", 50, 1, EVERYTHING_MAX), _int_param(query, "_offset", 0, 0, None)
    service = deps.resources()
    patient = service.read(ws, "Patient", resource_id)
    held = service.store.counters(ws)["resource_type_counts"]
    base = base_url(everything, workspace_id)
    entries: list[dict[str, Any]] = []
    if offset == 0:
        entries.append({"fullUrl": f"{base}/Patient/{resource_id}", "resource": _with_meta(patient.data, patient.version, patient.last_updated), "search": {"mode": "match"}})
    skip, total = max(0, offset - 1), 1
    with deps.search_errors():
        for rtype in compartment_types():
            if not held.get(rtype):
                continue
            need = count - len(entries)
            q = parse_search_pairs(rtype, [("patient", resource_id), ("_count", str(max(1, min(need, 100)))), ("_offset", str(skip))])
            page = search_resources(service.store.table, ws, q, load_data=service.store.load_data, exact_total=True)
            type_total = page.total or 0
            total += type_total
            if need > 0 and skip < type_total:
                entries += [
                    {"fullUrl": f"{base}/{rtype}/{e['resource']['id']}", "resource": e["resource"], "search": {"mode": "match"}}
                    for e in page.entries[:need]
                ]
            skip = max(0, skip - type_total)
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid4()),
        "type": "searchset",
        "total": total,
        "link": _links(f"{base}/Patient/{resource_id}/$everything", [("_count", str(count))], offset, count, offset + count < total),
        "entry": entries,
    }
    return fhir_response(200, bundle)
