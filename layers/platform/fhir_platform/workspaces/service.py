"""Workspaces: one customer organisation, its EHR connection settings and the FHIR gate.

Connector secrets are never accepted inline: the request names a Secrets Manager ARN
(``client_secret_arn`` / ``private_key_secret_arn``), and responses carry only those references.
"""

from __future__ import annotations

import os
import uuid
from decimal import Decimal
from typing import Any

from fhir_platform.errors import FhirNotConfigured, Unprocessable
from fhir_platform.clock import now_iso
from fhir_platform.storage.workspaces import WorkspaceRepository

# what every stored workspace has (a read answers them), and what an update may not change at all
REQUIRED = ("name", "environment", "region")
IMMUTABLE = ("id", "slug", "created_at", "provisioned_at", "updated_at")


class WorkspaceService:
    def __init__(self, repo: WorkspaceRepository | None = None) -> None:
        self.repo = repo or WorkspaceRepository()

    def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        now = now_iso()
        workspace = {
            "id": str(uuid.uuid4()),
            "environment": "production",
            "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            "backend_org_id": None,
            "provisioned_at": now,
            "created_at": now,
            "updated_at": now,
            **{k: v for k, v in fields.items() if v is not None},
        }
        workspace["connector_type"] = workspace.get("ehr_type")
        return self.repo.create(workspace)

    def get(self, workspace_id: str) -> dict[str, Any]:
        return self.repo.get(workspace_id)

    def update(self, workspace_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply ``changes``; a value of ``None`` removes an optional setting. Refused (422, nothing
        written): removing or blanking a required field, or touching an immutable one."""
        problems = [
            {"loc": ["body", k], "msg": "cannot be changed", "type": "immutable"} for k in changes if k in IMMUTABLE
        ] + [
            {"loc": ["body", k], "msg": "is required and cannot be removed", "type": "missing"}
            for k in REQUIRED
            if k in changes and (changes[k] is None or not str(changes[k]).strip())
        ]
        if problems:
            where = ", ".join(p["loc"][-1] for p in problems)
            raise Unprocessable(f"Workspace update refused: {where}", details=problems)
        changes = dict(changes)
        if "connector_type" in changes and "ehr_type" not in changes:
            changes["ehr_type"] = changes["connector_type"]
        if "ehr_type" in changes:
            changes["connector_type"] = changes["ehr_type"]
        if changes.get("world_thresholds") is not None:  # stored as a map of Decimals, unset fields left out
            changes["world_thresholds"] = {
                k: Decimal(str(v)) if isinstance(v, float) else v for k, v in changes["world_thresholds"].items() if v is not None
            } or None
        if changes:
            changes["updated_at"] = now_iso()
        return self.repo.update(workspace_id, changes)

    def list(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], bool]:
        return self.repo.list(limit, offset)

    def require_fhir(self, workspace_id: str) -> dict[str, Any]:
        """The FHIR gate: FHIR endpoints answer only for workspaces with an EHR type and store URL."""
        workspace = self.get(workspace_id)
        if not is_fhir_configured(workspace):
            raise FhirNotConfigured(
                "FHIR is not configured for this workspace: set ehr_type and fhir_store_url "
                f"(PATCH /v1/workspaces/{workspace_id}) first"
            )
        return workspace


def is_fhir_configured(workspace: dict[str, Any]) -> bool:
    return bool(workspace.get("ehr_type") and workspace.get("fhir_store_url"))

