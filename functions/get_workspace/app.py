"""Lambda entry point: get workspace. The route and its logic live in fhir_platform.api.routes.workspaces."""

from fhir_platform import coldstart

with coldstart.init():  # the GC paused while the function loads, what it built frozen (fhir_platform/coldstart.py)
    from fhir_platform.api.resolver import build_app, lambda_handler
    from fhir_platform.api.routes.workspaces import get_workspace

    app = build_app(get_workspace)
    handler = lambda_handler(app)
