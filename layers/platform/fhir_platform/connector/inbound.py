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
7. Deletes. After a complete poll, ``GET {base}/{Type}/_history?_since={since}&_count={page_size}``
   (and its ``next`` links, same client, same-origin rule), where ``since`` is the poll's starting
   cursor (or, after a history read that failed, the ``history_since`` it had asked for, kept on
   the type's sync state so no deletion is skipped). For each resource whose newest history entry
   is a ``DELETE`` and that the platform holds, the write path records a delete event (source
   ``ehr_sync``, ``effective_at`` = the entry's ``response.lastModified``). A 400/404/405/501 on
   ``_history`` means the server does not offer it: ``history_unsupported`` is set on the sync
   state and the type's history is not asked for again. The first poll (no cursor) reads no
   history. :meth:`InboundPoller.refresh` re-reads one resource; a 410 there is a delete too.
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
from fhir_platform.observability import count, logger
from fhir_platform.resources.service import ResourceService, WriteContext
from fhir_platform.storage.data_sources import DataSourceRepository
from fhir_platform.storage.sync import SyncRepository
from fhir_platform.storage.sync_queue import SyncQueue

HISTORY_UNSUPPORTED = frozenset({400, 404, 405, 501})  # _history answers meaning "not offered here"
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
    deleted: int = 0  # delete events recorded (resources the EHR reports deleted)
    cursor: str | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # sync-state fields recorded with the outcome


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
            client = self.client_factory(cfg)
            self._run(ws, ds, rt, client, cfg, owner, result, remaining_ms)
            if result.status == "success":
                self._sync_deletes(ws, ds, rt, client, cfg, state, result)
        except BaseException:
            self.sync.release(ws, ds, rt, owner, {"last_status": "error", "last_error": "internal error"})
            raise
        self._finish(ws, ds, rt, owner, started, result)
        return result

    # ---- the page loop -------------------------------------------------------------------------

    def _run(
        self, ws: str, ds: str, rt: str, client: Any, cfg: FhirConnectionConfig, owner: str, result: PollResult,
        remaining_ms: Callable[[], int],
    ) -> None:
        from fhir_platform.connector.http import EhrError

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
            accepted = self._to_platform_ids(ws, ds, rt, accepted, now)
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

    def _to_platform_ids(
        self, ws: str, ds: str, rt: str, accepted: list[tuple[str, str, dict[str, Any]]], now: str
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """The page's resources under their platform ids, and their EHR links recorded (the EHR id
        map, ``storage/sync.py``): a resource the platform created and wrote to the EHR, which gave
        it another id, is stored under the platform's id (same resource, no duplicate), and
        references to such resources point to the platform's ids (``connector/ids.py``). One
        BatchGetItem per 100 ids (the page's and those it refers to), one BatchWriteItem per 25 links."""
        from fhir_platform.connector.ids import references, rewrite_references

        refs = {(rt, rid) for _, rid, _ in accepted}
        for _, _, resource in accepted:
            refs |= references(resource)
        known = self.sync.platform_refs(ws, ds, sorted(refs))
        out: list[tuple[str, str, dict[str, Any]]] = []
        links: list[tuple[str, str, str | None, str | None]] = []
        for _, eid, resource in accepted:
            rid = known.get((rt, eid), eid)
            if rid != eid:
                resource = {**resource, "id": rid}
            resource = rewrite_references(resource, {r: known[r] for r in references(resource) if r in known})
            meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
            version = str(meta["versionId"]) if meta.get("versionId") is not None else None
            links.append((rid, eid, version, meta.get("lastUpdated") if isinstance(meta.get("lastUpdated"), str) else None))
            out.append((rt, rid, resource))
        self.sync.record_links(ws, ds, rt, links, now)
        return out

    # ---- deletes ----------------------------------------------------------------------------------

    def _sync_deletes(
        self, ws: str, ds: str, rt: str, client: Any, cfg: FhirConnectionConfig, state: dict[str, Any], result: PollResult
    ) -> None:
        """Read the type's ``_history`` since the poll's starting cursor and record the deletions
        it reports (module docstring, step 7)."""
        from fhir_platform.connector.http import EhrError, EhrRejected, etag_version

        if state.get("history_unsupported"):
            return
        since = state.get("history_since") or state.get("cursor")
        if not since:
            return  # first poll: nothing synced before it could have been deleted since
        newest: dict[str, tuple[datetime | None, dict[str, Any]]] = {}  # id -> its newest history entry
        try:
            bundle = client.history(rt, {"_since": since, "_count": cfg.page_size})
            while True:
                if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                    raise _not_a_bundle()
                for entry in bundle.get("entry") or []:
                    rid = _history_id(entry, rt)
                    if rid is None:
                        continue
                    stamp = _instant((entry.get("response") or {}).get("lastModified")) or _instant(
                        ((entry.get("resource") or {}).get("meta") or {}).get("lastUpdated")
                    )
                    seen = newest.get(rid)
                    # entries come newest first (FHIR); a later entry wins only if it says it is newer
                    if seen is None or (stamp is not None and seen[0] is not None and stamp > seen[0]):
                        newest[rid] = (stamp, entry)
                next_url = _next_link(bundle)
                if next_url is None:
                    break
                bundle = client.follow(next_url)
        except EhrRejected as exc:
            if exc.status in HISTORY_UNSUPPORTED:
                result.state["history_unsupported"] = True
                logger.info("EHR offers no type-level _history: deletes are not synced", extra={"data_source_id": ds, "resource_type": rt, "status": exc.status})
                return
            self._history_failed(ws, ds, rt, result, since, exc)
            return
        except EhrError as exc:
            self._history_failed(ws, ds, rt, result, since, exc)
            return
        gone = {rid: entry for rid, (_, entry) in newest.items() if (entry.get("request") or {}).get("method") == "DELETE"}
        if gone:  # under the platform's ids (resources the platform created in the EHR)
            known = self.sync.platform_ids(ws, ds, rt, list(gone))
            gone = {known.get(eid, eid): entry for eid, entry in gone.items()}
        held = self.resources.store.batch_get(ws, [(rt, rid) for rid in gone]) if gone else {}
        now = iso(self.clock())
        deleted = 0
        for (_, rid), stored in held.items():
            if stored.deleted:
                continue
            response = gone[rid].get("response") or {}
            ctx = WriteContext(
                source=SOURCE,
                source_system=cfg.base_url,
                data_source_id=ds,
                synced_at=now,
                effective_at=response.get("lastModified") if _instant(response.get("lastModified")) else None,
                source_version=etag_version(response.get("etag")),
            )
            if self.resources.delete(ws, rt, rid, ctx) is not None:
                deleted += 1
        result.deleted += deleted
        result.state["history_since"] = result.cursor  # the next poll's starting cursor
        self.sync.count(ws, ds, now[:10], events=deleted)

    def _history_failed(self, ws: str, ds: str, rt: str, result: PollResult, since: str, exc: Exception) -> None:
        """A history read that failed: a type-level failure, and ``history_since`` kept so the next
        poll asks again from the same instant (no deletion is skipped)."""
        result.state["history_since"] = since
        self._page_failed(ws, ds, rt, result, f"reading deletions (_history): {_describe(exc)}")

    def refresh(self, ws: str, ds: str, rt: str, rid: str) -> str:
        """Re-read one resource from the EHR and store it through the write path, as a poll
        would: ``"written"``, ``"unchanged"``, ``"deleted"`` (the EHR answered 410 Gone: a delete
        event is recorded if the platform holds the resource), ``"absent"`` (410 for something the
        platform does not hold or already holds as deleted), ``"failed"`` (the platform cannot
        accept it: a sync failure, as in a poll) or ``"skipped"`` (source inactive, not FHIR, or
        not syncing ``rt``).
        Other EHR errors are raised (:class:`~fhir_platform.connector.http.EhrError`)."""
        from fhir_platform.connector.http import ResourceGone

        try:
            source = self.sources.get(ws, ds)
        except NotFound:
            return "skipped"
        if not (is_fhir(source) and source.get("is_active")):
            return "skipped"
        cfg = parse_fhir_config(source["connection_config"])
        if rt not in cfg.resource_types:
            return "skipped"
        client = self.client_factory(cfg)
        now = iso(self.clock())
        try:
            resource = client.read(rt, rid)
        except ResourceGone:
            ctx = WriteContext(source=SOURCE, source_system=cfg.base_url, data_source_id=ds, synced_at=now)
            if self.resources.delete(ws, rt, rid, ctx) is None:
                return "absent"
            self.sync.count(ws, ds, now[:10], events=1)
            return "deleted"
        result = PollResult("success")
        self._store_page(ws, ds, rt, cfg.base_url, {"resourceType": "Bundle", "entry": [{"resource": resource}]}, result, None)
        return "written" if result.written else "unchanged" if not result.failed else "failed"

    def _page_failed(self, ws: str, ds: str, rt: str, result: PollResult, message: str) -> None:
        now = iso(self.clock())
        self.sync.record_failure(ws, ds, "inbound", rt, None, message, now)
        self.sync.count(ws, ds, now[:10], failed=1)
        result.status = "error"
        result.error = message
        # the log gets the error's kind only: an EHR's diagnostics text may quote patient data
        # (the full message is kept on the sync failure, in the table)
        logger.warning("sync page failed", extra={"data_source_id": ds, "resource_type": rt, "error_kind": message.split(":", 1)[0]})

    def _finish(self, ws: str, ds: str, rt: str, owner: str, started: datetime, result: PollResult) -> None:
        count("SyncPolls")
        count("SyncPages", result.pages)
        count("SyncFailures", result.failed + (1 if result.status == "error" else 0))  # bad resources + a failed page
        ended = self.clock()
        outcome: dict[str, Any] = {
            "last_poll_at": iso(started),
            "last_poll_duration_ms": int((ended - started).total_seconds() * 1000),
            "last_status": result.status,
            "last_event_count": result.written + result.deleted,
            **result.state,
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
            "last_sync_event_count": result.written + result.deleted,
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
                "deleted": result.deleted,
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


def _history_id(entry: Any, rt: str) -> str | None:
    """The id of the ``rt`` resource a history entry is about: from ``request.url``
    (``Type/id``, ``Type/id/_history/v``), else ``fullUrl``, else the resource; ``None`` when the
    entry is about another type or names no valid id."""
    if not isinstance(entry, dict):
        return None
    resource = entry.get("resource")
    if isinstance(resource, dict) and resource.get("resourceType") == rt and isinstance(resource.get("id"), str):
        rid = resource["id"]
        return rid if _ID.match(rid) else None
    for url in ((entry.get("request") or {}).get("url"), entry.get("fullUrl")):
        if not isinstance(url, str):
            continue
        parts = url.split("?", 1)[0].strip("/").split("/")
        for i in range(len(parts) - 1):
            if parts[i] == rt and (i == 0 or parts[i - 1] != "_history"):
                rid = parts[i + 1]
                return rid if _ID.match(rid) else None
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
