"""Lambda entry point: fhir create resource. The route and its logic live in fhir_platform.api.routes.fhir_resources."""

import fhir_platform.search.indexing  # noqa: F401 - every request writes (indexes) resources: loaded at init, not deferred
from fhir_platform.api.resolver import build_app, lambda_handler
from fhir_platform.api.routes.fhir_resources import create_resource

app = build_app(create_resource)
handler = lambda_handler(app)
