"""Lambda entry point: fhir create resource. The route and its logic live in fhir_platform.api.routes.fhir_resources."""

from fhir_platform.api.resolver import build_app, lambda_handler
from fhir_platform.api.routes.fhir_resources import create_resource

app = build_app(create_resource)
handler = lambda_handler(app)
