"""Lambda entry point: entity candidates list. The route and its logic live in fhir_platform.api.routes.entities."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.entities import list_entity_candidates

    app = build_app(list_entity_candidates)
    handler = lambda_handler(app)
