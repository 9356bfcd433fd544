"""Bad input never corrupts stored state, on every route that takes a JSON body.

The routes are the ones template.yaml serves; each one's body fields come from the OpenAPI its own
function generates from its request model (with the model's ``example`` as the valid body to spoil
one field of). So a route or a field added later is covered here without editing this file; a new
request model without an ``example`` fails ``test_every_json_route_has_a_valid_example``.

For every field (nested objects included) the test sends ``null``, values of a wrong type, and a
string holding bytes that are not UTF-8 (base64-encoded, as API Gateway delivers such a body), and
checks a 4xx in the platform's error shape whose ``detail[].loc`` names that field, then that every
read of the workspace answers exactly what it answered before.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.integration.conftest import ADMIN_KEY, new_workspace
from tests.support.gateway import Gateway, Reply, _module
from tests.support.template import http_routes

BODY_METHODS = ("POST", "PUT", "PATCH")
ROUTES = sorted(route for route in http_routes() if route[0] in BODY_METHODS)
NOT_UTF8 = b"caf\xe9 \xff\xfe"  # latin-1 "café" and a stray byte-order mark: not UTF-8
PLACEHOLDER = "\x00not-utf8-goes-here\x00"
WRONG_FOR = {  # a value of another JSON type, per the type a field takes
    "string": 12345,
    "integer": "twelve",
    "number": "twelve",
    "boolean": "maybe",
    "object": ["not", "an", "object"],
    "array": "not-a-list",
}


# ---- what the served routes take, from their own OpenAPI ---------------------------------------


def request_schema(method: str, path: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The JSON request body schema of a served route (``None`` if it takes none) and its components."""
    app = _module(http_routes()[(method, path)]).handler.app
    spec = app.get_openapi_schema().model_dump(mode="json", by_alias=True, exclude_none=True)
    operation = spec["paths"][path][method.lower()]
    content = operation.get("requestBody", {}).get("content", {})
    components = spec.get("components", {}).get("schemas", {})
    if "application/json" not in content:
        return None, components
    return resolve(content["application/json"]["schema"], components), components


def resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def json_types(schema: dict[str, Any], components: dict[str, Any]) -> list[str]:
    schema = resolve(schema, components)
    if "type" in schema:
        return [schema["type"]] if isinstance(schema["type"], str) else list(schema["type"])
    found: list[str] = []
    for option in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        found += [t for t in json_types(option, components) if t not in found]
    if not found and "enum" in schema:
        found = sorted({"string" if isinstance(v, str) else "number" for v in schema["enum"]})
    return found


def fields(schema: dict[str, Any], components: dict[str, Any], example: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], list[str], dict[str, Any]]]:
    """(path, JSON types, base body) for every field, nested objects' fields included."""
    for name, prop in schema.get("properties", {}).items():
        path = (*prefix, name)
        yield path, json_types(prop, components), example
        nested = resolve(prop, components)
        if nested.get("properties"):
            inner = copy.deepcopy(example)
            parent = inner
            for key in path[:-1]:
                parent = parent[key]
            parent.setdefault(name, {})
            yield from fields(nested, components, inner, path)


