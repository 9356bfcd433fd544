"""Lambda entry point: Swagger UI over the OpenAPI document. The route lives in
fhir_platform.api.routes.openapi."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.openapi import api_docs

    app = build_app(api_docs)
    handler = lambda_handler(app, public=True)  # Auth: Authorizer: NONE in template.yaml
