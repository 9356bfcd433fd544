"""GET /health — liveness without auth (local stack readiness, load balancers)."""

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform.api.openapi import PUBLIC

health = APIGatewayHttpRouter()


@health.get("/health", security=PUBLIC)
def get_health() -> dict:
    return {"status": "ok"}
