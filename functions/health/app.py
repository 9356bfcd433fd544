"""Lambda entry point: health. The route and its logic live in fhir_platform.api.routes.health."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.health import health

    app = build_app(health)
    handler = lambda_handler(app, public=True)  # Auth: Authorizer: NONE in template.yaml
