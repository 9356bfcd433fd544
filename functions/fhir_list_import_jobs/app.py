"""Lambda entry point: fhir list import jobs. The route and its logic live in fhir_platform.api.routes.fhir_import."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.fhir_import import list_import_jobs

    app = build_app(list_import_jobs)
    handler = lambda_handler(app)
