"""API keys: create, rotate, list, and the permission catalog."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import Field, StringConstraints

from fhir_platform.api.models.common import BaseModel, NameString, Strict


class CreateApiKeyRequest(Strict):
    example: ClassVar[dict[str, Any] | None] = {
        "name": "nightly-sync",
        "duration_days": 30,
        "role": "member",
        "permissions": ["read", "write"],
    }

    name: NameString | None = None
    duration_days: Annotated[int, Field(ge=1, le=90)]
    role: Annotated[str, StringConstraints(max_length=64)] = "member"
    permissions: Annotated[list[Annotated[str, StringConstraints(max_length=128)]], Field(max_length=128)] = Field(
        default_factory=list
    )


class RotateApiKeyRequest(Strict):
    example: ClassVar[dict[str, Any] | None] = {"duration_days": 30}

    duration_days: Annotated[int, Field(ge=1, le=90)]


class CreateApiKeyResponse(BaseModel):
    key_id: str
    api_key: str
    name: str | None
    role: str
    permissions: list[str]
    expires_at: str
    created_by_entity_id: UUID | None = None
    created_by_credential_id: UUID | None = None


class ApiKeyResponse(BaseModel):
    id: UUID
    workspace_id: UUID
    created_by_entity_id: UUID | None = None
    created_by_credential_id: UUID | None = None
    key_id: str
    name: str | None
    role: str
    permissions: list[str]
    expires_at: str
    last_used_at: str | None = None
    created_at: str
    updated_at: str


class ApiKeyPage(BaseModel):
    items: list[ApiKeyResponse]
    has_more: bool
    continuation_token: int | None = None
    total: int | None = None


class RoleEntry(BaseModel):
    name: str
    priority: int
    description: str
    permission_names: list[str]


class PermissionEntry(BaseModel):
    name: str
    namespace: str
    action: str


class PermissionCatalogResponse(BaseModel):
    roles: list[RoleEntry]
    permissions: list[PermissionEntry]
