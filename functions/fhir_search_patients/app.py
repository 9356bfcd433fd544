"""Lambda entry point: fhir search patients. The route and its logic live in fhir_platform.api.routes.fhir_search."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.fhir_search import patient_search

    app = build_app(patient_search)
    handler = lambda_handler(app)
