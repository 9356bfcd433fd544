"""API key use cases: create (shown once), list, delete, rotate, and the permission catalog."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fhir_platform.auth import permissions as perms
from fhir_platform.auth.credentials import hash_key, new_api_key, new_key_id
from fhir_platform.auth.principal import Principal
from fhir_platform.errors import Forbidden, Unprocessable
from fhir_platform.storage.api_keys import ApiKeyRepository


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")


class ApiKeyService:
    def __init__(self, repo: ApiKeyRepository | None = None) -> None:
        self.repo = repo or ApiKeyRepository()

    def create(
        self, workspace_id: str, caller: Principal, *, name: str | None, role: str, permissions: list[str] | None, duration_days: int
    ) -> dict[str, Any]:
        try:
            granted = perms.resolve_permissions(role, permissions)
        except ValueError as exc:
            raise Unprocessable(str(exc), details=[{"loc": ["body", "role" if "role" in str(exc).lower()[:12] else "permissions"], "msg": str(exc), "type": "value_error"}]) from None
        if not caller.is_admin and not set(granted) <= set(caller.permissions):
            raise Forbidden("The requested role or permissions exceed the caller's own access")
        now = datetime.now(UTC)
        expires = now + timedelta(days=duration_days)
        api_key = new_api_key()
        meta = {
            "id": str(uuid.uuid4()),
            "workspace_id": workspace_id,
            "key_id": new_key_id(),
            "name": name,
            "role": role,
            "permissions": list(granted),
            "expires_at": _iso(expires),
            "last_used_at": None,
            "created_at": _iso(now),
            "updated_at": _iso(now),
            "created_by_entity_id": None,
            "created_by_credential_id": None,
            "created_by_key_id": caller.key_id,
        }
        self.repo.create(meta, hash_key(api_key), int(expires.timestamp()))
        return {**meta, "api_key": api_key}

    def list(self, workspace_id: str, caller: Principal, *, mine_only: bool, limit: int, offset: int) -> tuple[list[dict[str, Any]], bool]:
        items, has_more = self.repo.list(workspace_id, limit, offset)
        if mine_only:
            items = [i for i in items if i.get("created_by_key_id") == caller.key_id]
        return items, has_more

    def delete(self, workspace_id: str, key_id: str) -> None:
        self.repo.delete(workspace_id, key_id)

    def rotate(self, workspace_id: str, key_id: str, duration_days: int) -> dict[str, Any]:
        now = datetime.now(UTC)
        expires = now + timedelta(days=duration_days)
        api_key = new_api_key()
        updated = self.repo.rotate(
            workspace_id, key_id, hash_key(api_key), {"expires_at": _iso(expires), "updated_at": _iso(now)}, int(expires.timestamp())
        )
        return {**updated, "api_key": api_key}


def permission_catalog() -> dict[str, Any]:
    return {
        "roles": [
            {"name": r.name, "priority": r.priority, "description": r.description, "permission_names": list(r.permissions)}
            for r in perms.ROLES.values()
        ],
        "permissions": [{"name": n, "namespace": ns, "action": a} for n, (ns, a) in perms.PERMISSIONS.items()],
    }
