"""The FHIR-native REST facade's HTTP layer (``/v1/{ws}/fhir/r4``): responses in
``application/fhir+json`` and every error as an ``OperationOutcome``.

The facade's functions are built like every other (:func:`~fhir_platform.api.resolver.build_app`,
:func:`~fhir_platform.api.resolver.lambda_handler`: same authorizer, 401 first, body size cap,
domain-error statuses); :func:`fhir_handler` then turns the platform's JSON error body
(``{"statusCode", "error", "message", "detail"}``) into an ``OperationOutcome`` with the same
status, so the rest of the API keeps its own error shape. Each ``detail`` item becomes one issue:
``diagnostics`` says what, ``expression`` (FHIRPath into the resource sent) or ``location``
(``http.<header or query parameter>``) says where; nothing of the input is echoed.

Bodies are raw FHIR resources (not the platform's ``{"data": ...}`` envelope): :func:`resource_body`
parses one with the shared parser (UTF-8 and nesting checks) and :func:`raw_locations` rewrites the
domain services' ``["body", "data", ...]`` locations to ``["body", ...]``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any, Callable

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform import config, errors
from fhir_platform.api import resolver
from fhir_platform.api.resolver import lambda_handler, parse_json_body

FHIR_JSON = "application/fhir+json; charset=utf-8"
BASE = "/v1/{workspace_id}/fhir/r4"

# FHIR's issue-type codes (http://hl7.org/fhir/valueset-issue-type.html) per HTTP status
_ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-long",
    415: "not-supported",
    422: "processing",
    429: "throttled",
}


def fhir_response(status: int, body: Any | None, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=FHIR_JSON,
        body=None if body is None else json.dumps(body, separators=(",", ":")),
        headers=headers or {},
    )


def _expression(loc: list[Any], resource_type: str | None) -> str:
    path = resource_type or "Resource"
    for part in loc:
        if part == "root":  # pydantic's name for a wrapped value, not a FHIR element
            continue
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def operation_outcome(status: int, message: str, detail: list[dict[str, Any]], resource_type: str | None = None) -> dict[str, Any]:
    code = _ISSUE_CODE.get(status, "exception" if status >= 500 else "processing")
    issues: list[dict[str, Any]] = []
    for item in detail or []:
        loc = list(item.get("loc") or [])
        issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": f"{message}: {item.get('msg', 'invalid')}"}
        if item.get("type"):
            issue["details"] = {"coding": [{"system": "https://fhir-platform.example.org/error-type", "code": str(item["type"])}]}
        if loc[:1] == ["body"] and len(loc) > 1:
            issue["expression"] = [_expression(loc[1:], resource_type)]
        elif loc[:1] in (["header"], ["query"], ["path"]) and len(loc) > 1:
            issue["location"] = [f"http.{loc[1]}"]
        issues.append(issue)
    if not issues:
        issues.append({"severity": "error", "code": code, "diagnostics": message})
    return {"resourceType": "OperationOutcome", "issue": issues}


def _as_outcome(result: dict[str, Any], resource_type: str | None) -> dict[str, Any]:
    """A platform JSON error response → the same status with an OperationOutcome body."""
    status = int(result.get("statusCode", 500))
    if status < 400:
        return result
    try:
        body = json.loads(result.get("body") or "{}")
    except (TypeError, ValueError):
        body = {}
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return result
    message = body.get("message") if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) and isinstance(body.get("detail"), list) else []
    message = message if isinstance(message, str) else HTTPStatus(status).phrase
    headers = {k: v for k, v in (result.get("headers") or {}).items() if k.lower() != "content-type"}
    outcome = operation_outcome(status, message, detail, resource_type)
    return {
        **{k: v for k, v in result.items() if k not in ("body", "headers", "isBase64Encoded", "multiValueHeaders")},
        "statusCode": status,
        "headers": {**headers, "Content-Type": FHIR_JSON},
        "body": json.dumps(outcome, separators=(",", ":")),
        "isBase64Encoded": False,
    }


class FhirResolver(APIGatewayHttpResolver):
    """Powertools' resolver, with ``$`` in a route taken literally (FHIR operations: ``$everything``)."""

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = "^{}$"):  # type: ignore[override]
        return APIGatewayHttpResolver._compile_regex(rule.replace("$", r"\$"), base_regex)


def build_fhir_app(*routers: APIGatewayHttpRouter) -> APIGatewayHttpResolver:
    """:func:`~fhir_platform.api.resolver.build_app` for the facade's routes."""
    app = FhirResolver(enable_validation=True, json_body_deserializer=parse_json_body)
    for router in routers:
        app.include_router(router)
    app.exception_handler(errors.DomainError)(resolver._domain_error)
    app.exception_handler(resolver.RequestValidationError)(resolver._validation_error)
    app.exception_handler(resolver.RequestUnsupportedContentType)(resolver._unsupported_content_type)
    app.exception_handler(resolver.NotFoundError)(resolver._not_found)
    return app


