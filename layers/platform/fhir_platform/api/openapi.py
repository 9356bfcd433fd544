"""The API's one OpenAPI 3.1 document, generated from the routers themselves.

Every HTTP route is a Powertools router in :mod:`fhir_platform.api.routes` (one per Lambda
function; ``template.yaml`` binds each to its path). :func:`document` imports every module of that
package, includes every router it finds in one resolver and asks Powertools for the OpenAPI
document: parameters, bounds and request bodies come from the routes' signatures and pydantic
models, success bodies from the models each route declares with :func:`responds`. So a route added
later (a new module or a new router in an old one) is described without editing this file;
``tests/template/test_openapi_document.py`` checks that the document has exactly the routes
``template.yaml`` serves, and that it equals the one built from each function's own app.

What Powertools cannot see is added here, once, because the shared resolver and the gateway do it
for every route (:mod:`fhir_platform.api.resolver`):

- the security scheme (``BearerAuth``: the API key as a Bearer token) on every operation but the
  public ones (``security=PUBLIC`` on the route; ``Auth: Authorizer: NONE`` in the template);
- the error responses every route can answer, in the platform's error shape
  (``{"statusCode", "error", "message", "detail": [{"loc", "msg", "type"}]}``): 401 (no or a bad
  key; API Gateway's own ``{"message"}`` when the header is missing), 403, 422 (request
  validation), 404 for a route with path parameters (unknown workspace or item; the gateway's
  ``{"message": "Not Found"}`` for a path no route matches), 400/413/415 for a route that takes a
  body, and the gateway's 429 (throttled) and 503 (no function free in time);
- the FHIR facade's media type (``application/fhir+json``) and ``OperationOutcome`` errors.

The document is built on first use and kept for the life of the execution environment: the
``openapi`` function's cold start imports none of the routes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from http import HTTPStatus
from typing import Any

TITLE = "FHIR clinical-data platform API"
VERSION = "1.0.0"
DESCRIPTION = (
    "Workspaces, API keys, FHIR resources (create, read, update, history, search, views, patient "
    "record), imports, data sources and EHR sync, and the FHIR R4 REST facade under "
    "`/v1/{workspace_id}/fhir/r4`. Authenticate with an API key as a Bearer token. Errors are JSON: "
    '`{"statusCode", "error", "message", "detail": [{"loc", "msg", "type"}]}` (the FHIR facade '
    "answers `OperationOutcome`)."
)
SECURITY_SCHEME = "BearerAuth"
SECURITY_SCHEMES = {
    SECURITY_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "description": "API key issued via `POST /v1/{workspace_id}/api-keys`. Pass the returned `api_key` value as a Bearer token.",
    }
}

#: ``security=PUBLIC`` on a route: no authentication (the template gives it ``Authorizer: NONE``).
#: One empty requirement object is OpenAPI's "anonymous"; the document shows it as ``security: []``.
PUBLIC: list[dict[str, list[str]]] = [{}]

JSON = "application/json"
FHIR_JSON = "application/fhir+json"
REF = "#/components/schemas/"

# bodies answered by API Gateway itself (or the local stack in its place), not by a function
GATEWAY_ERROR = {
    "title": "GatewayError",
    "type": "object",
    "description": "An error answered by API Gateway before any function runs (no key, no route, throttled, timed out).",
    "properties": {"message": {"type": "string", "title": "Message"}},
    "required": ["message"],
}
OPERATION_OUTCOME = {
    "title": "OperationOutcome",
    "type": "object",
    "description": "A FHIR R4 OperationOutcome: every error of the FHIR facade (what in `diagnostics`, where in `expression`/`location`).",
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "severity": {"enum": ["fatal", "error", "warning", "information"]},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                    "expression": {"type": "array", "items": {"type": "string"}},
                    "location": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["severity", "code"],
            },
        },
    },
    "required": ["resourceType", "issue"],
}
FHIR_RESOURCE = {
    "title": "FhirResource",
    "type": "object",
    "description": "A FHIR R4 resource (a Bundle for searches, history, $everything and transactions; a CapabilityStatement for metadata).",
    "properties": {"resourceType": {"type": "string"}},
    "required": ["resourceType"],
}

# statuses answered by the gateway in its own shape, or by the function in the platform's
_GATEWAY_OR_PLATFORM = {401, 404, 413}
_GATEWAY_ONLY = {429, 503}


def responds(status: int, model: Any = None, *, errors: Iterable[int] = (), also: Mapping[int, Any] | None = None, description: str | None = None) -> dict[int, Any]:
    """A route's documented responses, for its decorator (``responses=``): the success ``status``
    with its body ``model`` (``None``: no body), the errors particular to the route in the
    platform's error body (the ones every route shares are added by :func:`build`), and
    ``also``: other statuses with their own body model."""
    from fhir_platform.api.models import ErrorResponse

    out: dict[int, Any] = {status: {"description": description or HTTPStatus(status).phrase}}
    if model is not None:
        out[status]["content"] = {JSON: {"model": model}}
    for code, body in {**{code: ErrorResponse for code in errors}, **(also or {})}.items():
        out[code] = {"description": HTTPStatus(code).phrase, "content": {JSON: {"model": body}}}
    return out


def routers() -> list[Any]:
    """Every router of :mod:`fhir_platform.api.routes`, in module and definition order."""
    import importlib
    import pkgutil  # here, not at import: every route module imports this one (responds), cold starts included
    from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

    from fhir_platform.api import routes

    found: list[Any] = []
    for info in sorted(pkgutil.iter_modules(routes.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{routes.__name__}.{info.name}")
        found += [v for v in vars(module).values() if isinstance(v, APIGatewayHttpRouter) and not any(v is f for f in found)]
    return found


def build(routers_: Iterable[Any]) -> dict[str, Any]:
    """The document for ``routers_`` (see the module's docstring)."""
    from fhir_platform.api.fhir_rest import build_fhir_app
    from fhir_platform.api.models import ErrorResponse

    app = build_fhir_app(*routers_)  # the facade's resolver: ``$everything`` taken literally, else the same
    schema = app.get_openapi_schema(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        openapi_version="3.1.0",
        security_schemes=SECURITY_SCHEMES,
        security=[{SECURITY_SCHEME: []}],
    )
    doc = schema.model_dump(mode="json", by_alias=True, exclude_none=True)
    for route in app._static_routes + app._dynamic_routes:  # group by the module that serves it
        operation = doc["paths"].get(route.openapi_path, {}).get(route.method.lower())
        if operation is not None:
            operation["tags"] = [_tag(route.func.__module__)]
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components.update(_model_schemas(ErrorResponse))
    components["GatewayError"] = GATEWAY_ERROR
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            _complete(path, method, operation)
    used = json.dumps(doc["paths"])
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):  # Powertools' bodies: ours is ErrorResponse
        if f'"{REF}{name}"' not in used:
            components.pop(name, None)
    if "/fhir/r4" in used:
        components["OperationOutcome"] = OPERATION_OUTCOME
        components["FhirResource"] = FHIR_RESOURCE
    return doc


