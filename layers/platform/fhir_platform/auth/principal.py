"""Who is calling: produced by the authorizer, carried to functions in the request context.

``access.require`` is where the tenancy rule lives: a workspace key reaches only its own workspace,
and only with a permission it holds; the platform admin credential reaches every workspace.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_platform.errors import Forbidden, Unauthorized


@dataclass(frozen=True)
class Principal:
    kind: str  # "admin" (platform operator) or "key" (workspace API key)
    workspace_id: str | None = None
    key_id: str | None = None
    role: str | None = None
    permissions: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    def to_context(self) -> dict[str, str]:
        """Flat string map for the HTTP API authorizer's simple-response context."""
        return {
            "kind": self.kind,
            "workspace_id": self.workspace_id or "",
            "key_id": self.key_id or "",
            "role": self.role or "",
            "permissions": ",".join(self.permissions),
        }

    @classmethod
    def from_context(cls, ctx: dict | None) -> "Principal":
        if not ctx or ctx.get("kind") not in ("admin", "key"):
            raise Unauthorized("Missing or invalid API key")
        return cls(
            kind=ctx["kind"],
            workspace_id=ctx.get("workspace_id") or None,
            key_id=ctx.get("key_id") or None,
            role=ctx.get("role") or None,
            permissions=tuple(p for p in str(ctx.get("permissions", "")).split(",") if p),
        )


def require(principal: Principal, workspace_id: str | None, permission: str | None = None) -> None:
    """Raise Forbidden unless ``principal`` may act on ``workspace_id`` with ``permission``.

    ``workspace_id=None`` means a platform-level action (creating workspaces): admin only.
    """
    if principal.is_admin:
        return
    if workspace_id is None:
        raise Forbidden("This action requires the platform admin credential")
    if principal.workspace_id != workspace_id:
        raise Forbidden("This API key is scoped to another workspace")
    if permission and permission not in principal.permissions:
        raise Forbidden(f"This API key lacks the {permission!r} permission")
