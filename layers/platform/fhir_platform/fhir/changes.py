"""Content hashing and field-level change detection between two versions of a resource.

``fields_affected`` are dot paths with list indexes (``name.0.given``, ``telecom.1``): objects are
compared key by key, lists of objects index by index, and a primitive or a list of primitives is
one field (so ``given: ["A"] → ["B"]`` reports ``name.0.given``). Added and removed elements are
reported at the path where they appear or disappear. Server-maintained ``meta.versionId`` and
``meta.lastUpdated`` never count as changes, and neither do they enter the content hash, so an
identical re-upload hashes the same.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

_SERVER_META = ("versionId", "lastUpdated")
# json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False), built once (json.dumps builds
# an encoder per call with these options); parsed JSON has no cycles to check for
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False)


def without_server_meta(data: dict[str, Any]) -> dict[str, Any]:
    meta = data.get("meta")
    if not isinstance(meta, dict) or not any(k in meta for k in _SERVER_META):
        return data
    trimmed = {k: v for k, v in meta.items() if k not in _SERVER_META}
    out = {k: v for k, v in data.items() if k != "meta"}
    if trimmed:
        out["meta"] = trimmed
    return out


def content_hash(data: dict[str, Any]) -> str:
    canonical = _CANONICAL.encode(without_server_meta(data))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def fields_affected(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """Dot paths that differ between ``previous`` and ``current`` (all top-level fields on create)."""
    before = without_server_meta(previous or {})
    after = without_server_meta(current)
    if previous is None:
        return sorted(k for k in after if k != "resourceType")
    out: list[str] = []
    _diff(before, after, "", out)
    return out


def _is_composite_list(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            sub = f"{path}.{key}" if path else key
            if key not in a or key not in b:
                out.append(sub)
            else:
                _diff(a[key], b[key], sub, out)
    elif _is_composite_list(a) or _is_composite_list(b):
        if not isinstance(a, list) or not isinstance(b, list):
            out.append(path)
            return
        for i in range(max(len(a), len(b))):
            sub = f"{path}.{i}"
            if i >= len(a) or i >= len(b):
                out.append(sub)
            else:
                _diff(a[i], b[i], sub, out)
    elif a != b:
        out.append(path)
