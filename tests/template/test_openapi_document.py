"""The served OpenAPI document (``GET /v1/openapi.json``, :mod:`fhir_platform.api.openapi`):
built from the routers, it describes exactly the routes template.yaml serves, and it agrees with
the contract (``shared/reference/platform-fhir-openapi.json``) on every path the contract has:
parameters (name, in, required), bounds and defaults, request body fields, and the fields of the
2xx response bodies with their required-ness. The platform may add (an optional parameter, a
response field, a limit the contract leaves open); it may not drop or change what the contract
says. Over HTTP, the document's promises are fuzzed by ``tests/e2e/test_openapi_fuzz.py``."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from tests.support.shared import CONTRACT
from tests.support.template import functions, http_routes, load_function

METHODS = ("get", "post", "put", "patch", "delete")
BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems", "default", "enum", "const")
# routes that serve the description itself (not described by it)
SELF = {("GET", "/v1/openapi.json"), ("GET", "/v1/docs")}


@pytest.fixture(scope="module")
def served() -> dict[str, Any]:
    from fhir_platform.api.openapi import document

    return document()


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    if not CONTRACT.exists():
        pytest.skip("shared/reference contract not present")
    return json.loads(CONTRACT.read_text())


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method, path, op


# ---- the document and the template -----------------------------------------------------------


def test_the_document_describes_exactly_the_routes_the_template_serves(served: dict[str, Any]) -> None:
    described = {(m.upper(), p) for m, p, _ in operations(served)}
    assert described == set(http_routes()) - SELF
    assert served["openapi"] == "3.1.0"
    assert served["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": served["components"]["securitySchemes"]["BearerAuth"]["description"],
    }
    assert served["security"] == [{"BearerAuth": []}]


def test_public_operations_are_exactly_the_routes_without_authorizer(served: dict[str, Any]) -> None:
    public = set()
    for res in functions().values():
        for event in res["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi" and event["Properties"].get("Auth", {}).get("Authorizer") == "NONE":
                public.add((event["Properties"]["Method"].upper(), event["Properties"]["Path"]))
    assert {(m.upper(), p) for m, p, op in operations(served) if op.get("security") == []} == public - SELF
    for m, p, op in operations(served):
        if op.get("security") != []:
            assert "security" not in op and "401" in op["responses"] and "403" in op["responses"], (m, p)


def test_the_document_is_the_one_built_from_each_functions_own_routers(served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The Lambda finds the routers by importing the routes package (it has no template.yaml);
    built instead from the routers that template.yaml's functions serve, the document is the same."""
    from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

    from fhir_platform.api.openapi import build

    for name in ("TABLE_NAME", "IMPORTS_BUCKET", "IMPORT_QUEUE_URL", "ADMIN_KEY_SECRET_ARN"):
        monkeypatch.setenv(name, f"test-{name.lower()}")
    routers: list[Any] = []
    for directory in sorted(set(http_routes().values())):
        module = load_function(directory)
        routers += [v for v in vars(module).values() if isinstance(v, APIGatewayHttpRouter) and not any(v is r for r in routers)]
    assert _normalised(build(routers)) == _normalised(served)


def _normalised(doc: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(doc))
    for _, _, op in operations(out):
        op.pop("operationId", None)
    return out


def test_every_operation_declares_its_success_body_and_errors(served: dict[str, Any]) -> None:
    for method, path, op in operations(served):
        ok = [code for code in op["responses"] if code.startswith("2")]
        assert ok, (method, path)
        for code in ok:
            content = op["responses"][code].get("content")
            if code == "204":
                assert content is None, (method, path)
            else:
                schema = next(iter(content.values()))["schema"]
                assert schema not in ({}, {"type": "object"}) or "/fhir/r4" in path, f"{method} {path} {code}: declare its body model (responds())"
        assert {"422", "429", "503"} <= set(op["responses"]), (method, path)
        if "{" in path:
            assert "404" in op["responses"], (method, path)
        if "requestBody" in op:
            assert {"400", "413", "415"} <= set(op["responses"]), (method, path)


# ---- the document and the contract -----------------------------------------------------------


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while isinstance(schema, dict) and "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def alternatives(doc: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """A schema's non-null alternatives (``X | None`` is ``anyOf [X, null]``), resolved."""
    schema = resolve(doc, schema)
    options = schema.get("anyOf") or schema.get("oneOf")
    if not options:
        return [schema]
    out = []
    for option in options:
        out += [o for o in alternatives(doc, option) if o.get("type") != "null"]
    return out


