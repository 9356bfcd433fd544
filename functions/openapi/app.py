"""Lambda entry point: the OpenAPI document. The route lives in fhir_platform.api.routes.openapi;
the document is built on the first request (fhir_platform.api.openapi), not at import."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.openapi import openapi_document

    app = build_app(openapi_document)
    handler = lambda_handler(app, public=True)  # Auth: Authorizer: NONE in template.yaml
