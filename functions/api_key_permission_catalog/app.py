"""Lambda entry point: api key permission catalog. The route and its logic live in fhir_platform.api.routes.api_keys."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.api_keys import get_permission_catalog

    app = build_app(get_permission_catalog)
    handler = lambda_handler(app)
