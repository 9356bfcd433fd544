"""Lambda entry point: fhir status. The route and its logic live in fhir_platform.api.routes.fhir_status."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.fhir_status import fhir_status

    app = build_app(fhir_status)
    handler = lambda_handler(app)
