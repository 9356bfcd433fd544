"""Lambda entry point: entity merge. The route and its logic live in fhir_platform.api.routes.entities."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.entities import merge_entity

    app = build_app(merge_entity)
    handler = lambda_handler(app)
