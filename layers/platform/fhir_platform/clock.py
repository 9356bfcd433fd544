"""The platform's timestamps: UTC, millisecond precision, ``Z`` suffix (``2026-03-01T10:00:00.000Z``).

A module of its own so that code needing only the time (workspaces, import jobs) does not import the
resource write path to get it."""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
