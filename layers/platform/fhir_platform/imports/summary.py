"""Accumulator of import results, shaped like the contract's ``FhirImportResponse``.

One :class:`ImportSummary` collects what happened to the resources of one request, one splitter run
or one chunk: write outcomes (``record_write``), entity outcomes (``record_entity``) and issues
(``add_issue``). It applies ``unsupported_resource_policy`` exactly as the contract words it:

* every unsupported resource (resourceType missing or not stored by the platform, or a request
  method import does not perform) is skipped, counted in ``unsupported_resource_count`` and listed
  in ``unsupported_resources`` (location + reason) — "skipped and reported";
* ``error`` additionally "adds a per-resource error" (``errors``/``error_count``);
* ``skip`` "skips it without adding an error".

Lists stop growing at their cap (``MAX_ERRORS``/``MAX_UNSUPPORTED`` = the contract's maxItems);
the counts keep counting and ``*_truncated`` says the list is incomplete. Summaries merge
(``merge``), so an async job is the sum of its splitter summary and its chunk summaries, and they
round-trip through plain dicts (``to_dict``/``from_dict``) for DynamoDB/JSON. No pydantic here: it
is used per chunk in the worker's hot path.
"""

from __future__ import annotations

from typing import Any, Iterable

from .common import UNSUPPORTED_POLICIES, ImportIssue
from .limits import MAX_ERRORS, MAX_UNSUPPORTED

MAX_ERROR_CHARS = 1024

# the FhirImportResponse counts (what jobs add up per chunk), then the bookkeeping count
COUNTS = (
    "events_created",
    "events_updated",
    "events_skipped",
    "entities_created",
    "entities_updated",
    "error_count",
    "unsupported_resource_count",
)
_COUNTERS = (*COUNTS, "resources_received")


class ImportSummary:
    __slots__ = (*_COUNTERS, "policy", "max_errors", "max_unsupported", "errors", "errors_truncated",
                 "unsupported_resources", "unsupported_resources_truncated")

    def __init__(self, policy: str = "error", *, max_errors: int = MAX_ERRORS, max_unsupported: int = MAX_UNSUPPORTED) -> None:
        if policy not in UNSUPPORTED_POLICIES:
            raise ValueError(f"unsupported_resource_policy must be one of {UNSUPPORTED_POLICIES}")
        self.policy = policy
        self.max_errors = max_errors
        self.max_unsupported = max_unsupported
        for name in _COUNTERS:
            setattr(self, name, 0)
        self.errors: list[str] = []
        self.errors_truncated = False
        self.unsupported_resources: list[dict[str, Any]] = []
        self.unsupported_resources_truncated = False

    # ---- recording ---------------------------------------------------------------------------

    def add_issue(self, issue: ImportIssue) -> None:
        if issue.kind == "unsupported":
            self.unsupported_resource_count += 1
            self._append_unsupported(issue.unsupported_item())
            if self.policy == "error":
                self._add_error_text(issue.message())
        else:
            self._add_error_text(issue.message())

    def add_issues(self, issues: Iterable[ImportIssue]) -> None:
        for issue in issues:
            self.add_issue(issue)

    def add_error(self, location: str, reason: str, resource_type: str | None = None, resource_id: str | None = None) -> None:
        self.add_issue(ImportIssue(location, reason, resource_type, resource_id, "error"))

    def record_write(self, outcome: str) -> None:
        """``created`` (first version), ``updated`` (new version) or ``skipped`` (identical content
        deduplicated, or an earlier duplicate of the same resource superseded inside the file)."""
        if outcome == "created":
            self.events_created += 1
        elif outcome == "updated":
            self.events_updated += 1
        elif outcome == "skipped":
            self.events_skipped += 1
        else:
            raise ValueError(f"unknown write outcome {outcome!r}")

    def record_entity(self, outcome: str | None) -> None:
        """``created``/``updated`` world-model entity, or ``None`` (no entity change)."""
        if outcome == "created":
            self.entities_created += 1
        elif outcome == "updated":
            self.entities_updated += 1
        elif outcome is not None:
            raise ValueError(f"unknown entity outcome {outcome!r}")

    def _add_error_text(self, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < self.max_errors:
            self.errors.append(text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…")
        else:
            self.errors_truncated = True

    def _append_unsupported(self, item: dict[str, Any]) -> None:
        if len(self.unsupported_resources) < self.max_unsupported:
            self.unsupported_resources.append(item)
        else:
            self.unsupported_resources_truncated = True

    # ---- combining ---------------------------------------------------------------------------

    def merge(self, other: "ImportSummary") -> "ImportSummary":
        """Add ``other`` into this summary (counts sum; lists fill up to this summary's caps)."""
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for text in other.errors:
            if len(self.errors) < self.max_errors:
                self.errors.append(text)
            else:
                self.errors_truncated = True
        self.errors_truncated = self.errors_truncated or other.errors_truncated
        for item in other.unsupported_resources:
            self._append_unsupported(item)
        self.unsupported_resources_truncated = self.unsupported_resources_truncated or other.unsupported_resources_truncated
        return self

    # ---- output ------------------------------------------------------------------------------

    def to_response(self) -> dict[str, Any]:
        """The ``FhirImportResponse`` body (contract fields only)."""
        return {
            "events_created": self.events_created,
            "events_skipped": self.events_skipped,
            "events_updated": self.events_updated,
            "entities_created": self.entities_created,
            "entities_updated": self.entities_updated,
            "error_count": self.error_count,
            "errors": list(self.errors),
            "errors_truncated": self.errors_truncated,
            "unsupported_resource_count": self.unsupported_resource_count,
            "unsupported_resources": [dict(i) for i in self.unsupported_resources],
            "unsupported_resources_truncated": self.unsupported_resources_truncated,
            "upsert_semantics": "same_resource_id_upsert",
            "absence_semantics": "absent_resources_persist",
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, for persistence (job/chunk records); inverse of :meth:`from_dict`."""
        out = self.to_response()
        del out["upsert_semantics"], out["absence_semantics"]
        out["resources_received"] = self.resources_received
        out["policy"] = self.policy
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, max_errors: int = MAX_ERRORS, max_unsupported: int = MAX_UNSUPPORTED) -> "ImportSummary":
        s = cls(data.get("policy", "error"), max_errors=max_errors, max_unsupported=max_unsupported)
        for name in _COUNTERS:
            setattr(s, name, int(data.get(name, 0)))  # DynamoDB gives Decimals
        s.errors = list(data.get("errors", []))[:max_errors]
        s.errors_truncated = bool(data.get("errors_truncated")) or len(data.get("errors", [])) > max_errors
        items = list(data.get("unsupported_resources", []))
        s.unsupported_resources = [dict(i) for i in items[:max_unsupported]]
        s.unsupported_resources_truncated = bool(data.get("unsupported_resources_truncated")) or len(items) > max_unsupported
        return s

    def __repr__(self) -> str:
        return (
            f"ImportSummary(created={self.events_created}, updated={self.events_updated}, skipped={self.events_skipped}, "
            f"errors={self.error_count}, unsupported={self.unsupported_resource_count})"
        )
