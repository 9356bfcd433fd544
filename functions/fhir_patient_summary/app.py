"""Lambda entry point: fhir patient summary. The route and its logic live in fhir_platform.api.routes.fhir_patient_record."""

from fhir_platform.api.resolver import build_app, lambda_handler
from fhir_platform.api.routes.fhir_patient_record import patient_summary_router

app = build_app(patient_summary_router)
handler = lambda_handler(app)
