"""Lambda entry point: entity merge. The route and its logic live in fhir_platform.api.routes.entities."""

from fhir_platform.api.resolver import build_app, lambda_handler
from fhir_platform.api.routes.entities import merge_entity

app = build_app(merge_entity)
handler = lambda_handler(app)
