"""Issue 13: a 429 (or 503) the platform itself answers carries ``Retry-After``. No route answers one
today; the shared handler adds the header to any that does, so a future one cannot forget it."""

from __future__ import annotations

import json
from pathlib import Path

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform.api.resolver import build_app, lambda_handler, open_query
from tests.support.gateway import LambdaContext

EVENT = json.loads((Path(__file__).resolve().parents[3] / "events" / "health.json").read_text())

router = APIGatewayHttpRouter()


@router.get("/health")
@open_query  # reads its own query parameters
def busy():
    status = int(router.current_event.get_query_string_value("status", "429"))
    own = router.current_event.get_query_string_value("own")
    return Response(status_code=status, content_type="application/json", body="{}", headers={"Retry-After": own} if own else {})


handler = lambda_handler(build_app(router), public=True)


def call(**query: str) -> dict:
    return handler({**EVENT, "queryStringParameters": query, "rawQueryString": "&".join(f"{k}={v}" for k, v in query.items())}, LambdaContext())


def test_a_429_or_503_gets_retry_after() -> None:
    for status in ("429", "503"):
        response = call(status=status)
        assert response["statusCode"] == int(status) and response["headers"]["Retry-After"] == "1", response


def test_a_routes_own_retry_after_is_kept_and_other_statuses_get_none() -> None:
    assert call(status="429", own="30")["headers"]["Retry-After"] == "30"
    assert "Retry-After" not in (call(status="409")["headers"] or {})
