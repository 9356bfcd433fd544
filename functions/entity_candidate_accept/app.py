"""Lambda entry point: entity candidate accept. The route and its logic live in fhir_platform.api.routes.entities."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.entities import accept_entity_candidate

    app = build_app(accept_entity_candidate)
    handler = lambda_handler(app)
