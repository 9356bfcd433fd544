"""Lambda entry point: fhir get import job. The route and its logic live in fhir_platform.api.routes.fhir_import."""

from fhir_platform.api.resolver import build_app, lambda_handler
from fhir_platform.api.routes.fhir_import import get_import_job

app = build_app(get_import_job)
handler = lambda_handler(app)
