"""Lambda entry point: fhir patient timeline. The route and its logic live in fhir_platform.api.routes.fhir_patient_record."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.fhir_patient_record import patient_timeline

    app = build_app(patient_timeline)
    handler = lambda_handler(app)
