"""Lambda entry point: entity history. The route and its logic live in fhir_platform.api.routes.entities."""

from fhir_platform.api.resolver import build_app, lambda_handler
from fhir_platform.api.routes.entities import entity_history

app = build_app(entity_history)
handler = lambda_handler(app)
