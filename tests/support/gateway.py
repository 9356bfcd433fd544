"""Drive functions in-process the way API Gateway does: the authorizer first, then the route's
function, with events built from the real samples in ``events/``."""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlencode

from tests.support.template import ROOT, http_routes, load_function


class LambdaContext:
    function_name = "test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 29_000


@cache
def _module(directory: str):
    return load_function(directory)


def sample_event(directory: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / f"{directory}.json").read_text())


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


class Gateway:
    def __init__(self) -> None:
        self.routes = http_routes()

    def route_for(self, method: str, path: str) -> tuple[str, str, dict[str, str]]:
        # as API Gateway: a static segment wins over a {param} (``fhir/r4/metadata`` over ``fhir/r4/{resource_type}``)
        by_specificity = sorted(self.routes.items(), key=lambda r: [int(s.startswith("{")) for s in r[0][1].strip("/").split("/")])
        for (m, template), directory in by_specificity:
            pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"  # static segments literally ($everything)
            match = re.match(pattern, path)
            if m == method and match:
                return directory, template, match.groupdict()
        raise AssertionError(f"no route for {method} {path}")

    def authorize(self, token: str | None) -> dict[str, Any]:
        event = sample_event("authorizer")
        event["headers"] = {k: v for k, v in event["headers"].items() if k != "authorization"}
        if token is not None:
            event["headers"]["authorization"] = f"Bearer {token}"
            event["identitySource"] = [f"Bearer {token}"]
        return _module("authorizer").handler(event, LambdaContext())

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None,
        body: Any = None,
        raw_body: str | bytes | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        directory, template, params = self.route_for(method, path)
        event = copy.deepcopy(sample_event(directory))
        event["rawPath"] = path
        event["requestContext"]["http"]["path"] = path
        event["pathParameters"] = params
        event["queryStringParameters"] = query
        event["rawQueryString"] = urlencode(query or {})
        event["headers"] = {k: v for k, v in event["headers"].items() if k not in ("authorization", "if-match")}
        event["headers"].update({k.lower(): v for k, v in (headers or {}).items()})
        event["body"] = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
        if isinstance(raw_body, bytes):  # as API Gateway delivers a body that is not UTF-8 text
            event["body"], event["isBase64Encoded"] = base64.b64encode(raw_body).decode(), True
        if not _module(directory).handler.public:  # Auth: Authorizer: NONE (health, the OpenAPI document) skips the authorizer
            if token is None:  # the identity source is missing: API Gateway answers without the authorizer
                return Reply(401, {"message": "Unauthorized"}, {})
            decision = self.authorize(token)
            if not decision["isAuthorized"]:
                return Reply(403, {"message": "Forbidden"}, {})
            event["requestContext"]["authorizer"] = {"lambda": decision["context"]}
        result = _module(directory).handler(event, LambdaContext())
        text = result.get("body") or ""
        headers = result.get("headers") or {}
        media = next((v for k, v in headers.items() if k.lower() == "content-type"), "application/json")
        return Reply(result["statusCode"], (json.loads(text) if "json" in media else text) if text else None, headers)
