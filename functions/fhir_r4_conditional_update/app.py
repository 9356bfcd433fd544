"""Lambda entry point: fhir r4 conditional update. The route and its logic live in fhir_platform.api.routes.fhir_r4."""

from fhir_platform.api.fhir_rest import fhir_handler
from fhir_platform.api.resolver import build_app
from fhir_platform.api.routes.fhir_r4 import conditional_update

app = build_app(conditional_update)
handler = fhir_handler(app)
