"""GET /v1/openapi.json — the API's OpenAPI 3.1 document; GET /v1/docs — Swagger UI over it.

Both public (``Authorizer: NONE``): the document describes the API, it holds no data. It is built
from the routers on the first request of an execution environment and kept
(:mod:`fhir_platform.api.openapi`); the Swagger UI page inlines the document and Swagger UI's own
script and style sheet, which Powertools ships (no CDN, works offline).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from fhir_platform.api.openapi import PUBLIC, document_json

openapi_document = APIGatewayHttpRouter()
api_docs = APIGatewayHttpRouter()

_CACHE = {"Cache-Control": "public, max-age=300"}


@openapi_document.get("/v1/openapi.json", include_in_schema=False, security=PUBLIC)
def get_openapi_document():
    return Response(status_code=200, content_type="application/json", body=document_json(), headers=_CACHE)


@cache
def _swagger_page() -> str:
    import aws_lambda_powertools.event_handler as event_handler
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    assets = Path(event_handler.__file__).parent / "openapi" / "swagger_ui"
    spec = document_json().replace("</", "<\\/")  # inlined in a <script>
    return generate_swagger_html(
        spec,
        (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (assets / "swagger-ui.min.css").read_text(encoding="utf-8"),
        swagger_base_url="",
        oauth2_config=None,
        persist_authorization=False,
    )


@api_docs.get("/v1/docs", include_in_schema=False, security=PUBLIC)
def get_api_docs(format: Annotated[Literal["json", "oauth2-redirect"] | None, Query()] = None):  # noqa: A002 - Swagger UI's name
    """The page; ``?format=json`` is the document (the URL Swagger UI shows in its top bar), and
    ``?format=oauth2-redirect`` the page Swagger UI's OAuth2 flow returns to."""
    if format == "json":
        return get_openapi_document()
    if format == "oauth2-redirect":
        from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_oauth2_redirect_html

        return Response(status_code=200, content_type="text/html; charset=utf-8", body=generate_oauth2_redirect_html())
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=_swagger_page(), headers=_CACHE)
