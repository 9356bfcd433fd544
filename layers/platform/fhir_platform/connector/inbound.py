"""Inbound sync: one poll of one (data source, resource type) from the EHR into the write path.

Flow (DESIGN.md, Connector):

1. Take the lease on (source, type) — a conditional write with an expiry, so two polls never
   overlap and a crashed poll's lease lapses by itself.
2. ``GET {base}/{Type}?_lastUpdated=ge{cursor}&_sort=_lastUpdated&_count={page_size}``, then
   each ``link[relation=next]`` (same origin only: the client refuses anything else).
3. Each page: resources the platform cannot accept become sync failures for their type and id;
   the rest go through the API's write path (``ResourceService.write_many``: source ``ehr_sync``,
   ``data_source_id``, ``effective_at`` = the EHR's ``meta.lastUpdated``); unchanged content is not
   a new version, so re-reading a page changes nothing; earlier failures of the stored resources
   are resolved; counters are added; then the cursor is checkpointed (and the lease renewed).
4. The cursor is the greatest ``meta.lastUpdated`` seen, used *inclusively* (``ge``) next time, so
   resources sharing the boundary instant are re-read, never skipped. If the server does not
   return pages in ``_lastUpdated`` order, the cursor is only moved when the whole poll completes.
5. A page that cannot be fetched (retries exhausted, auth refused, off-origin ``next``, not a
   Bundle) is recorded as a type-level sync failure; the cursor stays at the last checkpoint so
   the next poll resumes there.
6. Running short of Lambda time, the poll hands the rest on: a ``continuation`` message, lease
   released, resumed from the checkpoint by whichever worker takes it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Callable

from fhir_platform.connector.config import FhirConnectionConfig, parse_fhir_config
from fhir_platform.connector.sources import is_fhir, iso, parse_instant
from fhir_platform.errors import NotFound
from fhir_platform.fhir.resource_types import ID_PATTERN
from fhir_platform.fhir.validation import FhirValidationError, UnknownResourceTypeError, validate_resource
from fhir_platform.observability import logger
from fhir_platform.resources.service import ResourceService, WriteContext
from fhir_platform.storage.data_sources import DataSourceRepository
from fhir_platform.storage.sync import SyncRepository
from fhir_platform.storage.sync_queue import SyncQueue

LEASE_SECONDS = 300  # renewed at every checkpoint; a page must be stored within this
HANDOFF_MARGIN_MS = 60_000  # stop fetching pages when less Lambda time than this is left
SOURCE = "ehr_sync"
_ID = re.compile(ID_PATTERN)


@dataclass
class PollResult:
    status: str  # success | error | busy | handed_on | skipped | lease_lost
    pages: int = 0
    received: int = 0
    written: int = 0
    unchanged: int = 0
    failed: int = 0
    cursor: str | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def default_client_factory(cfg: FhirConnectionConfig) -> Any:
    from fhir_platform.connector.auth import token_provider
    from fhir_platform.connector.http import EhrClient

    return EhrClient(cfg.base_url, token_provider(cfg.auth.model_dump()))


class InboundPoller:
    def __init__(
        self,
        *,
        sources: DataSourceRepository | None = None,
        sync: SyncRepository | None = None,
        resources: ResourceService | None = None,
        queue: SyncQueue | None = None,
        client_factory: Callable[[FhirConnectionConfig], Any] = default_client_factory,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sources = sources or DataSourceRepository()
        self.sync = sync or SyncRepository()
        self.resources = resources or ResourceService()
        self.queue = queue or SyncQueue()
        self.client_factory = client_factory
        self.clock = clock

    def poll(self, ws: str, ds: str, rt: str, *, remaining_ms: Callable[[], int] = lambda: 10**9) -> PollResult:
        try:
            source = self.sources.get(ws, ds)
        except NotFound:
            return PollResult("skipped", error="data source deleted")
        if not (is_fhir(source) and source.get("is_active")):
            return PollResult("skipped", error="data source inactive or not FHIR")
        cfg = parse_fhir_config(source["connection_config"])
        if rt not in cfg.resource_types:
            return PollResult("skipped", error=f"{rt} is not synced by this source")
        owner = str(uuid.uuid4())
        started = self.clock()
        state = self.sync.acquire(ws, ds, rt, owner, iso(started), self._lease_until())
        if state is None:
            return PollResult("busy")
        result = PollResult("success", cursor=state.get("cursor"))
        try:
            self._run(ws, ds, rt, source, cfg, owner, result, remaining_ms)
        except BaseException:
            self.sync.release(ws, ds, rt, owner, {"last_status": "error", "last_error": "internal error"})
            raise
        self._finish(ws, ds, rt, owner, started, result)
        return result

    # ---- the page loop -------------------------------------------------------------------------

    def _run(
        self, ws: str, ds: str, rt: str, source: dict[str, Any], cfg: FhirConnectionConfig, owner: str, result: PollResult,
        remaining_ms: Callable[[], int],
    ) -> None:
        from fhir_platform.connector.http import EhrError

        client = self.client_factory(cfg)
        params: dict[str, Any] = {"_sort": "_lastUpdated", "_count": cfg.page_size}
        if result.cursor:
            params["_lastUpdated"] = f"ge{result.cursor}"
        source_system = cfg.base_url
        ordered = True
        highest: datetime | None = parse_instant(result.cursor) if result.cursor else None
        highest_text = result.cursor
        next_url: str | None = None
        while True:
            try:
                bundle = client.search(rt, params) if next_url is None else client.follow(next_url)
                if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                    raise _not_a_bundle()
            except EhrError as exc:
                self._page_failed(ws, ds, rt, result, _describe(exc))
                return
            result.pages += 1
            page_high, page_text, in_order = self._store_page(ws, ds, rt, source_system, bundle, result, highest)
            ordered = ordered and in_order
            if page_high is not None and (highest is None or page_high > highest):
                highest, highest_text = page_high, page_text
            if ordered:
                result.cursor = highest_text
            if not self.sync.checkpoint(ws, ds, rt, owner, result.cursor if ordered else None, self._lease_until()):
                result.status = "lease_lost"
                return
            next_url = _next_link(bundle)
            if next_url is None:
                result.cursor = highest_text
                if not ordered:
                    self.sync.checkpoint(ws, ds, rt, owner, result.cursor, self._lease_until())
                return
            if remaining_ms() < HANDOFF_MARGIN_MS:
                self.queue.send(ws, ds, [rt], reason="continuation", requested_at=iso(self.clock()))
                result.status = "handed_on"
                return

    def _store_page(
        self, ws: str, ds: str, rt: str, source_system: str, bundle: dict[str, Any], result: PollResult, highest: datetime | None
    ) -> tuple[datetime | None, str | None, bool]:
        now = iso(self.clock())
        day = now[:10]
        accepted: list[tuple[str, str, dict[str, Any]]] = []
        contexts: list[WriteContext] = []
        failed = 0
        page_high: datetime | None = None
        page_text: str | None = None
        in_order = True
        previous: datetime | None = highest
        for entry in bundle.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            mode = (entry.get("search") or {}).get("mode") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or resource.get("resourceType") != rt or mode in ("include", "outcome"):
                continue
            result.received += 1
            meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
            stamp = _instant(meta.get("lastUpdated"))
            if stamp is not None:
                if previous is not None and stamp < previous:
                    in_order = False
                previous = stamp
                if page_high is None or stamp > page_high:
                    page_high, page_text = stamp, meta["lastUpdated"]
            rid = resource.get("id")
            if not isinstance(rid, str) or not _ID.match(rid):
                self.sync.record_failure(ws, ds, "inbound", rt, None, "resource without a valid id", now)
                failed += 1
                continue
            try:
                validate_resource(resource, expected_type=rt)
            except (FhirValidationError, UnknownResourceTypeError) as exc:
                self.sync.record_failure(ws, ds, "inbound", rt, rid, f"invalid {rt}: {exc}"[:1000], now)
                failed += 1
                continue
            accepted.append((rt, rid, resource))
            contexts.append(
                WriteContext(
                    source=SOURCE,
                    source_system=source_system,
                    data_source_id=ds,
                    synced_at=now,
                    effective_at=meta.get("lastUpdated") if stamp else None,
                    source_version=str(meta["versionId"]) if meta.get("versionId") is not None else None,
                )
            )
        written = 0
        if accepted:
            outcomes = self.resources.write_many(ws, accepted, contexts[0], contexts=contexts)
            written = sum(1 for o in outcomes if o.outcome != "skipped")
            resolved = self.sync.open_failures(ws, ds, "inbound", rt, [rid for _, rid, _ in accepted])
            if resolved:
                self.sync.resolve(ws, resolved, now)
        result.written += written
        result.unchanged += len(accepted) - written
        result.failed += failed
        self.sync.count(ws, ds, day, events=written, synced=len(accepted), failed=failed)
        return page_high, page_text, in_order

    def _page_failed(self, ws: str, ds: str, rt: str, result: PollResult, message: str) -> None:
        now = iso(self.clock())
        self.sync.record_failure(ws, ds, "inbound", rt, None, message, now)
        self.sync.count(ws, ds, now[:10], failed=1)
        result.status = "error"
        result.error = message
        logger.warning("sync page failed", extra={"data_source_id": ds, "resource_type": rt, "error": message})

    def _finish(self, ws: str, ds: str, rt: str, owner: str, started: datetime, result: PollResult) -> None:
        ended = self.clock()
        outcome: dict[str, Any] = {
            "last_poll_at": iso(started),
            "last_poll_duration_ms": int((ended - started).total_seconds() * 1000),
            "last_status": result.status,
            "last_event_count": result.written,
        }
        if result.status in ("success", "handed_on"):
            outcome["last_success_at"] = iso(ended)
            if result.status == "success":
                page_failures = self.sync.open_failures(ws, ds, "inbound", rt, [None])
                if page_failures:
                    self.sync.resolve(ws, page_failures, iso(ended))
        if result.status == "lease_lost":
            return  # another poll owns the type now; it records its own outcome
        self.sync.release(ws, ds, rt, owner, outcome)
        summary: dict[str, Any] = {
            "last_sync_at": iso(ended),
            "last_sync_status": "error" if result.status == "error" else "success",
            "last_sync_event_count": result.written,
        }
        if result.status != "error":
            summary["last_success_at"] = iso(ended)
        self.sources.record_sync(ws, ds, summary)
        logger.info(
            "sync poll finished",
            extra={
                "data_source_id": ds,
                "resource_type": rt,
                "status": result.status,
                "pages": result.pages,
                "received": result.received,
                "written": result.written,
                "failed": result.failed,
            },
        )

    @staticmethod
    def _lease_until_from(now: datetime) -> str:
        return iso(now + timedelta(seconds=LEASE_SECONDS))

    def _lease_until(self) -> str:
        return self._lease_until_from(self.clock())


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = parse_instant(value)
    except ValueError:
        return None
    return t if t.tzinfo else None


def _not_a_bundle() -> Exception:
    from fhir_platform.connector.http import InvalidResponse

    return InvalidResponse("the EHR did not answer with a Bundle")


def _describe(exc: Exception) -> str:
    """A failure message without PHI: the error's class and its safe message."""
    return f"{type(exc).__name__}: {exc}"[:1000]