def fhir_handler(app: APIGatewayHttpResolver) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """:func:`~fhir_platform.api.resolver.lambda_handler` with errors as OperationOutcome."""
    inner = lambda_handler(app)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        result = inner(event, context)
        if int(result.get("statusCode", 200)) >= 400:
            # the body is a resource of the URL's type; without one (``POST /``) it is a Bundle
            resource_type = (event.get("pathParameters") or {}).get("resource_type") or "Bundle"
            return _as_outcome(result, resource_type)
        return result

    handler.app = app  # type: ignore[attr-defined]
    handler.public = False  # type: ignore[attr-defined]
    return handler


_FORM = "application/x-www-form-urlencoded"


def form_search_handler(app: APIGatewayHttpResolver) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """:func:`fhir_handler` for ``POST {type}/_search``: a form body (the only body FHIR allows
    there) is appended to the query string and removed, so the route reads its parameters exactly
    as ``GET`` does (the platform refuses form bodies everywhere else, 415). Authentication still
    comes first (the inner handler's); a form over the body size cap is left in place and refused."""
    inner = fhir_handler(app)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        headers = event.get("headers") or {}
        media = str(headers.get("content-type", "")).split(";")[0].strip().lower()
        body = event.get("body") or ""
        if media == _FORM and body and len(body) <= config.max_request_bytes() * 4 // 3 + 4:
            try:
                text = base64.b64decode(body, validate=True).decode("utf-8") if event.get("isBase64Encoded") else body
            except (binascii.Error, ValueError):  # ValueError: UnicodeDecodeError
                rtype = (event.get("pathParameters") or {}).get("resource_type")
                refused = resolver._unauthenticated(event) or resolver._gateway_error(
                    HTTPStatus.BAD_REQUEST, "bad_request", "The form body is not UTF-8 text (or not valid base64)",
                    [{"loc": ["body"], "msg": "not UTF-8 form text", "type": "string_unicode"}],
                )
                return _as_outcome(refused, rtype)
            if text is not None and len(text.encode()) <= config.max_request_bytes():
                query = "&".join(q for q in (event.get("rawQueryString") or "", text.strip()) if q)
                rest = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                event = {**event, "headers": rest, "body": None, "isBase64Encoded": False, "rawQueryString": query}
        return inner(event, context)

    handler.app = app  # type: ignore[attr-defined]
    handler.public = False  # type: ignore[attr-defined]
    return handler


def resource_body(router: Any, resource_type: str | None = None) -> dict[str, Any]:
    """The request's body as one FHIR resource (a JSON object, of ``resource_type`` when given)."""
    text = router.current_event.body or ""
    if not text.strip():
        raise errors.InvalidInput("A FHIR resource body is required", details=[{"loc": ["body"], "msg": "body is empty", "type": "missing"}])
    try:
        value = parse_json_body(text)
    except json.JSONDecodeError as exc:
        raise errors.InvalidInput(
            f"Request body is not valid JSON (line {exc.lineno}, column {exc.colno})",
            details=[{"loc": ["body"], "msg": "invalid JSON", "type": "json_invalid"}],
        ) from None
    if not isinstance(value, dict):
        raise errors.InvalidInput("Request body must be a FHIR resource (a JSON object)", details=[{"loc": ["body"], "msg": "not a JSON object", "type": "model_attributes_type"}])
    try:
        where = _null_at(value)
    except RecursionError:
        raise errors.InvalidInput("JSON is nested too deeply", details=[{"loc": ["body"], "msg": "nested too deeply", "type": "json_invalid"}]) from None
    if where is not None:
        raise errors.Unprocessable(
            "FHIR JSON has no null values: leave the element out instead",
            details=[{"loc": ["body", *where], "msg": "must not be null: leave the element out instead", "type": "null_not_allowed"}],
        )
    if resource_type is not None and value.get("resourceType") != resource_type:
        raise errors.InvalidInput(
            f"Body resourceType must be {resource_type!r}, as in the URL",
            details=[{"loc": ["body", "resourceType"], "msg": f"must be {resource_type!r}", "type": "value_error"}],
        )
    return value


def _null_at(value: Any, path: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """Where the first ``null`` property sits (FHIR JSON allows ``null`` only inside the arrays of
    a repeating primitive, to line values up with their extensions)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if item is None:
                return (*path, key)
            found = _null_at(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _null_at(item, (*path, index))
            if found is not None:
                return found
    return None


@contextmanager
def raw_locations() -> Iterator[None]:
    """The domain services name a resource field ``["body", "data", ...]`` (the platform's
    envelope); the facade's body is the resource itself."""
    try:
        yield
    except errors.DomainError as exc:
        for item in exc.details or []:
            loc = item.get("loc")
            if isinstance(loc, list) and loc[:2] == ["body", "data"]:
                item["loc"] = ["body", *loc[2:]]
        raise


def base_url(router: Any, workspace_id: Any) -> str:
    """The facade's absolute base URL as the client reached it (for fullUrl, links, Location)."""
    headers = router.current_event.headers or {}
    # the domain API Gateway received the request on (not a client-chosen header), else Host
    host = router.current_event.request_context.domain_name or headers.get("host")
    proto = (headers.get("x-forwarded-proto") or "https").split(",")[0].strip()
    return f"{proto}://{host}{BASE.format(workspace_id=workspace_id)}"
