"""Shared pieces of every import path: the prepared entry, the per-resource issue, id assignment
and the per-resource triage (supported type? valid? references pre-resolved?).

Every import path — the synchronous Bundle endpoint, the NDJSON stream endpoint, the S3 splitter
and the SQS chunk worker — ends in the same two shapes:

* :class:`PreparedEntry` — a resource ready for the write path: ``resource_type``/``resource_id``
  are its natural key (with the workspace), ``data["id"] == resource_id``, references resolved.
* :class:`ImportIssue` — a resource that will not be written, with where it was (``entry[3]``,
  ``line 7``) and why. ``kind`` is ``"error"`` (invalid: bad JSON, fails FHIR validation, id
  conflict, unresolvable ``urn:uuid:`` reference…) or ``"unsupported"`` (resourceType missing or not
  stored by the platform, or a request method import does not perform). The
  ``unsupported_resource_policy`` is applied in one place only,
  :meth:`fhir_platform.imports.summary.ImportSummary.add_issue`.

Nothing here touches AWS or logs: messages never include resource content (they may hold PHI) —
only locations, resource types, ids and validator messages (which are generated without input
values).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from fhir_platform.fhir.changes import content_hash
from fhir_platform.fhir.resource_types import ID_PATTERN, is_storable

IssueKind = Literal["error", "unsupported"]
UnsupportedPolicy = Literal["error", "skip"]
UNSUPPORTED_POLICIES: tuple[str, ...] = ("error", "skip")

ID_RE = re.compile(ID_PATTERN)

# Namespaces of the deterministic (uuid5) ids. Fixed forever: changing them changes ids.
NS_FULL_URL = uuid.UUID("6f1c2a52-5d1e-4c57-9d1b-3f0e4f7d9a01")
NS_CONDITIONAL = uuid.UUID("6f1c2a52-5d1e-4c57-9d1b-3f0e4f7d9a02")
NS_CONTENT = uuid.UUID("6f1c2a52-5d1e-4c57-9d1b-3f0e4f7d9a03")

# Contract bounds of FhirUnsupportedResourceItem (and the same for error texts).
MAX_LOCATION_CHARS = 128
MAX_REASON_CHARS = 512
MAX_TYPE_CHARS = 128
MAX_ID_CHARS = 512


def _clip(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = str(value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


@dataclass(slots=True)
class ImportIssue:
    """One resource that is not written, and why (no resource content in ``reason``)."""

    location: str
    reason: str
    resource_type: str | None = None
    resource_id: str | None = None
    kind: IssueKind = "error"
    # Structured problems (JSON path inside the resource, message, type) for 422-style details.
    problems: tuple[tuple[str, str, str], ...] = ()

    def message(self) -> str:
        """The one-line text that goes into ``FhirImportResponse.errors``."""
        who = ""
        if self.resource_type or self.resource_id:
            who = f" ({self.resource_type or '?'}/{self.resource_id or '?'})"
        return f"{self.location}{who}: {self.reason}"

    def unsupported_item(self) -> dict[str, Any]:
        """``FhirUnsupportedResourceItem`` (bounded to the contract's maxLength)."""
        return {
            "resource_type": _clip(self.resource_type, MAX_TYPE_CHARS),
            "resource_id": _clip(self.resource_id, MAX_ID_CHARS),
            "location": _clip(self.location, MAX_LOCATION_CHARS),
            "reason": _clip(self.reason, MAX_REASON_CHARS),
        }


@dataclass(slots=True)
class PreparedEntry:
    """A resource ready for the write path (natural key = workspace + resource_type + resource_id).

    ``if_none_exist``: the search criteria of a conditional create/update (``identifier=sys|val``),
    so a write path that has an identifier index can honour "create only if none exists";
    ``conditional_references``: ``Type?criteria`` references that could not be resolved inside the
    bundle and are still in ``data`` (the write path may resolve them through its identifier index).
    """

    location: str
    resource_type: str
    resource_id: str
    data: dict[str, Any]
    method: str = "PUT"
    full_url: str | None = None
    if_none_exist: str | None = None
    conditional_references: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


# ---- ids ---------------------------------------------------------------------------------------


def valid_id(value: Any) -> bool:
    return isinstance(value, str) and bool(ID_RE.match(value))


def full_url_id(full_url: str) -> str:
    """The deterministic id of an entry known only by a fullUrl that carries no usable id."""
    return str(uuid.uuid5(NS_FULL_URL, full_url))


def conditional_id(resource_type: str, criteria: str) -> str:
    """The deterministic id of a conditional create/update without an id: the same criteria always
    give the same resource, so re-importing the bundle updates instead of duplicating."""
    return str(uuid.uuid5(NS_CONDITIONAL, f"{resource_type}?{normalize_criteria(criteria)}"))


def content_id(resource_type: str, data: dict[str, Any], occurrence: int = 0) -> str:
    """Id of an id-less resource with no fullUrl: derived from its content (the platform's content
    hash, which ignores ``meta.versionId/lastUpdated``), so an identical re-upload gets the same id
    and is deduplicated; ``occurrence`` separates identical copies inside one import."""
    digest = content_hash(data)
    suffix = f"#{occurrence}" if occurrence else ""
    return str(uuid.uuid5(NS_CONTENT, f"{resource_type}|{digest}{suffix}"))


def normalize_criteria(criteria: str) -> str:
    """Canonical form of ``a=1&b=2`` search criteria (decoded, parameters sorted)."""
    from urllib.parse import parse_qsl, urlencode

    pairs = sorted(parse_qsl(criteria.lstrip("?"), keep_blank_values=True))
    return urlencode(pairs, safe="|:/")


def identifier_criteria(criteria: str) -> tuple[str | None, str] | None:
    """``identifier=system|value`` (the one form resolved inside bundles) → ``(system, value)``."""
    from urllib.parse import parse_qsl

    pairs = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
    if len(pairs) != 1 or pairs[0][0] != "identifier" or not pairs[0][1]:
        return None
    token = pairs[0][1]
    if "|" in token:
        system, value = token.split("|", 1)
        return (system or None, value) if value else None
    return (None, token)


# ---- triage ------------------------------------------------------------------------------------


class ContentIds:
    """Hands out content-derived ids, counting identical copies within one import so two identical
    id-less resources do not collapse into one."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def assign(self, resource_type: str, data: dict[str, Any]) -> str:
        first = content_id(resource_type, data)
        n = self._seen.get(first, 0)
        self._seen[first] = n + 1
        return first if n == 0 else content_id(resource_type, data, n)


def classify_type(data: Any) -> tuple[str | None, str | None]:
    """``(resource_type, unsupported_reason)``: reason is set when the resource must be skipped as
    unsupported (contract: "resourceType is missing or not projected by platform FHIR APIs")."""
    if not isinstance(data, dict):
        return None, None  # not a resource at all: an error, decided by the caller
    rt = data.get("resourceType")
    if not isinstance(rt, str) or not rt:
        return None, "resourceType is missing"
    if not is_storable(rt):
        return rt, f"resource type {_clip(rt, 64)!r} is not supported by the platform FHIR APIs"
    return rt, None


def validation_issue(location: str, resource_type: str | None, resource_id: str | None, data: Any) -> ImportIssue | None:
    """Run the platform validator; ``None`` when valid, else an error/unsupported issue."""
    from fhir_platform.fhir.validation import FhirValidationError, UnknownResourceTypeError, validate_resource

    try:
        validate_resource(data)
    except UnknownResourceTypeError as exc:
        return ImportIssue(location, str(exc), resource_type, resource_id, "unsupported")
    except FhirValidationError as exc:
        problems = tuple((p.loc, p.msg, p.type) for p in exc.problems)
        shown = "; ".join(f"{p.loc or '<root>'}: {p.msg}" for p in exc.problems[:5])
        more = f" (+{len(exc.problems) - 5} more)" if len(exc.problems) > 5 else ""
        reason = _clip(f"invalid {resource_type or 'resource'}: {shown}{more}", MAX_REASON_CHARS)
        return ImportIssue(location, reason or "invalid", resource_type, resource_id, "error", problems)
    return None


def iter_references(obj: Any, path: str = ""):
    """Yield ``(container, path)`` for every dict holding a string ``reference`` key, at any depth
    (contained resources, extensions, backbone elements…)."""
    if isinstance(obj, dict):
        ref = obj.get("reference")
        if isinstance(ref, str):
            yield obj, f"{path}.reference" if path else "reference"
        for k, v in obj.items():
            if isinstance(v, (dict, list)):
                yield from iter_references(v, f"{path}.{k}" if path else k)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, (dict, list)):
                yield from iter_references(v, f"{path}.{i}")


def scan_references(data: dict[str, Any]) -> tuple[tuple[str, str] | None, tuple[str, ...]]:
    """``(first bundle-internal reference, conditional references)`` of a standalone resource.

    The first is a ``urn:uuid:``/``urn:oid:`` reference (``(path, reference)``): it only means
    something inside the bundle it came from, so storing it would dangle. The second lists the
    ``Type?criteria`` references left for the write path to resolve (sorted, unique)."""
    first: tuple[str, str] | None = None
    conditional: set[str] = set()
    for holder, path in iter_references(data):
        ref = holder["reference"]
        if first is None and (ref.startswith("urn:uuid:") or ref.startswith("urn:oid:")):
            first = (path, ref)
        elif "?" in ref and not ref.startswith("#"):
            conditional.add(ref)
    return first, tuple(sorted(conditional))
