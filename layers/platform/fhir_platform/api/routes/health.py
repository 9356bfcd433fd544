"""GET /health — liveness without auth (local stack readiness, load balancers)."""

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

health = APIGatewayHttpRouter()


@health.get("/health")
def get_health() -> dict:
    return {"status": "ok"}