@cache
def document_json() -> str:
    """The served document (built once per execution environment)."""
    return json.dumps(build(routers()), separators=(",", ":"), sort_keys=False)


def document() -> dict[str, Any]:
    return json.loads(document_json())


# ---- what every route shares -------------------------------------------------------------------


_WORDS = {"fhir": "FHIR", "api": "API", "r4": "R4"}


def _tag(module: str) -> str:
    """``fhir_platform.api.routes.fhir_r4`` → ``FHIR R4`` (``data_sources`` → ``Data sources``)."""
    words = [_WORDS.get(w, w) for w in module.rsplit(".", 1)[-1].split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def _model_schemas(model: Any) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF + "{model}")
    defs = schema.pop("$defs", {})
    return {**defs, schema.get("title", model.__name__): schema}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _complete(path: str, method: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    public = operation.get("security") == PUBLIC
    if public:
        operation["security"] = []
    fhir = "/fhir/r4" in path
    has_body = "requestBody" in operation or method in ("post", "put", "patch")
    codes: set[int] = {422} | _GATEWAY_ONLY
    if not public:
        codes |= {401, 403}
    if "{" in path:
        codes.add(404)
    if has_body:
        codes |= {400, 413, 415}
    if fhir:  # the facade's routes are FHIR interactions: an invalid type, id or search (400), a
        # workspace without FHIR (409), a deleted resource (410), a stale If-Match (412)
        codes |= {400, 409, 410} | ({412} if method == "put" else set())
    for code in sorted(codes):
        key = str(code)
        if code in _GATEWAY_ONLY:
            body: dict[str, Any] = _ref("GatewayError")
        elif code in _GATEWAY_OR_PLATFORM:  # the gateway may answer these itself, whatever the route says
            body = {"anyOf": [_ref("ErrorResponse"), _ref("GatewayError")]}
        elif key in responses and key != "422":  # the route's own (422 is Powertools' body, not ours)
            continue
        else:
            body = _ref("ErrorResponse")
        responses[key] = {"description": HTTPStatus(code).phrase, "content": {JSON: {"schema": body}}}
    for key, response in responses.items():
        if int(key) == 204:
            response.pop("content", None)  # no body
        elif fhir:
            _as_fhir(int(key), response)
        elif response.get("content") == {JSON: {}}:  # a route that declares no body model
            response["content"] = {JSON: {"schema": {"type": "object"}}}
    operation["responses"] = dict(sorted(responses.items()))
    if fhir and "requestBody" not in operation and method in ("post", "put"):
        operation["requestBody"] = {"required": True, "content": {FHIR_JSON: {"schema": _ref("FhirResource")}}}


def _as_fhir(code: int, response: dict[str, Any]) -> None:
    """The facade answers ``application/fhir+json``: a resource, or an OperationOutcome (a missing
    key is still refused by the gateway in its own shape; a throttle or timeout too)."""
    if code < 400:
        response["content"] = {FHIR_JSON: {"schema": _ref("FhirResource")}}
        return
    content: dict[str, Any] = {}
    if code in _GATEWAY_ONLY or code in _GATEWAY_OR_PLATFORM:
        content[JSON] = {"schema": _ref("GatewayError")}
    if code not in _GATEWAY_ONLY:
        content[FHIR_JSON] = {"schema": _ref("OperationOutcome")}
    response["content"] = content