def with_value(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def bad_bodies(schema: dict[str, Any], components: dict[str, Any]) -> Iterator[tuple[str, tuple[str, ...], str | bytes]]:
    """(what, field path, raw body) for every field: null, wrong types, not UTF-8."""
    example = schema["examples"][0]
    for path, types, base in fields(schema, components, example):
        yield "null", path, json.dumps(with_value(base, path, None))
        wrong = WRONG_FOR[types[0]] if types else {"not": "this type"}
        assert not any(_accepts(t, wrong) for t in types), (path, types)
        yield f"wrong type {type(wrong).__name__}", path, json.dumps(with_value(base, path, wrong))
        spoiled = json.dumps(with_value(base, path, PLACEHOLDER)).encode()
        yield "not UTF-8", path, spoiled.replace(json.dumps(PLACEHOLDER).encode(), b'"' + NOT_UTF8 + b'"')


def _accepts(json_type: str, value: Any) -> bool:
    return {"object": dict, "array": list, "string": str, "boolean": bool}.get(json_type, (int, float)) == type(value) or (
        json_type in ("integer", "number") and isinstance(value, (int, float)) and not isinstance(value, bool)
    )


# ---- the workspace every bad request is aimed at -------------------------------------------------


@pytest.fixture
def stored(gateway: Gateway) -> dict[str, Any]:
    ws = new_workspace(gateway)["id"]
    key = gateway.call("POST", f"/v1/{ws}/api-keys", token=ADMIN_KEY, body={"name": "kept", "duration_days": 7, "role": "admin"})
    assert key.status == 201, key.body
    patient = {"resourceType": "Patient", "id": "kept-1", "name": [{"family": "Stored", "given": ["Kept"]}]}
    put = gateway.call("PUT", f"/v1/{ws}/fhir/resources/Patient/kept-1", token=ADMIN_KEY, body={"data": patient})
    assert put.status == 201, put.body
    source = {"name": "kept", "source_type": "fhir_store", "connection_config": {"base_url": "https://ehr.example.org/fhir/R4"}}
    ds = gateway.call("POST", f"/v1/{ws}/data-sources", token=ADMIN_KEY, body=source)
    assert ds.status == 201, ds.body
    # entities for the world-model routes: kept-2 merged into kept-1's entity (so the split example,
    # which moves kept-2 out, is valid), and the merge example's source entity (empty)
    second = {"resourceType": "Patient", "id": "kept-2", "name": [{"family": "Other", "given": ["Kept"]}]}
    assert gateway.call("PUT", f"/v1/{ws}/fhir/resources/Patient/kept-2", token=ADMIN_KEY, body={"data": second}).status == 201
    entity = gateway.call("GET", f"/v1/{ws}/fhir/resources/Patient/kept-1", token=ADMIN_KEY).body["entity_id"]
    other = gateway.call("GET", f"/v1/{ws}/fhir/resources/Patient/kept-2", token=ADMIN_KEY).body["entity_id"]
    merged = gateway.call("POST", f"/v1/{ws}/entities/{entity}/merge", token=ADMIN_KEY, body={"from_entity_id": other})
    assert merged.status == 200, merged.body
    from fhir_platform.api.entity_models import MergeEntityRequest

    example_source = MergeEntityRequest.example["from_entity_id"]  # type: ignore[index]
    boto3.resource("dynamodb").Table("fhir-data").put_item(
        Item={"PK": f"WS#{ws}#E#{example_source}", "SK": "META", "entity_id": example_source, "entity_type": "patient", "status": "active", "version": 1, "member_count": 0}
    )
    return {
        "workspace_id": ws,
        "entity_id": entity,
        "key_id": key.body["key_id"],
        "resource_type": "Patient",
        "resource_id": "kept-1",
        "data_source_id": ds.body["id"],
    }


def state(gateway: Gateway, stored: dict[str, Any]) -> dict[str, Any]:
    """Everything a client can read about the workspace."""
    ws, rid = stored["workspace_id"], stored["resource_id"]
    reads = {
        "workspace": (f"/v1/workspaces/{ws}", None),
        "workspaces": ("/v1/workspaces", {"limit": "100"}),
        "api keys": (f"/v1/{ws}/api-keys", {"limit": "100"}),
        "resource": (f"/v1/{ws}/fhir/resources/Patient/{rid}", None),
        "history": (f"/v1/{ws}/fhir/resources/Patient/{rid}/history", {"limit": "50"}),
        "status": (f"/v1/{ws}/fhir/status", None),
        "import jobs": (f"/v1/{ws}/fhir/imports", {"limit": "100"}),
        "data sources": (f"/v1/{ws}/data-sources", {"limit": "100"}),
    }
    out = {}
    for name, (path, query) in reads.items():
        reply = gateway.call("GET", path, token=ADMIN_KEY, query=query)
        assert reply.status == 200, (name, reply.status, reply.body)
        out[name] = reply.body
    return out


def concrete(path_template: str, stored: dict[str, Any]) -> str:
    out = path_template
    for name in ("workspace_id", "key_id", "resource_type", "resource_id", "data_source_id", "entity_id"):
        out = out.replace("{" + name + "}", stored[name])
    assert "{" not in out, f"give {path_template} a value for its path parameter in stored()"
    return out


def problem(reply: Reply, field: tuple[str, ...]) -> str | None:
    """Why ``reply`` is not a 4xx error naming ``field``, or ``None`` if it is."""
    if not 400 <= reply.status < 500:
        return f"status {reply.status}"
    body = reply.body
    if not isinstance(body, dict) or set(body) != {"statusCode", "error", "message", "detail"} or body["statusCode"] != reply.status:
        return f"error body {body!r}"
    if not body["detail"] or any(set(d) != {"loc", "msg", "type"} for d in body["detail"]):
        return f"detail {body['detail']!r}"
    where = ["body", *field]
    if any(d["loc"][: len(where)] != where for d in body["detail"]):
        return f"loc {[d['loc'] for d in body['detail']]} does not name {where}"
    return None


# ---- the tests ---------------------------------------------------------------------------------


def test_every_json_route_has_a_valid_example(gateway: Gateway, stored: dict[str, Any]) -> None:
    """The body each field test spoils is valid: sent as it is, the route accepts it."""
    json_routes = 0
    for method, path in ROUTES:
        schema, _ = request_schema(method, path)
        if schema is None:
            continue
        json_routes += 1
        assert schema.get("examples"), f"{method} {path}: give its request model an `example` (a valid body)"
        reply = gateway.call(method, concrete(path, stored), token=ADMIN_KEY, body=schema["examples"][0])
        assert reply.status < 400, (method, path, reply.status, reply.body)
    assert json_routes >= 8  # the JSON-body routes served today; more is fine


NOT_OBJECTS: tuple[str | bytes, ...] = (
    "null", "[]", '"text"', "{", '{"a": NaN}', "[" * 5000 + "]" * 5000, NOT_UTF8, b'{"a": \xff}', b"\xff\xfe{}", '{"x": "\\ud800"}',
    '{"\\ud800": 1}', b'{"\xff": 1}', "[" * 900 + '"\\udce9"' + "]" * 900,
)

FORMS = (  # the routes take JSON: Powertools would otherwise read these into the model (multipart: a 500)
    ("application/x-www-form-urlencoded", "duration_days=7&name=caf%E9"),
    ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\ncaf\xe9\r\n--b--\r\n'),
    ("multipart/form-data", "no boundary"),
)

@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_bad_bodies_are_refused_and_change_nothing(request: pytest.FixtureRequest, method: str, path: str) -> None:
    schema, components = request_schema(method, path)
    if schema is None:
        pytest.skip("takes no JSON body (the NDJSON stream is covered below)")
    gateway: Gateway = request.getfixturevalue("gateway")
    stored: dict[str, Any] = request.getfixturevalue("stored")
    url, workspace = concrete(path, stored), f"/v1/workspaces/{stored['workspace_id']}"
    before = state(gateway, stored)
    failures = []
    json_type = {"content-type": "application/json"}
    cases = [(what, field, raw, json_type) for what, field, raw in bad_bodies(schema, components)]
    cases += [(f"whole body {raw[:12]!r}", (), raw, json_type) for raw in NOT_OBJECTS]
    cases += [(f"a form ({kind})", (), raw, {"content-type": kind}) for kind, raw in FORMS]
    for what, field, raw, headers in cases:
        reply = gateway.call(method, url, token=ADMIN_KEY, raw_body=raw, headers=headers)
        why = problem(reply, field)
        read = gateway.call("GET", workspace, token=ADMIN_KEY)
        if read.status != 200 or read.body != before["workspace"]:
            why = f"{why or 'refused'}, then GET workspace answered {read.status}"
        if why:
            failures.append(f"{'.'.join(field) or 'body'} = {what}: {why}")
    after = state(gateway, stored)
    changed = [name for name in before if before[name] != after[name]]
    assert not failures and not changed, "\n".join(failures + [f"reads that changed: {changed}"])


def test_a_lone_surrogate_escape_is_refused_where_it_is(gateway: Gateway, stored: dict[str, Any]) -> None:
    """Valid UTF-8 JSON can still spell text that is not (a lone ``\\uDCxx`` escape): refused where
    it sits, as undecodable bytes are, whatever type the field has (``Any`` included)."""
    ws = stored["workspace_id"]
    before = state(gateway, stored)
    raw = '{"format": "ndjson", "source_system": "caf\\udce9"}'
    reply = gateway.call("POST", f"/v1/{ws}/fhir/imports", token=ADMIN_KEY, raw_body=raw)
    assert reply.status == 422 and reply.body["detail"] == [
        {"loc": ["body", "source_system"], "msg": "must be valid UTF-8 text", "type": "string_unicode"}
    ]
    assert state(gateway, stored) == before
    paired = '{"data": {"resourceType": "Patient", "id": "kept-1", "name": [{"family": "Smile \\ud83d\\ude00"}]}}'
    put = gateway.call("PUT", f"/v1/{ws}/fhir/resources/Patient/kept-1", token=ADMIN_KEY, raw_body=paired)
    assert put.status == 200 and put.body["data"]["name"][0]["family"] == "Smile \U0001f600"  # a pair is one character


def test_patch_name_null_keeps_the_workspace_readable(gateway: Gateway, stored: dict[str, Any]) -> None:
    ws = stored["workspace_id"]
    before = state(gateway, stored)
    reply = gateway.call("PATCH", f"/v1/workspaces/{ws}", token=ADMIN_KEY, body={"name": None, "environment": "staging"})
    assert reply.status == 422, reply.body
    assert reply.body["detail"] == [{"loc": ["body", "name"], "msg": "must not be null: leave the field out instead", "type": "null_not_allowed"}]
    assert state(gateway, stored) == before
    too_long = gateway.call("PATCH", f"/v1/workspaces/{ws}", token=ADMIN_KEY, body={"name": "x" * 257})
    assert too_long.status == 422 and too_long.body["detail"][0]["loc"] == ["body", "name"]  # as on create
    assert state(gateway, stored) == before


def test_non_utf8_ndjson_line_is_reported_and_not_stored(gateway: Gateway, stored: dict[str, Any]) -> None:
    """The NDJSON stream is not one JSON document: a line that is not UTF-8 is that line's error."""
    ws = stored["workspace_id"]
    good = json.dumps({"resourceType": "Patient", "id": "ndjson-ok", "name": [{"family": "Fine"}]}).encode()
    bad = b'{"resourceType": "Patient", "id": "ndjson-bad", "name": [{"family": "' + NOT_UTF8 + b'"}]}'
    reply = gateway.call("POST", f"/v1/{ws}/fhir/import-stream", token=ADMIN_KEY, raw_body=good + b"\n" + bad + b"\n")
    assert reply.status == 200, reply.body
    assert reply.body["events_created"] == 1 and reply.body["error_count"] == 1
    assert reply.body["errors"] == ["line 2: line is not valid UTF-8"]
    assert gateway.call("GET", f"/v1/{ws}/fhir/resources/Patient/ndjson-bad", token=ADMIN_KEY).status == 404


def test_a_body_marked_base64_that_is_not_is_refused() -> None:
    from tests.support.gateway import LambdaContext, sample_event

    event = sample_event("rotate_api_key")
    event["body"], event["isBase64Encoded"] = "not base64!", True
    result = _module("rotate_api_key").handler(event, LambdaContext())
    assert result["statusCode"] == 400
    assert json.loads(result["body"])["detail"] == [{"loc": ["body"], "msg": "not valid base64", "type": "base64_invalid"}]


def test_workspace_service_refuses_to_store_a_null_required_field(aws: dict[str, str], gateway: Gateway) -> None:
    """Defence in depth: even called directly, the service will not blank a required field."""
    from fhir_platform.errors import Unprocessable
    from fhir_platform.workspaces.service import WorkspaceService

    ws = new_workspace(gateway)
    service = WorkspaceService()
    for changes in ({"name": None}, {"name": "  "}, {"environment": None}, {"region": None}, {"slug": "other"}, {"id": "x"}):
        with pytest.raises(Unprocessable) as refused:
            service.update(ws["id"], {"fhir_store_url": "https://other.example.org/fhir", **changes})
        assert refused.value.details[0]["loc"] == ["body", next(iter(changes))]
    assert service.get(ws["id"])["fhir_store_url"] == ws["fhir_store_url"]
    cleared = service.update(ws["id"], {"connector_auth": None})
    assert "connector_auth" not in cleared and cleared["name"] == ws["name"]


# ---- the FHIR REST facade: bodies are raw FHIR resources ------------------------------------------
# Its routes declare no body model (the body is any resource of the URL's type, validated by the
# write path's R4 models), so the sweep above skips them; here each one gets the same spoiling,
# field by field of a valid resource, and must answer a 4xx OperationOutcome whose issue's
# ``expression`` names that field, leaving every read unchanged.

FHIR_BODY_EXAMPLES: dict[str, dict[str, Any]] = {
    "Patient": {"resourceType": "Patient", "id": "kept-1", "active": True, "gender": "female", "birthDate": "1990-01-02", "name": [{"family": "Kept", "given": ["Still"]}]},
    "Bundle": {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Patient", "name": [{"family": "New"}]}, "request": {"method": "POST", "url": "Patient"}}]},
}
# (``POST {type}/_search`` takes a form, not a resource: its bodies are covered in test_fhir_r4.py)
FHIR_ROUTES = sorted(route for route in ROUTES if "/fhir/r4" in route[1] and not route[1].endswith("/_search"))


def fhir_problem(reply: Reply, expression: str | None) -> str | None:
    if not 400 <= reply.status < 500:
        return f"status {reply.status}"
    body = reply.body
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome" or not body.get("issue"):
        return f"not an OperationOutcome: {body!r}"
    if expression is not None and not any(e.startswith(expression) for i in body["issue"] for e in i.get("expression", [])):
        return f"no issue names {expression}: {[i.get('expression') for i in body['issue']]}"
    return None


def test_the_fhir_facade_has_body_routes() -> None:
    assert {m for m, _ in FHIR_ROUTES} == {"POST", "PUT"} and len(FHIR_ROUTES) >= 3


@pytest.mark.parametrize(("method", "path"), FHIR_ROUTES, ids=[f"{m} {p}" for m, p in FHIR_ROUTES])
def test_fhir_facade_bad_bodies_are_refused_and_change_nothing(request: pytest.FixtureRequest, method: str, path: str) -> None:
    gateway: Gateway = request.getfixturevalue("gateway")
    stored: dict[str, Any] = request.getfixturevalue("stored")
    rtype = "Patient" if "{resource_type}" in path else "Bundle"
    example = FHIR_BODY_EXAMPLES[rtype]
    url = concrete(path, stored)
    query = {"_id": stored["resource_id"]} if method == "PUT" and path.endswith("{resource_type}") else None  # conditional update
    before = state(gateway, stored)
    fhir_json = {"content-type": "application/fhir+json"}
    cases: list[tuple[str, str | None, str | bytes, dict[str, str]]] = []
    for name, value in example.items():
        if name == "id":
            continue
        wrong = WRONG_FOR[{dict: "object", list: "array", str: "string", bool: "boolean"}[type(value)]]
        where = f"{rtype}.{name}"
        cases.append((f"{name} = null", where, json.dumps({**example, name: None}), fhir_json))
        cases.append((f"{name} of a wrong type", where, json.dumps({**example, name: wrong}), fhir_json))
        spoiled = json.dumps({**example, name: PLACEHOLDER}).encode()
        cases.append((f"{name} not UTF-8", where, spoiled.replace(json.dumps(PLACEHOLDER).encode(), b'"' + NOT_UTF8 + b'"'), fhir_json))
    cases += [(f"whole body {raw[:12]!r}", None, raw, fhir_json) for raw in NOT_OBJECTS]
    cases += [(f"a form ({kind})", None, raw, {"content-type": kind}) for kind, raw in FORMS]
    failures = []
    for what, where, raw, headers in cases:
        reply = gateway.call(method, url, token=ADMIN_KEY, raw_body=raw, headers=headers, query=query)
        why = fhir_problem(reply, where)
        if why:
            failures.append(f"{what}: {why}")
    after = state(gateway, stored)
    changed = [name for name in before if before[name] != after[name]]
    assert not failures and not changed, "\n".join(failures + [f"reads that changed: {changed}"])
    valid = gateway.call(method, url, token=ADMIN_KEY, body=example, headers=fhir_json, query=query)
    assert valid.status < 400, (valid.status, valid.body)  # the example spoiled above is itself accepted
