"""Lambda entry point: fhir resource history. The route and its logic live in fhir_platform.api.routes.fhir_resources."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.fhir_resources import resource_history

    app = build_app(resource_history)
    handler = lambda_handler(app)
