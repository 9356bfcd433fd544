"""Lambda entry point: trigger data source sync. The route and its logic live in fhir_platform.api.routes.data_sources."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.data_sources import trigger_data_source_sync

    app = build_app(trigger_data_source_sync)
    handler = lambda_handler(app)
