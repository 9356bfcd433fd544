"""Lambda entry point: list data sources. The route and its logic live in fhir_platform.api.routes.data_sources."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.data_sources import list_data_sources

    app = build_app(list_data_sources)
    handler = lambda_handler(app)
