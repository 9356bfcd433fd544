"""Lambda entry point: fhir r4 search by POST (form body). The route and its logic live in fhir_platform.api.routes.fhir_r4."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.fhir_rest import build_fhir_app, form_search_handler
    from fhir_platform.api.routes.fhir_r4 import search_post

    app = build_fhir_app(search_post)
    handler = form_search_handler(app)
