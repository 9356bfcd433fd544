"""Roles and permissions: the one authoritative role → permission model.

A key carries a role and an explicit permission list (a subset of what its role grants). Routes
require one permission; the admin credential (platform operator) holds every permission in every
workspace.
"""

from __future__ import annotations

from dataclasses import dataclass

READ = "read"
WRITE = "write"
IMPORT = "import"
ADMIN = "admin"

PERMISSIONS: dict[str, tuple[str, str]] = {
    # name: (namespace, action)
    READ: ("fhir", "read"),
    WRITE: ("fhir", "write"),
    IMPORT: ("fhir", "import"),
    ADMIN: ("workspace", "admin"),
}


@dataclass(frozen=True)
class Role:
    name: str
    priority: int
    description: str
    permissions: tuple[str, ...]


ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role("viewer", 10, "Read clinical data.", (READ,)),
        Role("member", 20, "Read and write clinical data.", (READ, WRITE)),
        Role("importer", 30, "Read, write and bulk-import clinical data.", (READ, WRITE, IMPORT)),
        Role("admin", 40, "Everything in the workspace, including API keys and settings.", (READ, WRITE, IMPORT, ADMIN)),
    )
}

DEFAULT_ROLE = "member"


def resolve_permissions(role: str, requested: list[str] | None) -> tuple[str, ...]:
    """Permissions a new key gets: the role's own when none are requested, else the requested ones,
    each of which must be known and granted by the role. Raises ValueError naming the offender."""
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}; expected one of {sorted(ROLES)}")
    granted = ROLES[role].permissions
    if not requested:
        return granted
    for name in requested:
        if name not in PERMISSIONS:
            raise ValueError(f"Unknown permission {name!r}; expected some of {sorted(PERMISSIONS)}")
        if name not in granted:
            raise ValueError(f"Role {role!r} does not grant permission {name!r}")
    return tuple(dict.fromkeys(requested))
