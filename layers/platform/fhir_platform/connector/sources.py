"""Data sources: the rules behind the ``/v1/{ws}/data-sources`` endpoints.

A data source is one system the workspace's data comes from. FHIR sources (``fhir_store``,
``ehr``, ``smart_fhir``) are polled by the connector; their ``connection_config`` is validated by
:mod:`fhir_platform.connector.config`. Scheduled, active FHIR sources carry ``due_at`` — the next
instant one of their resource types is due — mirrored by a due entry the scheduler queries
(:mod:`fhir_platform.storage.data_sources`).

Health: ``unknown`` until a poll has finished; ``degraded`` when the last poll failed or the source
is stale (scheduled, and no successful poll within twice its schedule's interval); else
``healthy``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fhir_platform.connector.config import FHIR_SOURCE_TYPES, ConnectionConfigError, parse_fhir_config, validate_connection_config
from fhir_platform.errors import Conflict, InvalidInput, Unprocessable
from fhir_platform.storage.data_sources import DataSourceRepository
from fhir_platform.storage.sync import SyncRepository
from fhir_platform.storage.sync_queue import SyncQueue


def parse_instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SyncInProgress(Conflict):
    """A poll of the source holds its lease (409 ``TriggerSyncConflictResponse``)."""

    def __init__(self, last_poll_at: str | None, last_poll_duration_ms: int | None) -> None:
        super().__init__("A sync of this data source is already running")
        self.last_poll_at = last_poll_at
        self.last_poll_duration_ms = last_poll_duration_ms


def _config_error(exc: ConnectionConfigError) -> Unprocessable:
    details = [{"loc": ["body", "connection_config", *p["loc"]], "msg": p["msg"], "type": p["type"]} for p in exc.problems]
    where = ", ".join(".".join(str(x) for x in d["loc"][1:]) for d in details[:5])
    return Unprocessable(f"Invalid connection_config at: {where}", details=details)


def _schedule_error(msg: str) -> Unprocessable:
    return Unprocessable(f"Invalid sync_schedule: {msg}", details=[{"loc": ["body", "sync_schedule"], "msg": msg, "type": "value_error"}])


def is_fhir(source: dict[str, Any]) -> bool:
    return source.get("source_type") in FHIR_SOURCE_TYPES


def outbound_types(source: dict[str, Any]) -> list[str]:
    """The types an active FHIR source writes back to its EHR (empty when outbound is off)."""
    if not (is_fhir(source) and source.get("is_active")):
        return []
    outbound = (source.get("connection_config") or {}).get("outbound") or {}
    return list(outbound.get("resource_types") or []) if outbound.get("enabled") else []


def compute_due(source: dict[str, Any], now: datetime) -> str | None:
    """When the scheduler should next look at this source (None: never — manual, inactive, not FHIR)."""
    if not (source.get("is_active") and source.get("sync_strategy") == "scheduled" and is_fhir(source) and source.get("sync_schedule")):
        return None
    from fhir_platform.connector.schedule import next_due

    due = next_due(now, *schedule_inputs(source))
    return iso(due) if due is not None else None


def schedule_inputs(source: dict[str, Any]) -> tuple[list[str], Any, dict[str, Any], dict[str, datetime | None], Any]:
    """``(resource_types, schedule, cadence, last_run, business_hours)`` of a scheduled FHIR source,
    as :func:`~fhir_platform.connector.schedule.due_types` and ``next_due`` take them."""
    from fhir_platform.connector.schedule import parse_business_hours, parse_schedule

    cfg = parse_fhir_config(source["connection_config"])
    queued = {t: parse_instant(v) for t, v in (source.get("type_last_queued") or {}).items()}
    return (
        list(cfg.resource_types),
        parse_schedule(source["sync_schedule"]),
        {t: parse_schedule(e) for t, e in cfg.cadence.items()},
        {t: queued.get(t) for t in cfg.resource_types},
        parse_business_hours(cfg.business_hours) if cfg.business_hours else None,
    )


def health(source: dict[str, Any], now: datetime) -> tuple[str, bool]:
    """``(health_status, is_stale)``."""
    stale = False
    if source.get("is_active") and source.get("sync_strategy") == "scheduled" and source.get("sync_schedule"):
        from fhir_platform.connector.schedule import parse_schedule

        window = 2 * parse_schedule(source["sync_schedule"]).interval_hint()
        since = source.get("last_success_at") or source.get("created_at")
        stale = since is not None and now - parse_instant(since) > window
    if source.get("last_sync_status") is None:
        return ("degraded" if stale else "unknown"), stale
    if source.get("last_sync_status") == "error" or stale:
        return "degraded", stale
    return "healthy", stale


class DataSourceService:
    def __init__(
        self,
        repo: DataSourceRepository | None = None,
        sync: SyncRepository | None = None,
        queue: SyncQueue | None = None,
        clock=lambda: datetime.now(UTC),
    ) -> None:
        self.repo = repo or DataSourceRepository()
        self.sync = sync or SyncRepository()
        self.queue = queue or SyncQueue()
        self.clock = clock

    # ---- validation ------------------------------------------------------------------------------

    def _checked(self, source: dict[str, Any]) -> dict[str, Any]:
        try:
            source["connection_config"] = validate_connection_config(source["source_type"], source.get("connection_config") or {})
        except ConnectionConfigError as exc:
            raise _config_error(exc) from None
        if source.get("sync_schedule") is not None:
            from fhir_platform.connector.schedule import validate_schedule_expr

            try:
                validate_schedule_expr(source["sync_schedule"])
            except ValueError as exc:
                raise _schedule_error(str(exc)) from None
        if source.get("sync_strategy") == "scheduled" and not source.get("sync_schedule"):
            raise _schedule_error("required when sync_strategy is 'scheduled'")
        return source

    def _check_outbound(self, ws: str, source: dict[str, Any]) -> None:
        """At most one active source per workspace writes a resource type back (docs/connector.md,
        Outbound): a platform-created resource then has exactly one EHR to go to. One Query."""
        types = set(outbound_types(source))
        if not types:
            return
        taken: dict[str, str] = {}
        for other in self.repo.list_all(ws):
            if other["id"] != source["id"]:
                for rt in types.intersection(outbound_types(other)):
                    taken.setdefault(rt, other["id"])
        if taken:
            msg = "already written back by another active data source of this workspace: " + ", ".join(
                f"{rt} ({ds})" for rt, ds in sorted(taken.items())
            )
            raise Unprocessable(
                f"Invalid connection_config: outbound.resource_types {msg}",
                details=[{"loc": ["body", "connection_config", "outbound", "resource_types"], "msg": msg, "type": "value_error"}],
            )

    # ---- CRUD ------------------------------------------------------------------------------------

    def create(self, ws: str, fields: dict[str, Any]) -> dict[str, Any]:
        now = self.clock()
        source = {
            "id": str(uuid.uuid4()),
            "workspace_id": ws,
            "display_name": None,
            "connection_config": {},
            "entity_types": [],
            "field_mappings": {},
            "sync_strategy": "manual",
            "sync_schedule": None,
            "is_active": True,
            "last_sync_at": None,
            "last_sync_status": None,
            "last_sync_event_count": 0,
            "type_last_queued": {},
            "created_at": iso(now),
            "updated_at": iso(now),
            **fields,
        }
        source = self._checked(source)
        self._check_outbound(ws, source)
        source["due_at"] = compute_due(source, now)
        return self.repo.create(source)

    def get(self, ws: str, ds: str) -> dict[str, Any]:
        return self.repo.get(ws, ds)

    def list(
        self, ws: str, *, is_active: bool | None, source_types: list[str] | None, search: str | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int, bool]:
        """Newest first; filters over the workspace's (bounded) set of sources."""
        items = self.repo.list_all(ws)
        now = self.clock()
        if is_active is not None:
            items = [i for i in items if bool(i.get("is_active")) == is_active]
        if source_types:
            items = [i for i in items if i.get("source_type") in set(source_types)]
        if search:
            needle = search.casefold()
            items = [i for i in items if any(needle in str(v).casefold() for v in _searchable(i, now))]
        items.sort(key=lambda i: (i.get("created_at", ""), i["id"]), reverse=True)
        return items[offset : offset + limit], len(items), offset + limit < len(items)

    def update(self, ws: str, ds: str, changes: dict[str, Any]) -> dict[str, Any]:
        current = self.repo.get(ws, ds)
        merged = self._checked({**current, **changes})
        self._check_outbound(ws, merged)
        merged["updated_at"] = iso(self.clock())
        new_due = compute_due(merged, self.clock())
        settable = {k: merged[k] for k in (*changes, "updated_at", "connection_config")}
        return self.repo.update(ws, ds, settable, current.get("due_at"), new_due)

    def delete(self, ws: str, ds: str) -> None:
        current = self.repo.get(ws, ds)
        self.repo.delete(ws, ds, current.get("due_at"))

    # ---- status, history, trigger ----------------------------------------------------------------

    def status(self, ws: str, ds: str) -> dict[str, Any]:
        source = self.repo.get(ws, ds)
        state, _ = health(source, self.clock())
        return {**source, "health_status": state, **self.sync.totals(ws, ds)}

    def history(self, ws: str, ds: str, days: int) -> dict[str, Any]:
        source = self.repo.get(ws, ds)
        today = self.clock().date()
        first = today - timedelta(days=days - 1)
        counted = self.sync.days(ws, ds, first.isoformat(), today.isoformat())
        timeline = []
        for n in range(days):
            day: date = first + timedelta(days=n)
            c = counted.get(day.isoformat(), {"event_count": 0, "synced_count": 0, "failed_count": 0})
            timeline.append({"date": day.isoformat(), **c})
        return {"source": source, "timeline": timeline, "recent_failures": self.sync.recent_failures(ws, ds)}

    def trigger(self, ws: str, ds: str) -> dict[str, Any]:
        source = self.repo.get(ws, ds)
        if not is_fhir(source):
            raise InvalidInput(f"Data source {ds} is a {source['source_type']} source; only FHIR sources can be synced")
        if not source.get("is_active"):
            raise InvalidInput(f"Data source {ds} is inactive; activate it (PATCH is_active=true) to sync")
        now = self.clock()
        states = self.sync.states(ws, ds)
        for state in states.values():
            if state.get("lease_expires_at") and parse_instant(state["lease_expires_at"]) > now:
                last = max(states.values(), key=lambda s: s.get("poll_started_at") or "")
                raise SyncInProgress(last.get("poll_started_at"), last.get("last_poll_duration_ms"))
        cfg = parse_fhir_config(source["connection_config"])
        self.queue.send(ws, ds, list(cfg.resource_types), reason="manual", requested_at=iso(now))
        return {"status": "started", "data_source_id": ds, "triggered_at": iso(now)}


def _searchable(source: dict[str, Any], now: datetime) -> list[Any]:
    """What ``search`` matches: name, display name, id, type, and sync status."""
    state, _ = health(source, now)
    return [
        source.get("name"),
        source.get("display_name"),
        source["id"],
        source.get("source_type"),
        source.get("last_sync_status"),
        state,
    ]


def fhir_sources_summary(sources: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """``/fhir/status``'s connector fields from the workspace's FHIR sources."""
    fhir = [s for s in sources if is_fhir(s) and s.get("is_active")]
    if not fhir:
        return {"last_poll_at": None, "sync_healthy": None, "connector_type": None}
    polled = [s["last_sync_at"] for s in fhir if s.get("last_sync_at")]
    states = [health(s, now)[0] for s in fhir]
    return {
        "last_poll_at": max(polled) if polled else None,
        "sync_healthy": None if all(st == "unknown" for st in states) else all(st != "degraded" for st in states),
        "connector_type": fhir[0]["source_type"],
    }
