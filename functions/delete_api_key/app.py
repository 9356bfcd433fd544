"""Lambda entry point: delete api key. The route and its logic live in fhir_platform.api.routes.api_keys."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.api_keys import delete_api_key

    app = build_app(delete_api_key)
    handler = lambda_handler(app)
