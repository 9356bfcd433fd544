"""Lambda entry point: data source sync history. The route and its logic live in fhir_platform.api.routes.data_sources."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.data_sources import data_source_sync_history

    app = build_app(data_source_sync_history)
    handler = lambda_handler(app)
