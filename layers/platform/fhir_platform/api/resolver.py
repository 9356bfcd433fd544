"""The HTTP resolver every function shares: routing and request validation (Powertools, with
pydantic), domain-error → status mapping, the request body's decoding and size cap, and the
caller's principal.

Request bodies are UTF-8 text (JSON, or NDJSON for the import stream). API Gateway base64-encodes a
body that is not valid UTF-8; :func:`lambda_handler` decodes it and hands the route its text with
the undecodable bytes kept as lone surrogates (``surrogateescape``), so a JSON body's parser
(:func:`parse_json_body`) can name the field that holds them (422, ``detail[].loc``) and the NDJSON
stream can report the line (:func:`raw_body` gives back the exact bytes). Nothing undecodable
reaches a model, a service or storage.

A function's ``app.py`` is two lines: ``app = build_app(<router>)`` and
``handler = lambda_handler(app)``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from http import HTTPStatus
from typing import Any, Callable

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.logging import correlation_paths

from fhir_platform import config, errors
from fhir_platform.auth.principal import Principal
from fhir_platform.observability import count, logger, metrics, tracer

_STATUS: dict[type[errors.DomainError], HTTPStatus] = {
    errors.InvalidQuery: HTTPStatus.UNPROCESSABLE_ENTITY,
    errors.QueryTooBroad: HTTPStatus.BAD_REQUEST,
    errors.InvalidInput: HTTPStatus.BAD_REQUEST,
    errors.Unauthorized: HTTPStatus.UNAUTHORIZED,
    errors.Forbidden: HTTPStatus.FORBIDDEN,
    errors.NotFound: HTTPStatus.NOT_FOUND,
    errors.Gone: HTTPStatus.GONE,
    errors.Conflict: HTTPStatus.CONFLICT,
    errors.FhirNotConfigured: HTTPStatus.CONFLICT,
    errors.PreconditionFailed: HTTPStatus.PRECONDITION_FAILED,
    errors.PayloadTooLarge: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    errors.Unprocessable: HTTPStatus.UNPROCESSABLE_ENTITY,
}
_CODES = {
    errors.FhirNotConfigured: "fhir_not_configured",
    errors.PreconditionFailed: "precondition_failed",
    errors.InvalidQuery: "validation_error",
    errors.QueryTooBroad: "search_too_broad",
}


def error_response(status: HTTPStatus, error: str, message: str, detail: list[dict[str, Any]] | None = None) -> Response:
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body={"statusCode": status.value, "error": error, "message": message, "detail": detail or []},
    )


def _domain_error(exc: errors.DomainError) -> Response:
    status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), HTTPStatus.BAD_REQUEST)
    code = _CODES.get(type(exc), status.phrase.lower().replace(" ", "_"))
    return error_response(status, code, exc.message, exc.details)


def _validation_error(exc: RequestValidationError) -> Response:
    # loc/msg/type only: never echo the input (it may be PHI or a secret)
    detail: list[dict[str, Any]] = []
    for e in exc.errors():
        item = {"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid"), "type": e.get("type", "value_error")}
        if item["loc"][:1] == ["query"]:
            # query parameters are flat: drop pydantic's union/list labels ("a string or a list of
            # strings" gives one error per alternative) and keep one, the most telling, per parameter
            item["loc"] = item["loc"][:2]
            same = next((d for d in detail if d["loc"] == item["loc"]), None)
            if same is not None:
                if same["type"] in ("string_type", "list_type"):
                    same.update(item)
                continue
        detail.append(item)
    where = ", ".join(".".join(str(p) for p in d["loc"]) for d in detail[:5])
    return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error", f"Request validation failed at: {where}", detail)


def _unsupported_content_type(exc: RequestUnsupportedContentType) -> Response:
    detail = [{"loc": ["body"], "msg": "unsupported content type", "type": "unsupported_content_type"}]
    return error_response(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "Request body must be JSON (Content-Type: application/json)", detail
    )


# ---- request bodies -------------------------------------------------------------------------

_UNDECODABLE = re.compile(r"[\ud800-\udfff]")  # bytes kept by surrogateescape, or a lone \uD8xx escape
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # \uD800-\uDFFF escapes: pairs are fine, lone ones are not


def _body_invalid(loc: tuple[Any, ...], msg: str, type_: str) -> RequestValidationError:
    return RequestValidationError([{"loc": loc, "msg": msg, "type": type_}])


def _reject_constant(name: str) -> Any:
    raise _body_invalid(("body",), f"{name} is not a JSON value", "json_invalid")


def _undecodable_at(value: Any, path: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """Where the first string (or key) that is not valid Unicode text sits in parsed JSON."""
    if isinstance(value, str):
        return path if _UNDECODABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _UNDECODABLE.search(key):
                return (*path, key.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
            found = _undecodable_at(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _undecodable_at(item, (*path, index))
            if found is not None:
                return found
    return None


def parse_json_body(text: str) -> Any:
    """A request's JSON body, or a 422 saying where it is wrong: text that is not UTF-8 (a field
    holding undecodable bytes or a lone surrogate escape), ``NaN``/``Infinity``, nesting too deep
    for the parser. Malformed JSON is Powertools' own 422 (``json_invalid``)."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise _body_invalid(("body",), "JSON is nested too deeply", "json_invalid") from None
    if _UNDECODABLE.search(text) or _SURROGATE_ESCAPE.search(text):
        try:
            where = _undecodable_at(value)
        except RecursionError:  # nested nearly as deep as the parser allows: say so, not where
            where = ()
        if where is not None:
            raise _body_invalid(("body", *where), "must be valid UTF-8 text", "string_unicode")
    return value