def matching(doc: dict[str, Any], schema: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    """The alternative of ``schema`` of the same JSON type as ``like`` (a parameter declared as
    "a string, or several" is compared as a string)."""
    options = alternatives(doc, schema)
    same = [o for o in options if o.get("type") == like.get("type")] or options
    merged = dict(same[0])
    outer = resolve(doc, schema)
    for key in ("default", "description"):
        if key in outer:
            merged.setdefault(key, outer[key])
    return merged


def bound_differences(where: str, contract: dict[str, Any], c_schema: dict[str, Any], served: dict[str, Any], s_schema: dict[str, Any]) -> list[str]:
    c = next(iter(alternatives(contract, c_schema)), {})
    outer = resolve(contract, c_schema)
    c = {**c, **{k: outer[k] for k in ("default",) if k in outer}}
    s = matching(served, s_schema, c)
    return [f"{where}: {b} is {s.get(b)!r}, the contract says {c[b]!r}" for b in BOUNDS if b in c and s.get(b) != c[b]]


def object_differences(where: str, contract: dict[str, Any], c_schema: dict[str, Any], served: dict[str, Any], s_schema: dict[str, Any], *, response: bool, depth: int = 0) -> list[str]:
    """Fields of an object schema: the contract's are all there, required as the contract says
    (a response may require more: it always sends every field), with the same bounds; nested
    objects and arrays of objects are compared the same way."""
    c = next((o for o in alternatives(contract, c_schema) if "properties" in o or o.get("type") == "object"), None)
    s = next((o for o in alternatives(served, s_schema) if "properties" in o or o.get("type") == "object"), None)
    if c is None or not c.get("properties"):
        return []
    if s is None:
        return [f"{where}: not an object with fields"]
    out: list[str] = []
    c_props, s_props = c.get("properties", {}), s.get("properties", {})
    missing = sorted(set(c_props) - set(s_props))
    if missing:
        out.append(f"{where}: fields missing {missing}")
    c_req, s_req = set(c.get("required", [])), set(s.get("required", []))
    if response and c_req - s_req:
        out.append(f"{where}: fields the contract requires are optional: {sorted(c_req - s_req)}")
    if not response and c_req != s_req:
        out.append(f"{where}: required {sorted(s_req)}, the contract says {sorted(c_req)}")
    for name in sorted(set(c_props) & set(s_props)):
        here = f"{where}.{name}"
        if not response:
            out += bound_differences(here, contract, c_props[name], served, s_props[name])
        if depth < 3:
            c_one, s_one = alternatives(contract, c_props[name]), alternatives(served, s_props[name])
            if c_one and c_one[0].get("type") == "array" and "items" in c_one[0]:
                s_arr = next((o for o in s_one if o.get("type") == "array"), {})
                out += object_differences(f"{here}[]", contract, c_one[0]["items"], served, s_arr.get("items", {}), response=response, depth=depth + 1)
            else:
                out += object_differences(here, contract, c_props[name], served, s_props[name], response=response, depth=depth + 1)
    return out


def json_schema(op: dict[str, Any], *where: str) -> dict[str, Any] | None:
    node: Any = op
    for key in where:
        node = (node or {}).get(key)
    content = (node or {}).get("content", {})
    return (content.get("application/json") or {}).get("schema")


def contract_operations() -> list[tuple[str, str]]:
    if not CONTRACT.exists():
        return []
    doc = json.loads(CONTRACT.read_text())
    return [(m, p) for m, p, _ in operations(doc)]


@pytest.mark.parametrize(("method", "path"), contract_operations(), ids=[f"{m.upper()} {p}" for m, p in contract_operations()])
def test_served_operation_agrees_with_the_contract(method: str, path: str, served: dict[str, Any], contract: dict[str, Any]) -> None:
    c_op = contract["paths"][path][method]
    s_op = served["paths"].get(path, {}).get(method)
    assert s_op is not None, f"{method.upper()} {path} is in the contract but not served"
    problems: list[str] = []

    c_params = {(p["in"], p["name"]): p for p in c_op.get("parameters", [])}
    s_params = {(p["in"], p["name"]): p for p in s_op.get("parameters", [])}
    for key, c in c_params.items():
        s = s_params.get(key)
        if s is None:
            problems.append(f"parameter {key}: not served")
            continue
        if bool(c.get("required")) != bool(s.get("required")):
            problems.append(f"parameter {key}: required {bool(s.get('required'))}, the contract says {bool(c.get('required'))}")
        problems += bound_differences(f"parameter {key}", contract, c.get("schema", {}), served, s.get("schema", {}))
    problems += [f"parameter {key}: an addition must be optional" for key in set(s_params) - set(c_params) if s_params[key].get("required")]

    c_body = json_schema(c_op, "requestBody")
    if c_body is not None:
        s_body = json_schema(s_op, "requestBody")
        if s_body is None:
            problems.append("request body: not served as application/json")
        else:
            if bool(c_op["requestBody"].get("required")) != bool(s_op["requestBody"].get("required")):
                problems.append("request body: required-ness differs")
            problems += object_differences("body", contract, c_body, served, s_body, response=False)

    for code, c_resp in c_op.get("responses", {}).items():
        if not code.startswith("2"):
            continue
        if code not in s_op["responses"]:
            problems.append(f"response {code}: not declared (served: {sorted(s_op['responses'])})")
            continue
        c_schema = json_schema(c_resp)
        if c_schema is None:
            continue
        s_schema = json_schema(s_op["responses"][code])
        if s_schema is None:
            problems.append(f"response {code}: no JSON body schema served")
            continue
        problems += object_differences(f"response {code}", contract, c_schema, served, s_schema, response=True)

    assert not problems, "\n".join(problems)


def test_the_comparison_catches_a_difference(served: dict[str, Any], contract: dict[str, Any]) -> None:
    """The checks above would fail on a served document that dropped a bound, a field or a
    required parameter (so a pass means agreement, not a comparison that sees nothing)."""
    path, method = "/v1/{workspace_id}/fhir/resources/{resource_type}", "get"
    broken = json.loads(json.dumps(served))
    op = broken["paths"][path][method]
    for p in op["parameters"]:
        if p["name"] == "_count":
            p["schema"].pop("maximum")
    c_count = next(p for p in contract["paths"][path][method]["parameters"] if p["name"] == "_count")
    s_count = next(p for p in op["parameters"] if p["name"] == "_count")
    assert bound_differences("_count", contract, c_count["schema"], broken, s_count["schema"]) == ["_count: maximum is None, the contract says 100"]
    page = broken["components"]["schemas"]["DataSourcePage"]
    item = broken["components"]["schemas"]["DataSourceResponse"]
    item["properties"].pop("health_status")
    c_list = contract["paths"]["/v1/{workspace_id}/data-sources"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    found = object_differences("response 200", contract, c_list, broken, {"$ref": "#/components/schemas/DataSourcePage"}, response=True)
    assert any("health_status" in f for f in found), found
    assert page["required"]
