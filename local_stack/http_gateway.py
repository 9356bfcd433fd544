"""API Gateway HTTP API, locally: the template's routes, its Lambda authorizer, payload format 2.0.

Data flow for one request to ``127.0.0.1:$PORT``:

1. ``build_gateway()`` has read the routes from the functions' ``Type: HttpApi`` events (``Path``,
   ``Method``, ``ApiId: !Ref <HttpApi>``, optional ``Auth.Authorizer``) and the authorizers from each
   ``AWS::Serverless::HttpApi``'s ``Auth`` (``Authorizers.<Name>.FunctionArn: !GetAtt F.Arn``,
   ``Identity.Headers``/``QueryStrings``, ``EnableSimpleResponses``, ``DefaultAuthorizer``), with
   ``Globals.HttpApi`` merged in. Events without ``ApiId`` belong to SAM's implicit API.
2. The request is matched like API Gateway does: the most specific route wins (no path variables,
   then fewer variables, then a longer literal prefix; greedy ``{proxy+}`` last; an exact method
   before ``ANY``); none → 404 ``{"message":"Not Found"}``. The path is URL-decoded first, as HTTP
   APIs do. Bodies over 10 MB → 413.
3. Unless the route's authorizer is ``NONE``: a missing identity source (e.g. no ``Authorization``
   header) → 401 without calling the authorizer; otherwise the authorizer function gets a payload
   2.0 REQUEST event; ``isAuthorized: false`` (or a Deny policy) → 403, an error → 500. Results are
   cached for ``Identity.ReauthorizeEvery`` seconds when the template sets it.
4. The route's function gets the HTTP API payload 2.0 event (headers lower-cased with duplicates
   comma-joined, ``cookies``, repeated query keys comma-joined, ``pathParameters``, ``requestContext``
   with ``authorizer.lambda`` = the authorizer's context, body base64-encoded unless it is text)
   and a Lambda context; its result is translated back (``statusCode``/``headers``/``cookies``/
   ``multiValueHeaders``/``body``/``isBase64Encoded``, or a bare value = 200 JSON). A handler error
   → 500 ``{"message":"Internal Server Error"}`` with the traceback on stderr. The authorizer and the
   function each run in an execution environment of theirs (``lambda_runtime``); a request waits at
   most 30 s for a free one, then 503 ``{"message":"Service Unavailable"}``.

Requests under ``/_local/`` are the local stack's own admin routes (not part of the template API);
see ``LocalStack.admin``. Only the method, the route template, the status and the duration are
logged; never paths with their values, queries or bodies (they may hold PHI).
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import re
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local_stack.lambda_runtime import FunctionError, FunctionThrottled, LambdaFunction
from local_stack.template import ACCOUNT_ID, Resolver, Template, TemplateError, referenced_logical_id

log = logging.getLogger("local_stack")

MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API payload limit
MAX_LAMBDA_PAYLOAD = 6 * 1024 * 1024  # Lambda synchronous invocation limit (request and response)
# How long a request waits for a free execution environment of its function (HTTP APIs give an
# integration 30 s); then 503 {"message": "Service Unavailable"}, as when Lambda throttles.
INTEGRATION_TIMEOUT_SECONDS = 30
IMPLICIT_API = "ServerlessHttpApi"
ADMIN_PREFIX = "/_local/"
_TEXT_TYPES = ("application/json", "application/javascript", "application/xml", "application/graphql")


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Response:
        return cls(status, [("content-type", "application/json"), *(headers or [])], json.dumps(payload).encode())

    @classmethod
    def message(cls, status: int, message: str) -> Response:
        return cls.json(status, {"message": message})


@dataclass
class Request:
    method: str
    path: str  # URL-decoded, as HTTP APIs deliver it
    raw_query: str
    headers: list[tuple[str, str]]  # as received
    body: bytes
    source_ip: str
    protocol: str
    host: str

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ",".join(values) if values else None


@dataclass
class LambdaAuthorizer:
    name: str
    function: LambdaFunction
    identity_headers: list[str]
    identity_query: list[str]
    simple_responses: bool
    ttl: int
    _cache: dict[tuple[str, ...], tuple[float, bool, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def identity(self, request: Request, query: dict[str, str]) -> list[str] | None:
        values = []
        for name in self.identity_headers:
            value = request.header(name)
            if not value:
                return None
            values.append(value)
        for name in self.identity_query:
            if not query.get(name):
                return None
            values.append(query[name])
        return values

    def cached(self, identity: list[str]) -> tuple[bool, Any] | None:
        if self.ttl <= 0:
            return None
        with self._lock:
            hit = self._cache.get(tuple(identity))
            if hit and hit[0] > time.monotonic():
                return hit[1], hit[2]
        return None

    def remember(self, identity: list[str], allowed: bool, context: Any) -> None:
        if self.ttl > 0:
            with self._lock:
                self._cache[tuple(identity)] = (time.monotonic() + self.ttl, allowed, context)


@dataclass
class Route:
    api_id: str
    method: str  # upper case, or ANY
    path: str
    function: LambdaFunction
    authorizer: LambdaAuthorizer | None
    stage: str
    cors: dict[str, Any] | None
    regex: re.Pattern[str] = field(init=False)
    params: list[str] = field(init=False)

    def __post_init__(self) -> None:
        pattern, self.params = _compile_path(self.path)
        self.regex = re.compile(pattern)

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def specificity(self) -> tuple[int, list[int], int]:
        """Sort key, most specific first: greedy last; segment by segment, a literal before a
        variable; an exact method before ANY."""
        greedy = int(self.path.rstrip("}").endswith("+"))
        segments = [int(segment.startswith("{")) for segment in self.path.strip("/").split("/")]
        return (greedy, segments, int(self.method == "ANY"))


def _compile_path(path: str) -> tuple[str, list[str]]:
    params: list[str] = []
    parts = []
    segments = path.strip("/").split("/") if path.strip("/") else []
    for index, segment in enumerate(segments):
        match = re.fullmatch(r"\{([A-Za-z0-9_.-]+)(\+?)\}", segment)
        if match:
            name, greedy = match.groups()
            if greedy and index != len(segments) - 1:
                raise TemplateError(f"route {path}: a greedy variable must be the last segment")
            group = f"p{len(params)}"
            params.append(name)
            parts.append(f"(?P<{group}>.+)" if greedy else f"(?P<{group}>[^/]+)")
        elif "{" in segment or "}" in segment:
            raise TemplateError(f"route {path}: a path variable must be a whole segment")
        else:
            parts.append(re.escape(segment))
    return "/" + "/".join(parts), params


# --- reading the template ----------------------------------------------------------------------------


def build_gateway(template: Template, resolver: Resolver, functions: dict[str, LambdaFunction]) -> HttpGateway:
    apis: dict[str, dict[str, Any]] = {}

    def api(logical_id: str) -> dict[str, Any]:
        if logical_id not in apis:
            explicit = logical_id != IMPLICIT_API
            raw = template.http_api_properties(logical_id if explicit else None)
            # only what the gateway uses: other properties may reference things not emulated
            props = resolver.resolve({k: raw[k] for k in ("Auth", "CorsConfiguration", "StageName") if k in raw})
            raw_auth = raw.get("Auth") or {}
            authorizers = {}
            for name, spec in (raw_auth.get("Authorizers") or {}).items():
                authorizers[name] = _authorizer(name, spec, resolver, functions, logical_id)
            cors = props.get("CorsConfiguration")
            if cors is True:
                cors = {"AllowOrigins": ["*"], "AllowMethods": ["*"], "AllowHeaders": ["*"]}
            apis[logical_id] = {
                "id": resolver.refs.get(logical_id, "localapi"),
                "authorizers": authorizers,
                "default": (props.get("Auth") or {}).get("DefaultAuthorizer"),
                "stage": props.get("StageName", "$default"),
                "cors": cors or None,
            }
        return apis[logical_id]

    routes: list[Route] = []
    for function in functions.values():
        for event_name, event in function.spec.events.items():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            where = f"{function.logical_id}.Events.{event_name}"
            api_ref = props.get("ApiId")
            api_logical_id = referenced_logical_id(api_ref) if api_ref is not None else IMPLICIT_API
            if api_logical_id is None or (api_logical_id != IMPLICIT_API and api_logical_id not in template.all_resources):
                raise TemplateError(f"{where}: ApiId must be !Ref to an AWS::Serverless::HttpApi of this template")
            config = api(api_logical_id)
            resolved = resolver.resolve(props)
            version = str(resolved.get("PayloadFormatVersion", "2.0"))
            if version != "2.0":
                raise TemplateError(f"{where}: only PayloadFormatVersion 2.0 is emulated")
            path = resolved.get("Path")
            method = str(resolved.get("Method", "ANY")).upper()
            if not path:
                raise TemplateError(f"{where}: SAM's $default route (no Path) is not emulated")
            if path.startswith(ADMIN_PREFIX.rstrip("/")):
                raise TemplateError(f"{where}: {ADMIN_PREFIX} is reserved for the local stack's admin routes")
            authorizer_name = (resolved.get("Auth") or {}).get("Authorizer", config["default"])
            authorizer = None
            if authorizer_name and authorizer_name != "NONE":
                if authorizer_name not in config["authorizers"]:
                    raise TemplateError(f"{where}: unknown authorizer {authorizer_name!r}")
                authorizer = config["authorizers"][authorizer_name]
            method = "ANY" if method in ("ANY", "X-AMAZON-APIGATEWAY-ANY-METHOD") else method
            routes.append(Route(config["id"], method, path, function, authorizer, config["stage"], config["cors"]))

    seen: dict[str, str] = {}
    for route in routes:
        if route.route_key in seen:
            raise TemplateError(f"route {route.route_key} is defined twice ({seen[route.route_key]}, {route.function.logical_id})")
        seen[route.route_key] = route.function.logical_id
    return HttpGateway(routes, resolver.region)


def _authorizer(
    name: str, spec: dict[str, Any], resolver: Resolver, functions: dict[str, LambdaFunction], api: str
) -> LambdaAuthorizer:
    where = f"{api}.Auth.Authorizers.{name}"
    if "JwtConfiguration" in spec:
        raise TemplateError(f"{where}: JWT authorizers are not emulated")
    logical_id = referenced_logical_id(spec.get("FunctionArn"), "Arn")
    if logical_id is None:
        arn = resolver.resolve(spec.get("FunctionArn"))
        logical_id = next((f.logical_id for f in functions.values() if f.spec.arn == arn), None)
    if logical_id not in functions:
        raise TemplateError(f"{where}: FunctionArn must be !GetAtt <Function>.Arn of this template")
    resolved = resolver.resolve({k: v for k, v in spec.items() if k != "FunctionArn"})
    if str(resolved.get("AuthorizerPayloadFormatVersion", "2.0")) != "2.0":
        raise TemplateError(f"{where}: only AuthorizerPayloadFormatVersion 2.0 is emulated")
    identity = resolved.get("Identity") or {}
    return LambdaAuthorizer(
        name=name,
        function=functions[logical_id],
        identity_headers=[h.lower() for h in identity.get("Headers") or []],
        identity_query=list(identity.get("QueryStrings") or []),
        simple_responses=str(resolved.get("EnableSimpleResponses", False)).lower() == "true",
        ttl=int(identity.get("ReauthorizeEvery", 0)),
    )


# --- serving ------------------------------------------------------------------------------------------


class HttpGateway:
    def __init__(self, routes: list[Route], region: str) -> None:
        self.routes = sorted(routes, key=lambda r: r.specificity)
        self.region = region
        self.admin: Callable[[Request], Response | None] | None = None
        self.port = 0

    def describe(self) -> list[str]:
        lines = []
        for route in sorted(self.routes, key=lambda r: (r.path, r.method)):
            auth = route.authorizer.name if route.authorizer else "NONE"
            lines.append(f"{route.method:6} {route.path}  -> {route.function.logical_id} (auth: {auth})")
        return lines

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method not in (method, "ANY"):
                continue
            found = route.regex.fullmatch(path)
            if found:
                values = {name: found.group(f"p{i}") for i, name in enumerate(route.params)}
                return route, values
        return None

    def handle(self, request: Request) -> tuple[Response, str]:
        """The response, and what to log for it (method + route template, never the raw path)."""
        if request.path.startswith(ADMIN_PREFIX) and self.admin is not None:
            response = self.admin(request)
            if response is not None:
                return response, f"{request.method} {ADMIN_PREFIX}..."
        if request.method == "OPTIONS" and request.header("access-control-request-method"):
            preflight = self._preflight(request)
            if preflight is not None:
                return preflight, "OPTIONS (CORS preflight)"
        matched = self.match(request.method, request.path)
        if matched is None:
            return Response.message(404, "Not Found"), f"{request.method} (no route)"
        route, path_params = matched
        response = self._invoke_route(request, route, path_params)
        if route.cors:
            response.headers = _with_cors(response.headers, route.cors, request.header("origin"))
        return response, route.route_key

    def _invoke_route(self, request: Request, route: Route, path_params: dict[str, str]) -> Response:
        query = _query_parameters(request.raw_query)
        request_id = base64.b64encode(secrets.token_bytes(10)).decode()
        context = self._request_context(request, route, request_id)
        authorizer_context: Any = None
        if route.authorizer is not None:
            denied, authorizer_context = self._authorize(request, route, path_params, query, context)
            if denied is not None:
                denied.headers.append(("apigw-requestid", request_id))
                return denied
            context["authorizer"] = {"lambda": authorizer_context}
        event = self._event(request, route, path_params, query, context)
        if len(json.dumps(event)) > MAX_LAMBDA_PAYLOAD:
            return Response.message(413, "Request Entity Too Large")
        try:
            result = route.function.invoke(event, wait=INTEGRATION_TIMEOUT_SECONDS)
        except FunctionThrottled:
            return _throttled(route.function.logical_id)
        except FunctionError:
            return Response.message(500, "Internal Server Error")
        response = _to_response(result, route.function.logical_id)
        response.headers.append(("apigw-requestid", request_id))
        return response

    def _authorize(
        self,
        request: Request,
        route: Route,
        path_params: dict[str, str],
        query: dict[str, str],
        context: dict[str, Any],
    ) -> tuple[Response | None, Any]:
        authorizer = route.authorizer
        assert authorizer is not None
        identity = authorizer.identity(request, query)
        if identity is None:
            return Response.message(401, "Unauthorized"), None
        cached = authorizer.cached(identity)
        if cached is not None:
            allowed, auth_context = cached
        else:
            route_arn = (
                f"arn:aws:execute-api:{self.region}:{ACCOUNT_ID}:{route.api_id}/{route.stage}/"
                f"{request.method}{request.path}"
            )
            event = {
                "version": "2.0",
                "type": "REQUEST",
                "routeArn": route_arn,
                "identitySource": identity,
                "routeKey": route.route_key,
                **self._event(request, route, path_params, query, context, with_body=False),
            }
            event.pop("isBase64Encoded", None)
            try:
                result = authorizer.function.invoke(event, wait=INTEGRATION_TIMEOUT_SECONDS)
                allowed, auth_context = _authorizer_verdict(result, authorizer.simple_responses, route_arn)
            except FunctionThrottled:
                return _throttled(authorizer.function.logical_id), None
            except FunctionError:
                return Response.message(500, "Internal Server Error"), None
            except ValueError as exc:
                log.error("authorizer %s returned an invalid response: %s", authorizer.name, exc)
                return Response.message(500, "Internal Server Error"), None
            authorizer.remember(identity, allowed, auth_context)
        if not allowed:
            return Response.message(403, "Forbidden"), None
        return None, auth_context

    def _request_context(self, request: Request, route: Route, request_id: str) -> dict[str, Any]:
        now = datetime.now(timezone.utc)
        domain = request.host or f"127.0.0.1:{self.port}"
        return {
            "accountId": ACCOUNT_ID,
            "apiId": route.api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": request.header("user-agent") or "",
            },
            "requestId": request_id,
            "routeKey": route.route_key,
            "stage": route.stage,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        }

    def _event(
        self,
        request: Request,
        route: Route,
        path_params: dict[str, str],
        query: dict[str, str],
        context: dict[str, Any],
        with_body: bool = True,
    ) -> dict[str, Any]:
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in request.headers:
            name = name.lower()
            if name == "cookie":
                cookies.extend(c.strip() for c in value.split(";") if c.strip())
                continue
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        forwarded = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{forwarded}, {request.source_ip}" if forwarded else request.source_ip
        headers.setdefault("x-forwarded-port", str(self.port))
        headers.setdefault("x-forwarded-proto", "http")
        headers.setdefault("x-amzn-trace-id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}")
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": request.path,
            "rawQueryString": request.raw_query,
            "headers": headers,
        }
        if cookies:
            event["cookies"] = cookies
        if query:
            event["queryStringParameters"] = query
        if path_params:
            event["pathParameters"] = path_params
        event["requestContext"] = context
        if with_body:
            if request.body:
                if _is_text(headers.get("content-type")):
                    try:
                        event["body"] = request.body.decode("utf-8")
                        event["isBase64Encoded"] = False
                    except UnicodeDecodeError:
                        event["body"] = base64.b64encode(request.body).decode()
                        event["isBase64Encoded"] = True
                else:
                    event["body"] = base64.b64encode(request.body).decode()
                    event["isBase64Encoded"] = True
            else:
                event["isBase64Encoded"] = False
        return event

    def _preflight(self, request: Request) -> Response | None:
        matched = self.match(request.header("access-control-request-method") or "", request.path)
        cors = matched[0].cors if matched else next((r.cors for r in self.routes if r.cors), None)
        if not cors:
            return None
        headers = _with_cors([], cors, request.header("origin"))
        methods = cors.get("AllowMethods") or ["*"]
        headers.append(("access-control-allow-methods", ",".join(methods)))
        allow_headers = cors.get("AllowHeaders")
        if allow_headers:
            headers.append(("access-control-allow-headers", ",".join(allow_headers)))
        if cors.get("MaxAge") is not None:
            headers.append(("access-control-max-age", str(cors["MaxAge"])))
        return Response(204, headers)


def _throttled(function: str) -> Response:
    log.warning("%s: no execution environment free within %d s", function, INTEGRATION_TIMEOUT_SECONDS)
    return Response.json(503, {"message": "Service Unavailable"}, [("retry-after", "1")])


def _with_cors(headers: list[tuple[str, str]], cors: dict[str, Any], origin: str | None) -> list[tuple[str, str]]:
    """API Gateway replaces the integration's CORS headers with the API's configuration."""
    kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
    allowed = cors.get("AllowOrigins") or []
    if origin and ("*" in allowed or origin in allowed):
        kept.append(("access-control-allow-origin", "*" if "*" in allowed and not cors.get("AllowCredentials") else origin))
        if cors.get("AllowCredentials"):
            kept.append(("access-control-allow-credentials", "true"))
        if cors.get("ExposeHeaders"):
            kept.append(("access-control-expose-headers", ",".join(cors["ExposeHeaders"])))
    return kept


def _query_parameters(raw_query: str) -> dict[str, str]:
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    return query


def _is_text(content_type: str | None) -> bool:
    if not content_type:
        return True
    media = content_type.split(";")[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml"))


def _authorizer_verdict(result: Any, simple: bool, route_arn: str) -> tuple[bool, Any]:
    if not isinstance(result, dict):
        raise ValueError("not a JSON object")
    if simple:
        if not isinstance(result.get("isAuthorized"), bool):
            raise ValueError("isAuthorized must be a boolean")
        return result["isAuthorized"], result.get("context")
    statements = ((result.get("policyDocument") or {}).get("Statement")) or []
    if not statements:
        raise ValueError("policyDocument.Statement missing")

    def covers(statement: dict[str, Any]) -> bool:
        resources = statement.get("Resource") or []
        resources = [resources] if isinstance(resources, str) else resources
        return any(fnmatch.fnmatchcase(route_arn, pattern) for pattern in resources)

    effects = [str(s.get("Effect", "")).lower() for s in statements if covers(s)]
    return ("allow" in effects and "deny" not in effects), result.get("context")


def _to_response(result: Any, function: str) -> Response:
    if isinstance(result, dict) and "statusCode" in result:
        try:
            status = int(result["statusCode"])
            headers = [(str(k), _header_value(v)) for k, v in (result.get("headers") or {}).items()]
            for name, values in (result.get("multiValueHeaders") or {}).items():
                headers.extend((str(name), _header_value(v)) for v in values)
            headers.extend(("set-cookie", str(c)) for c in result.get("cookies") or [])
            body = result.get("body")
            if body is None:
                payload = b""
            elif not isinstance(body, str):
                raise ValueError("body must be a string")
            elif result.get("isBase64Encoded"):
                payload = base64.b64decode(body)
            else:
                payload = body.encode("utf-8")
        except (TypeError, ValueError, AttributeError) as exc:
            log.error("%s returned a malformed Lambda proxy response: %s", function, exc)
            return Response.message(500, "Internal Server Error")
        if len(json.dumps(result)) > MAX_LAMBDA_PAYLOAD:
            log.error("%s returned more than Lambda's 6 MB response limit", function)
            return Response.message(500, "Internal Server Error")
        return Response(status, headers, payload)
    body = result if isinstance(result, str) else json.dumps(result)
    return Response(200, [("content-type", "application/json")], body.encode("utf-8"))


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- the HTTP server ------------------------------------------------------------------------------------

# socketserver's default listen backlog is 5: a burst of simultaneous connects overflows it while the
# accepting thread waits for the CPU, and the kernel then resets connections (SYN cookies). The kernel
# caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024
# A connection idle (or stalled mid-request) this long is closed: a keep-alive client that went away
# must not hold a thread for ever. Generous, so that a client reusing a pooled connection rarely
# races the close.
CONNECTION_IDLE_SECONDS = 120
_NO_BODY_STATUSES = (204, 304)


class GatewayServer(ThreadingHTTPServer):
    """One daemon thread per connection (HTTP/1.1 keep-alive). The threads only wait: the work runs in
    the functions' execution environments, bounded per function, where excess invocations queue."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, host: str, port: int, gateway: HttpGateway) -> None:
        self.gateway = gateway
        super().__init__((host, port), _RequestHandler)
        gateway.port = self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is not an error worth a traceback; anything else is logged."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("connection closed by the client: %s", type(error).__name__)
            return
        log.exception("local gateway: connection error")


