"""Lambda entry point: list workspaces. The route and its logic live in fhir_platform.api.routes.workspaces."""

from fhir_platform.api.resolver import build_app, lambda_handler
from fhir_platform.api.routes.workspaces import list_workspaces

app = build_app(list_workspaces)
handler = lambda_handler(app)
