"""Lambda entry point: entity candidates list. The route and its logic live in fhir_platform.api.routes.entities."""

from fhir_platform.api.resolver import build_app, lambda_handler
from fhir_platform.api.routes.entities import list_entity_candidates

app = build_app(list_entity_candidates)
handler = lambda_handler(app)
