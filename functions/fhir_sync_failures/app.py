"""Lambda entry point: fhir sync failures. The route and its logic live in fhir_platform.api.routes.sync_failures."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.sync_failures import sync_failures

    app = build_app(sync_failures)
    handler = lambda_handler(app)
