"""Lambda entry point: update data source. The route and its logic live in fhir_platform.api.routes.data_sources."""

from fhir_platform.api.resolver import build_app, lambda_handler
from fhir_platform.api.routes.data_sources import update_data_source

app = build_app(update_data_source)
handler = lambda_handler(app)
