"""The HTTP resolver every function shares: routing and request validation (Powertools, with
pydantic), domain-error → status mapping, the request-size cap, and the caller's principal.

A function's ``app.py`` is two lines: ``app = build_app(<router>)`` and
``handler = lambda_handler(app)``.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, Callable

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from aws_lambda_powertools.logging import correlation_paths

from fhir_platform import config, errors
from fhir_platform.auth.principal import Principal
from fhir_platform.observability import logger, tracer

_STATUS: dict[type[errors.DomainError], HTTPStatus] = {
    errors.InvalidQuery: HTTPStatus.UNPROCESSABLE_ENTITY,
    errors.QueryTooBroad: HTTPStatus.BAD_REQUEST,
    errors.InvalidInput: HTTPStatus.BAD_REQUEST,
    errors.Unauthorized: HTTPStatus.UNAUTHORIZED,
    errors.Forbidden: HTTPStatus.FORBIDDEN,
    errors.NotFound: HTTPStatus.NOT_FOUND,
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


def build_app(*routers: APIGatewayHttpRouter) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=True)
    for router in routers:
        app.include_router(router)
    app.exception_handler(errors.DomainError)(_domain_error)
    app.exception_handler(RequestValidationError)(_validation_error)
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


def lambda_handler(app: APIGatewayHttpResolver, *, public: bool = False) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The function's entry point. Unless ``public`` (a route with ``Authorizer: NONE``), a
    request without an authenticated principal gets 401 before anything else: before the size
    cap, request validation or the route (so no route is reachable unauthenticated)."""

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False)
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not public and (refused := _unauthenticated(event)) is not None:
            return refused
        body = event.get("body") or ""
        size = len(body) * 3 // 4 if event.get("isBase64Encoded") else len(body.encode("utf-8"))
        if size > config.max_request_bytes():
            return {
                "statusCode": 413,
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps(
                    {
                        "statusCode": 413,
                        "error": "payload_too_large",
                        "message": f"Request body is {size} bytes; the limit is {config.max_request_bytes()} bytes. "
                        "Upload larger bundles through POST /v1/{workspace_id}/fhir/imports (S3).",
                        "detail": [{"loc": ["body"], "msg": "too large", "type": "size_limit"}],
                    }
                ),
            }
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
