"""Lambda entry point: list api keys. The route and its logic live in fhir_platform.api.routes.api_keys."""

from fhir_platform.api.resolver import build_app, lambda_handler
from fhir_platform.api.routes.api_keys import list_api_keys

app = build_app(list_api_keys)
handler = lambda_handler(app)
