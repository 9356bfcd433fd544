"""Path parameters shared by the routers (the platform's resources routes and the FHIR facade), so a
router takes them without importing another router's module, its models and its routes."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

ResourceType = Annotated[str, Path(max_length=64)]
ResourceId = Annotated[str, Path(max_length=128)]
