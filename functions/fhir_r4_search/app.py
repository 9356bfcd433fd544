"""Lambda entry point: fhir r4 search. The route and its logic live in fhir_platform.api.routes.fhir_r4."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.fhir_rest import build_fhir_app, fhir_handler
    from fhir_platform.api.routes.fhir_r4 import search

    app = build_fhir_app(search)
    handler = fhir_handler(app)
