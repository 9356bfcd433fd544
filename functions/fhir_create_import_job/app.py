"""Lambda entry point: fhir create import job. The route and its logic live in fhir_platform.api.routes.fhir_import."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.fhir_import import create_import_job

    app = build_app(create_import_job)
    handler = lambda_handler(app)
