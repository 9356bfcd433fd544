"""Lambda entry point: list api keys. The route and its logic live in fhir_platform.api.routes.api_keys."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.api_keys import list_api_keys

    app = build_app(list_api_keys)
    handler = lambda_handler(app)
