"""The sync scheduler: run every minute by EventBridge, it queues the polls that are due.

It never scans: each run queries the due entries with ``due_at <= now`` (one Query per due shard,
:mod:`fhir_platform.storage.data_sources`), reads those sources in one BatchGetItem, decides which
of their resource types are due (source schedule, per-type ``cadence``, ``business_hours`` in the
workspace's time zone — :mod:`fhir_platform.connector.schedule`), queues one SQS message per
(source, type), and moves each source's due entry to its next due instant in the same
transaction that records what was queued. Sources that are not due cost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Callable

from fhir_platform.connector.sources import compute_due, iso, schedule_inputs
from fhir_platform.observability import logger
from fhir_platform.storage.data_sources import DataSourceRepository
from fhir_platform.storage.sync_queue import SyncQueue


MAX_ROUNDS = 25  # ≤ 10,000 due sources per run (the rest are found by the next minute's run)


@dataclass
class SchedulerRun:
    due_sources: int = 0
    queued: list[tuple[str, str, str]] = field(default_factory=list)  # (ws, ds, type)
    dropped: int = 0


class Scheduler:
    def __init__(
        self,
        sources: DataSourceRepository | None = None,
        queue: SyncQueue | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sources = sources or DataSourceRepository()
        self.queue = queue or SyncQueue()
        self.clock = clock

    def run(self) -> SchedulerRun:
        now = self.clock()
        run = SchedulerRun()
        seen: set[tuple[str, str, str]] = set()
        for _ in range(MAX_ROUNDS):  # each round takes ≤ 100 due entries per shard and moves them on
            due = [d for d in self.sources.due(iso(now)) if d not in seen]
            if not due:
                break  # nothing due, or only entries this run could not move (a concurrent change)
            seen.update(due)
            run.due_sources += len(due)
            self._round(now, due, run)
        logger.info("sync scheduler run", extra={"due_sources": run.due_sources, "queued": len(run.queued), "dropped": run.dropped})
        return run

    def _round(self, now: datetime, due: list[tuple[str, str, str]], run: SchedulerRun) -> None:
        from fhir_platform.connector.schedule import due_types

        found = self.sources.get_many([(ws, ds) for ws, ds, _ in due])
        for ws, ds, due_at in due:
            source = found.get((ws, ds))
            if source is None or source.get("due_at") != due_at:
                self.sources.drop_due(ws, ds, due_at)  # deleted, or moved by a PATCH since
                run.dropped += 1
                continue
            if compute_due(source, now) is None:  # deactivated or made manual without moving the entry
                self.sources.mark_queued(ws, ds, [], iso(now), due_at, None)
                run.dropped += 1
                continue
            types = due_types(now, *schedule_inputs(source))
            queued_at = iso(now)
            after = {**source, "type_last_queued": {**(source.get("type_last_queued") or {}), **{t: queued_at for t in types}}}
            new_due = compute_due(after, now)
            # queue first: a lost race below at worst queues a poll twice, and the lease makes the
            # second one a no-op; the other order could lose a due poll
            if types:
                self.queue.send(ws, ds, types, reason="scheduled", requested_at=queued_at)
                run.queued += [(ws, ds, t) for t in types]
            self.sources.mark_queued(ws, ds, types, queued_at, due_at, new_due)
