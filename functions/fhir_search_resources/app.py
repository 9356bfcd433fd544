"""Lambda entry point: fhir search resources. The route and its logic live in fhir_platform.api.routes.fhir_search."""

from fhir_platform.api.resolver import build_app, lambda_handler
from fhir_platform.api.routes.fhir_search import resource_search

app = build_app(resource_search)
handler = lambda_handler(app)