class _BadRequest(Exception):
    """The request cannot be read (framing); it is answered 400 and the connection closed."""


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = CONNECTION_IDLE_SECONDS
    server: GatewayServer

    def _serve(self) -> None:
        started = time.monotonic()
        self._responded = False
        try:
            target = urlsplit(self.path)
            body = self._read_body()
            if body is None:
                return
            request = Request(
                method=self.command.upper(),
                path=unquote(target.path or "/"),
                raw_query=target.query,
                headers=list(self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
                protocol=self.request_version,
                host=self.headers.get("host", ""),
            )
        except _BadRequest as exc:
            self._send(Response.message(400, f"Bad Request: {exc}"), close=True)
            log.info("%s -> 400 (%s)", self.command, exc)
            return
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client stalled or went away mid-body: nobody to answer
            return
        try:
            response, label = self.server.gateway.handle(request)
        except Exception:  # noqa: BLE001 - a bug in the gateway must not kill the connection thread
            log.exception("local gateway error")
            response, label = Response.message(500, "Internal Server Error"), request.method
        self._send(response)
        log.info("%s -> %d (%d ms)", label, response.status, (time.monotonic() - started) * 1000)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def handle_one_request(self) -> None:
        """http.server's, plus: whatever goes wrong, the client gets an answer or a closed connection,
        never a request left half-read on a connection kept alive."""
        self._responded = False
        self.command = None  # type: ignore[assignment] - set again once the request line is parsed
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - answer 500 if nothing was sent yet, then close
            log.exception("local gateway: request failed")
            self.close_connection = True
            if not self._responded and getattr(self, "command", None):
                try:
                    self._send(Response.message(500, "Internal Server Error"), close=True)
                except OSError:
                    pass

    def handle_expect_100(self) -> bool:
        try:
            too_large = self._declared_length() > MAX_REQUEST_BYTES
        except _BadRequest as exc:
            self._send(Response.message(400, f"Bad Request: {exc}"), close=True)
            return False
        if too_large:
            self._too_large()
            return False
        return super().handle_expect_100()

    def _declared_length(self) -> int:
        values = self.headers.get_all("content-length") or []
        if not values:
            return 0
        if len(set(values)) > 1:
            raise _BadRequest("conflicting Content-Length headers")
        value = values[0].strip()
        if not value.isdigit():
            raise _BadRequest("Content-Length must be a non-negative integer")
        return int(value)

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise _BadRequest("malformed chunk size") from None
                if size < 0:
                    raise _BadRequest("malformed chunk size")
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_REQUEST_BYTES:
                    self._too_large()
                    return None
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise ConnectionResetError("connection closed mid-chunk")
                chunks.append(chunk)
                self.rfile.readline(1024)
        length = self._declared_length()
        if length > MAX_REQUEST_BYTES:
            self._too_large()
            return None
        if length == 0:
            return b""
        body = self.rfile.read(length)
        if len(body) < length:
            raise ConnectionResetError("connection closed mid-body")
        return body

    def _too_large(self) -> None:
        self._send(Response.message(413, "Request Entity Too Large"), close=True)
        log.info("%s -> 413 (body over 10 MB)", self.command)

    def _send(self, response: Response, close: bool = False) -> None:
        """Status, headers, an exact Content-Length and the body. ``close`` (or a client that asked for
        it, or HTTP/1.0 without keep-alive) ends the connection after this response."""
        if close:
            self.close_connection = True
        self._responded = True
        self.send_response_only(response.status)
        self.send_header("Date", self.date_time_string())
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "date", "keep-alive"):
                self.send_header(name, value)
        no_body = response.status in _NO_BODY_STATUSES or response.status < 200
        if not no_body:
            self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.body and not no_body:
            self.wfile.write(response.body)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Silenced: the request line holds the raw path and query; ``_serve`` logs a safe summary."""
