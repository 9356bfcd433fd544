"""Workspaces: ``/v1/workspaces`` bodies, and the EHR connector auth settings (references only)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from fhir_platform.api.models.common import BaseModel, NameString, Strict

ConnectorType = Literal["epic", "cerner", "allscripts", "fhir_store", "athenahealth", "charmhealth", "eclinicalworks", "meditab"]
Environment = Literal["production", "staging", "development"]
Region = Literal["us-east-1", "ap-southeast-2", "eu-central-1", "ca-central-1"]
SecretArn = Annotated[str, StringConstraints(pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$")]
HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https://[^\s/$.?#].[^\s]*$", max_length=2048)]


class ConnectorAuthSettings(BaseModel):
    """EHR connector auth settings (addition). Secrets by reference only: a Secrets Manager ARN.
    As stored and answered; :class:`ConnectorAuth` is the same as a request field."""

    auth_type: Literal["smart_backend_services", "client_credentials", "none"] = "smart_backend_services"
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    token_url: HttpsUrl | None = None
    scopes: list[Annotated[str, StringConstraints(max_length=256)]] = Field(default_factory=list, max_length=64)
    private_key_secret_arn: SecretArn | None = None
    client_secret_arn: SecretArn | None = None


class ConnectorAuth(Strict, ConnectorAuthSettings):
    """``connector_auth`` in a request: the settings above, no unknown fields, no ``null``."""


class CreateWorkspaceRequest(Strict):
    """``POST /v1/workspaces`` (addition: the public API provisions workspaces out of band)."""

    example: ClassVar[dict[str, Any] | None] = {
        "name": "Riverside Clinic",
        "slug": "riverside-clinic",
        "environment": "production",
        "ehr_type": "epic",
        "fhir_store_url": "https://ehr.example.org/fhir/R4",
        "connector_auth": {
            "auth_type": "smart_backend_services",
            "client_id": "riverside-app",
            "token_url": "https://ehr.example.org/oauth2/token",
            "scopes": ["system/*.read"],
            "private_key_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:epic/private-key-AbCdEf",
        },
    }

    name: NameString
    slug: Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")]
    environment: Environment = "production"
    ehr_type: ConnectorType | None = None
    fhir_store_url: HttpsUrl | None = None
    connector_auth: ConnectorAuth | None = None


class WorldThresholds(Strict):
    """World-model decision thresholds of a workspace (docs/entities.md); unset fields keep the
    defaults (link 0.95, review 0.50, identity guard on)."""

    link: float | None = Field(None, ge=0.0, le=1.0, description="Match probability at or above which a record is linked")
    review: float | None = Field(None, ge=0.0, le=1.0, description="Match probability at or above which a match candidate is opened")
    identity_guard: bool | None = Field(None, description="Cap probabilistic links whose given names or birth dates differ at review")

    @model_validator(mode="after")
    def _ordered(self) -> "WorldThresholds":
        link = 0.95 if self.link is None else self.link
        review = 0.50 if self.review is None else self.review
        if review > link:
            raise PydanticCustomError("thresholds_order", "review must not exceed link")
        return self


class UpdateWorkspaceRequest(Strict):
    example: ClassVar[dict[str, Any] | None] = {
        "name": "Riverside Clinic",
        "environment": "staging",
        "connector_type": "cerner",
        "fhir_store_url": "https://ehr.example.org/fhir/R4",
        "connector_auth": {
            "auth_type": "client_credentials",
            "client_id": "riverside-app",
            "token_url": "https://ehr.example.org/oauth2/token",
            "client_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:cerner/client-secret-AbCdEf",
        },
    }

    name: Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)] | None = None  # bound as on create
    environment: Environment | None = None
    region: Region | None = None
    connector_type: ConnectorType | None = None
    ehr_type: ConnectorType | None = None  # addition: alias of connector_type
    fhir_store_url: HttpsUrl | None = None  # addition
    connector_auth: ConnectorAuth | None = None  # addition
    world_thresholds: WorldThresholds | None = None  # addition: entity resolution thresholds


class WorkspaceResponse(BaseModel):
    id: UUID
    slug: str
    name: str
    environment: str
    backend_org_id: str | None = None
    region: str
    connector_type: str | None = None
    provisioned_at: str | None = None
    created_at: str
    updated_at: str
    ehr_type: str | None = None  # addition
    fhir_store_url: str | None = None  # addition
    connector_auth: ConnectorAuthSettings | None = None  # addition (references only)
    fhir_configured: bool = False  # addition
    world_thresholds: dict[str, Any] | None = None  # addition: the workspace's overrides, when set


class WorkspacePage(BaseModel):
    items: list[WorkspaceResponse]
    has_more: bool
    continuation_token: int | None = None
    total: int | None = None
