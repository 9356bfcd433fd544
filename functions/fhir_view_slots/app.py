"""Lambda entry point: fhir view slots. The route and its logic live in fhir_platform.api.routes.fhir_views."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.fhir_views import slots_view

    app = build_app(slots_view)
    handler = lambda_handler(app)
