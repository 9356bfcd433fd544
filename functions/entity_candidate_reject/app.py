"""Lambda entry point: entity candidate reject. The route and its logic live in fhir_platform.api.routes.entities."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.entities import reject_entity_candidate

    app = build_app(reject_entity_candidate)
    handler = lambda_handler(app)