def raw_body(event: Any) -> bytes:
    """The request body exactly as the client sent it (see :func:`lambda_handler`)."""
    body = event.body or ""
    return base64.b64decode(body) if event.is_base64_encoded else body.encode("utf-8", "surrogateescape")


def _gateway_error(status: HTTPStatus, error: str, message: str, detail: list[dict[str, Any]]) -> dict[str, Any]:
    """An error answered before routing, in the shape API Gateway expects from the function."""
    body = {"statusCode": status.value, "error": error, "message": message, "detail": detail}
    return {"statusCode": status.value, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def _too_large(size: int) -> dict[str, Any]:
    return _gateway_error(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        "payload_too_large",
        f"Request body is {size} bytes; the limit is {config.max_request_bytes()} bytes. "
        "Upload larger bundles through POST /v1/{workspace_id}/fhir/imports (S3).",
        [{"loc": ["body"], "msg": "too large", "type": "size_limit"}],
    )


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")  # Powertools would parse these into a model
_FHIR_JSON = ("application/fhir+json", "application/json+fhir")  # FHIR's JSON media types (R4, and DSTU2's)


def _request_body(event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The event with its body as text, or the error to answer instead (415 for a form: bodies are
    JSON or NDJSON; 413; 400 for a base64 body that does not decode). A base64 body is decoded here; bytes that are not UTF-8 are kept as
    lone surrogates (``surrogateescape``) for the route's parser to locate and refuse."""
    body = event.get("body") or ""
    media_type = str((event.get("headers") or {}).get("content-type", "")).split(";")[0].strip().lower()
    if body and media_type in _FORMS:
        return event, _gateway_error(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Request body must be JSON (Content-Type: application/json), not a form",
            [{"loc": ["body"], "msg": "unsupported content type", "type": "unsupported_content_type"}],
        )
    if media_type in _FHIR_JSON:  # what every FHIR client sends: JSON to Powertools' parser
        headers = {k: v for k, v in (event.get("headers") or {}).items() if k != "content-type"}
        event = {**event, "headers": {**headers, "content-type": "application/json"}}
    if not (body and event.get("isBase64Encoded")):
        size = len(body.encode("utf-8", "surrogatepass"))
        return event, (_too_large(size) if size > config.max_request_bytes() else None)
    size = len(body) * 3 // 4 - body[-2:].count("=")
    if size > config.max_request_bytes():
        return event, _too_large(size)
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return event, _gateway_error(
            HTTPStatus.BAD_REQUEST,
            "bad_request",
            "Request body is marked base64-encoded but is not valid base64",
            [{"loc": ["body"], "msg": "not valid base64", "type": "base64_invalid"}],
        )
    return {**event, "body": raw.decode("utf-8", "surrogateescape"), "isBase64Encoded": False}, None


def open_query(route: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a route (below its ``@router.get``) whose query takes parameters beyond the ones it
    declares (FHIR search: the route parses and checks them itself)."""
    route.open_query = True  # type: ignore[attr-defined]
    return route


def _refuse_unknown_query(app: APIGatewayHttpResolver, next_middleware: Callable[..., Response]) -> Response:
    """A query parameter the route does not declare is a 422 naming it (``detail[].loc`` =
    ``["query", <name>]``), never silently ignored: a misspelt filter (``is_activ=false``) must not
    answer as if it were absent."""
    route = app.context.get("_route")
    served = route is not None and any(route is r for r in app._static_routes + app._dynamic_routes)  # not Powertools' 404
    if served and not getattr(route.func, "open_query", False):
        declared = {param.alias for param in route.dependant.query_params}
        unknown = [name for name in app.current_event.query_string_parameters or {} if name not in declared]
        if unknown:
            supported = ", ".join(sorted(declared)) or "none"
            msg = f"unknown parameter (supported: {supported})"
            raise RequestValidationError([{"loc": ("query", name), "msg": msg, "type": "extra_forbidden"} for name in unknown])
    return next_middleware(app)


def _not_found(exc: NotFoundError) -> Response:
    """A path the gateway routed here that no route matches (a path id holding a character no id
    has, such as ``"`` or ``\\``): a 404 in the platform's error shape, not Powertools' own."""
    detail = [{"loc": ["path"], "msg": "no such resource", "type": "not_found"}]
    return error_response(HTTPStatus.NOT_FOUND, "not_found", "Not found: no resource has this path", detail)


def build_app(*routers: APIGatewayHttpRouter) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True, json_body_deserializer=parse_json_body)
    for router in routers:
        app.include_router(router)
    app.use([_refuse_unknown_query])
    app.exception_handler(errors.DomainError)(_domain_error)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.exception_handler(RequestUnsupportedContentType)(_unsupported_content_type)
    app.exception_handler(NotFoundError)(_not_found)
    return app


def _unauthenticated(event: dict[str, Any]) -> dict[str, Any] | None:
    """401 for a caller the authorizer could not identify; None for an authenticated one."""
    ctx = ((event.get("requestContext") or {}).get("authorizer") or {}).get("lambda")
    try:
        Principal.from_context(ctx)
    except errors.Unauthorized as exc:
        return {
            "statusCode": 401,
            # RFC 6750: a 401 names the scheme the client must use
            "headers": {"Content-Type": "application/json", "WWW-Authenticate": "Bearer"},
            "body": json.dumps({"statusCode": 401, "error": "unauthorized", "message": exc.message, "detail": exc.details}),
        }
    return None


RETRY_AFTER_SECONDS = 1


def with_retry_after(response: dict[str, Any]) -> dict[str, Any]:
    """A 429 or 503 the platform answers always says when to come back (``Retry-After``, seconds),
    unless the route set its own. (API Gateway's own throttling 429 cannot carry it: see
    docs/operations.md.)"""
    if int(response.get("statusCode", 200)) in (429, 503):
        headers = response.get("headers") or {}
        if not any(name.lower() == "retry-after" for name in headers):
            response = {**response, "headers": {**headers, "Retry-After": str(RETRY_AFTER_SECONDS)}}
    return response


def lambda_handler(app: APIGatewayHttpResolver, *, public: bool = False) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The function's entry point. Unless ``public`` (a route with ``Authorizer: NONE``), a
    request without an authenticated principal gets 401 before anything else: before the size
    cap, request validation or the route (so no route is reachable unauthenticated)."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
    @metrics.log_metrics
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        count("Requests")
        response = with_retry_after(_handle(event, context))
        if int(response.get("statusCode", 200)) >= 500:
            count("ServerErrors")
        return response

    def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not public and (refused := _unauthenticated(event)) is not None:
            return refused
        event, refused = _request_body(event)
        if refused is not None:
            return refused
        return app.resolve(event, context)

    handler.app = app  # type: ignore[attr-defined]
    handler.public = public  # type: ignore[attr-defined]
    return handler


def principal(app: APIGatewayHttpResolver) -> Principal:
    """The caller, as the authorizer described it."""
    ctx = app.current_event.request_context.authorizer.get_lambda
    return Principal.from_context(ctx)


def json_response(status: int, model: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=model.model_dump_json() if hasattr(model, "model_dump_json") else json.dumps(model),
        headers=headers or {},
    )
