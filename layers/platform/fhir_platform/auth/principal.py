"""Who is calling: produced by the authorizer, carried to functions in the request context.

``require`` is where the tenancy rule lives: a workspace key reaches only its own workspace,
and only with a permission it holds; the platform admin credential reaches every workspace.

A request whose ``Authorization`` header holds no valid credential (unknown, expired or revoked
key, or not ``Bearer <key>``) is let through by the authorizer *unauthenticated* (context
``kind=unauthenticated``, no workspace, no permissions) so that the function can answer 401 with
the platform's JSON error body; ``Principal.from_context`` turns that context into
:class:`Unauthorized` (API Gateway's simple-response authorizer could only answer 403).
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_platform.errors import Forbidden, Unauthorized

UNAUTHENTICATED = "unauthenticated"
INVALID_KEY = "invalid_key"  # no such key: unknown, expired, revoked or rotated away
MALFORMED = "malformed"  # the header is not ``Bearer <token>``
MISSING = "missing_credentials"  # no authorizer context at all
_REASONS = {
    INVALID_KEY: "The API key is not valid: it is unknown, expired or revoked",
    MALFORMED: "The Authorization header must be 'Bearer <API key>'",
    MISSING: "An API key is required: send 'Authorization: Bearer <API key>'",
}


def unauthenticated_context(reason: str) -> dict[str, str]:
    """The authorizer's context for a request with a credential that identifies nobody."""
    return {"kind": UNAUTHENTICATED, "reason": reason, "workspace_id": "", "key_id": "", "role": "", "permissions": ""}


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
        """The authenticated caller; :class:`Unauthorized` (401) for anyone else."""
        if not ctx or ctx.get("kind") not in ("admin", "key"):
            reason = (ctx or {}).get("reason")
            reason = reason if isinstance(reason, str) and reason in _REASONS else MISSING
            message = _REASONS[reason]
            raise Unauthorized(message, details=[{"loc": ["header", "authorization"], "msg": message, "type": reason}])
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
