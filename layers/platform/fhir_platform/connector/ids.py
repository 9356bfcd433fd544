"""Literal references between the platform's ids and an EHR's (docs/connector.md, Outbound).

A resource the platform created and wrote to an EHR has the EHR's id there. Resources referring to
it (``{"reference": "Patient/{id}"}``) are rewritten on the way out (platform id → EHR id) and on
the way in (EHR id → platform id), so each side's references resolve on that side and a round trip
hashes the same. Only relative literal references ``Type/id`` are rewritten (not absolute URLs,
``#contained`` or ``urn:`` references, which are the same on both sides or not resolvable here).
"""

from __future__ import annotations

import re
from typing import Any

_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")

Ref = tuple[str, str]  # (type, id)


def references(data: Any) -> set[Ref]:
    """The ``Type/id`` literal references anywhere in ``data``."""
    found: set[Ref] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            ref = value.get("reference")
            if isinstance(ref, str) and (m := _REFERENCE.match(ref)):
                found.add((m.group(1), m.group(2)))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(data)
    return found


def rewrite_references(data: Any, mapping: dict[Ref, str]) -> Any:
    """``data`` with each ``Type/id`` reference in ``mapping`` pointing to ``Type/{mapping[...]}``
    (a new object where something changed; the input is not modified)."""
    if not mapping:
        return data
    if isinstance(data, dict):
        out = {k: rewrite_references(v, mapping) for k, v in data.items()}
        ref = data.get("reference")
        if isinstance(ref, str) and (m := _REFERENCE.match(ref)) and (m.group(1), m.group(2)) in mapping:
            out["reference"] = f"{m.group(1)}/{mapping[(m.group(1), m.group(2))]}"
        return out
    if isinstance(data, list):
        return [rewrite_references(v, mapping) for v in data]
    return data
