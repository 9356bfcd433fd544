"""Lambda entry point: fhir import. The route and its logic live in fhir_platform.api.routes.fhir_import."""

import fhir_platform.search.indexing  # noqa: F401 - every request writes (indexes) resources: loaded at init, not deferred
from fhir_platform.api.resolver import build_app, lambda_handler
from fhir_platform.api.routes.fhir_import import import_bundle

app = build_app(import_bundle)
handler = lambda_handler(app)
