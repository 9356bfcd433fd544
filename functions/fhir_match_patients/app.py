"""Lambda entry point: fhir match patients. The route and its logic live in fhir_platform.api.routes.fhir_patient_match."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.fhir_patient_match import match_patients

    app = build_app(match_patients)
    handler = lambda_handler(app)
