"""The last step every import path shares: prepared items → write path → :class:`ImportSummary`.

The caller supplies ``write(entry) -> (event_outcome, entity_outcome)``, a thin adapter over the
platform's write path (``ResourceService``) that returns ``"created" | "updated" | "skipped"``
(skipped = identical content, deduplicated by content hash; with ``dedup=false`` the adapter never
returns it) and ``"created" | "updated" | None`` for the world-model entity. This module decides
only what goes where:

* an :class:`ImportIssue` → the summary (policy applied there);
* a ``DomainError`` raised by ``write`` for one resource (e.g. the write path's own validation,
  an id rule) → a per-resource error at that entry's location; the import goes on;
* any other exception (throttling, network, a bug) propagates: for the synchronous endpoints the
  request fails (500) and the client can retry — every write is an idempotent upsert; for a
  worker the SQS message fails and is redelivered (then dead-lettered).

Usage::

    summary = prepared.summary(options.unsupported_resource_policy)      # sync Bundle
    if prepared.transaction_failed: → 422, prepared.failure_detail(), write nothing
    write_all(prepared.entries, summary, write)

    summary = ImportSummary(options.unsupported_resource_policy)          # stream / worker
    write_all(prepare_ndjson(body), summary, write)                      # or prepare_chunk(...)
"""

from __future__ import annotations

from typing import Callable, Iterable

from fhir_platform.errors import DomainError

from .common import ImportIssue, PreparedEntry
from .summary import ImportSummary

WriteResult = tuple[str, "str | None"]
WriteFn = Callable[[PreparedEntry], WriteResult]


def write_all(items: Iterable[PreparedEntry | ImportIssue], summary: ImportSummary, write: WriteFn) -> ImportSummary:
    for item in items:
        if isinstance(item, ImportIssue):
            summary.resources_received += 1
            summary.add_issue(item)
            continue
        summary.resources_received += 1
        try:
            event_outcome, entity_outcome = write(item)
        except DomainError as exc:
            summary.add_issue(ImportIssue(item.location, exc.message, item.resource_type, item.resource_id))
            continue
        summary.record_write(event_outcome)
        summary.record_entity(entity_outcome)
    return summary
