"""FHIR resource use cases: create, read, update (upsert), history. The rules live here; storage
details live in ``fhir_platform.storage.resources``.

Write flow (one resource): validate with the type's R4B model → assign/check the id → set
``meta.versionId``/``meta.lastUpdated`` → hash the content (unchanged content is not a new
version) → field-level diff against the current version → entity link via the
:class:`~fhir_platform.world.entities.EntityResolver` → index entries → one atomic commit
conditioned on the version read. A lost race is retried from a fresh read (no ``If-Match``) or
reported as 412 (``If-Match`` given), so no update is ever lost silently.

Delete (:meth:`ResourceService.delete`; the EHR connector records deletes the EHR reports): a new
version whose event is ``deleted`` (with the last data), ``CURRENT`` marked deleted, every index
item removed, counters decremented, in the same kind of version-conditioned commit. A deleted
resource reads as :class:`~fhir_platform.errors.Gone` (410) while its history still answers; a
later write to its id re-creates it (see ``fhir_platform.storage.resources``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable

from fhir_platform.clock import now_iso
from fhir_platform.errors import Conflict, Gone, InvalidInput, NotFound, PreconditionFailed, Unprocessable
from fhir_platform.fhir.changes import content_hash, fields_affected
from fhir_platform.fhir.resource_types import ID_PATTERN, is_storable
from fhir_platform.fhir.validation import FhirValidationError, UnknownResourceTypeError, validate_resource
from fhir_platform.observability import count
from fhir_platform.storage.resources import (
    CompartmentConflict,
    CompartmentTouches,
    ResourceChange,
    ResourceStore,
    StoredResource,
    VersionConflict,
)
from fhir_platform.world.entities import ENTITY_TYPES, DeterministicResolver, EntityLink, EntityResolver, patient_reference

_DIRECTORY_TYPES = ("Practitioner", "Organization", "Location")  # world.resolution.DIRECTORY_TYPES (not imported: lazy)

Indexer = Callable[..., list[dict[str, Any]]]
MAX_WRITE_ATTEMPTS = 5

# The write path's search helpers (index items, compartment touches, timeline: fhir_platform.search)
# are imported by the first write, inside the methods that build changes: the functions that only
# read through this service (GET, history, vread, the import splitter, the sync scheduler) never
# need them, and importing them costs ~25 ms of every such function's cold start
# (tests/template/test_operations.py keeps them out of those functions' imports).


def _index_items(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    from fhir_platform.search.indexing import index_items

    return index_items(*args, **kwargs)


@dataclass(frozen=True)
class WriteContext:
    """Provenance recorded on the event."""

    source: str = "api"
    source_system: str | None = None
    data_source_id: str | None = None
    synced_at: str | None = None
    sync_error: str | None = None
    effective_at: str | None = None  # when the change happened at its source (defaults to now)
    source_version: str | None = None  # the source system's own meta.versionId (EHR sync: for outbound If-Match)


@dataclass
class WriteOutcome:
    resource: StoredResource
    created: bool  # a new resource (first version)
    changed: bool  # a new version was written (False: identical content, nothing written)


@dataclass
class BatchWrite:
    """What happened to one resource of a batch: created, updated, or skipped (identical)."""

    resource_type: str
    resource_id: str
    outcome: str
    entity_id: str | None
    entity_created: bool


@dataclass
class HistoryPage:
    entries: list[dict[str, Any]]
    total: int
    has_more: bool
    next_offset: int | None


def check_resource_type(resource_type: str) -> None:
    if not is_storable(resource_type):
        raise InvalidInput(
            f"Unknown or unsupported FHIR resource type {resource_type!r}",
            details=[{"loc": ["path", "resource_type"], "msg": "unknown resource type", "type": "value_error"}],
        )


def check_resource_id(resource_id: str) -> None:
    import re

    if not re.match(ID_PATTERN, resource_id):
        raise InvalidInput(
            "Resource id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'",
            details=[{"loc": ["path", "resource_id"], "msg": "invalid FHIR id", "type": "value_error"}],
        )


class ResourceService:
    def __init__(
        self,
        store: ResourceStore | None = None,
        resolver: EntityResolver | None = None,
        indexer: Indexer | None = None,
        clock: Callable[[], str] = now_iso,
    ) -> None:
        self.store = store or ResourceStore()
        self.resolver = resolver or default_resolver(self.store)
        self.indexer = indexer or _index_items
        self.clock = clock

    # ---- reads -------------------------------------------------------------------------------

    def read(self, ws: str, resource_type: str, resource_id: str) -> StoredResource:
        """The current version; :class:`NotFound` if the id was never written, :class:`Gone` if it
        was deleted (its history still answers)."""
        found = self._current(ws, resource_type, resource_id)
        if found.deleted:
            raise Gone(f"{resource_type}/{resource_id} was deleted (its history is still available)")
        return found

    def _current(self, ws: str, resource_type: str, resource_id: str) -> StoredResource:
        check_resource_type(resource_type)
        found = self.store.get(ws, resource_type, resource_id)
        if not found:
            raise NotFound(f"{resource_type}/{resource_id} not found")
        return found

    def history(self, ws: str, resource_type: str, resource_id: str, limit: int, offset: int) -> HistoryPage:
        """Newest first; a deleted resource's history too (its delete event on top, current)."""
        current = self._current(ws, resource_type, resource_id)
        newest = current.version - offset
        if newest < 1:
            return HistoryPage([], current.version, False, None)
        oldest = max(1, newest - limit + 1)
        events = self.store.events(ws, resource_type, resource_id, newest, oldest)
        for event in events:
            event["is_current"] = event["version"] == current.version
        has_more = oldest > 1
        return HistoryPage(events, current.version, has_more, offset + len(events) if has_more else None)

    # ---- writes ------------------------------------------------------------------------------

    def create(self, ws: str, resource_type: str, data: dict[str, Any], ctx: WriteContext = WriteContext()) -> WriteOutcome:
        """POST: the server assigns the id (a client-supplied ``id`` is ignored, as FHIR specifies)."""
        self._validate(data, resource_type)
        data = {**data, "id": str(uuid.uuid4())}
        return self._write(ws, resource_type, data["id"], data, ctx, if_match=None)

    def upsert(
        self,
        ws: str,
        resource_type: str,
        resource_id: str,
        data: dict[str, Any],
        ctx: WriteContext = WriteContext(),
        if_match: int | None = None,
    ) -> WriteOutcome:
        """PUT: update, or create with the client's id when it is new."""
        check_resource_id(resource_id)
        self._validate(data, resource_type)
        body_id = data.get("id")
        if body_id is not None and body_id != resource_id:
            raise Unprocessable(
                f"Body id {body_id!r} does not match the URL id {resource_id!r}",
                details=[{"loc": ["body", "data", "id"], "msg": "id does not match the URL", "type": "value_error"}],
            )
        return self._write(ws, resource_type, resource_id, {**data, "id": resource_id}, ctx, if_match)

    def _validate(self, data: Any, resource_type: str) -> None:
        check_resource_type(resource_type)
        try:
            validate_resource(data, expected_type=resource_type)
        except UnknownResourceTypeError as exc:
            raise InvalidInput(str(exc)) from None
        except FhirValidationError as exc:
            raise Unprocessable(
                f"Invalid {resource_type} resource: {exc}",
                details=[
                    {"loc": ["body", "data", *_path(p.loc)], "msg": p.msg, "type": p.type} for p in exc.problems
                ],
            ) from None

    def _write(
        self, ws: str, rt: str, rid: str, data: dict[str, Any], ctx: WriteContext, if_match: int | None
    ) -> WriteOutcome:
        for attempt in range(MAX_WRITE_ATTEMPTS):
            previous = self.store.get(ws, rt, rid)
            if if_match is not None and (previous is None or previous.deleted or previous.version != if_match):
                raise PreconditionFailed(
                    f"If-Match version {if_match} is not the current version"
                    + (
                        " (the resource does not exist)"
                        if previous is None
                        else " (the resource was deleted)"
                        if previous.deleted
                        else f" ({previous.version})"
                    )
                )
            change = self.prepare(ws, rt, rid, data, previous, ctx)
            if change is None:
                return WriteOutcome(previous, created=False, changed=False)  # type: ignore[arg-type]
            try:
                self.store.commit(change, self._touches(ws, [change]))
            except CompartmentConflict:
                if attempt == MAX_WRITE_ATTEMPTS - 1:
                    raise _busy(rt, rid) from None
                continue
            except VersionConflict:
                if if_match is not None:
                    raise PreconditionFailed("The resource was changed by another writer; re-read and retry") from None
                if attempt == MAX_WRITE_ATTEMPTS - 1:
                    raise _busy(rt, rid) from None
                continue
            count("ResourcesWritten")
            return WriteOutcome(self._stored(change), created=previous is None or change.revives, changed=True)
        raise AssertionError("unreachable")

    def delete(self, ws: str, rt: str, rid: str, ctx: WriteContext = WriteContext()) -> WriteOutcome | None:
        """Record that ``rt/rid`` was deleted: a new version with a ``deleted`` event (keeping the
        last data; ``effective_at`` from ``ctx``, e.g. when the EHR deleted it), ``CURRENT`` marked
        deleted, its index items removed and its counters decremented, in one transaction
        conditioned on the version read (a lost race is re-read and retried). ``None`` when there
        is nothing to delete (never written, or already deleted)."""
        check_resource_type(rt)
        for attempt in range(MAX_WRITE_ATTEMPTS):
            previous = self.store.get(ws, rt, rid)
            if previous is None or previous.deleted:
                return None
            change = self.prepare_delete(ws, previous, ctx)
            try:
                self.store.commit(change, self._touches(ws, [change]))
            except VersionConflict:  # CompartmentConflict included: re-read and retry
                if attempt == MAX_WRITE_ATTEMPTS - 1:
                    raise _busy(rt, rid) from None
                continue
            return WriteOutcome(self._stored(change), created=False, changed=True)
        raise AssertionError("unreachable")

    def prepare_delete(self, ws: str, previous: StoredResource, ctx: WriteContext) -> ResourceChange:
        """The change that deletes ``previous`` (the current, not deleted, version)."""
        from fhir_platform.search.parameters import compartment_patient_ids
        from fhir_platform.search.timeline import domain_of, event_uuid, timeline_patients

        rt, rid = previous.resource_type, previous.resource_id
        now = self.clock()
        old_index = self._index_of(ws, previous, previous.created_at)
        link = EntityLink(previous.entity_id, previous.confidence)
        forget = getattr(self.resolver, "forget", None) if rt in ENTITY_TYPES else None
        if forget:  # no longer a matching candidate (its entity membership and history stay)
            link = forget(ws, rt, rid, previous.entity_id, previous.confidence)
        return ResourceChange(
            workspace_id=ws,
            resource_type=rt,
            resource_id=rid,
            version=previous.version + 1,
            data=previous.data,
            content_hash=previous.content_hash,
            created_at=previous.created_at,
            last_updated=now,
            link=link,
            previous_version=previous.version,
            event={
                "event_id": event_uuid(ws, rt, rid, previous.version + 1),
                "event_type": "deleted",
                "source": ctx.source,
                "source_system": ctx.source_system,
                "data_source_id": ctx.data_source_id,
                "confidence": previous.confidence,
                "effective_at": ctx.effective_at or now,
                "created_at": now,
                "synced_at": ctx.synced_at,
                "sync_error": ctx.sync_error,
                **({"source_version": ctx.source_version} if ctx.source_version else {}),
                "fields_affected": [],
            },
            index_put=[],
            index_delete=[{"PK": it["PK"], "SK": it["SK"]} for it in old_index],
            touches=compartment_patient_ids(rt, previous.data),
            previous_data_source_id=previous.data_source_id,
            deleted=True,
            timeline={pid: -1 for pid in timeline_patients(rt, previous.data)},
            timeline_domain=domain_of(rt),
            extra_ops=list(link.ops),
        )

    def write_many(
        self,
        ws: str,
        entries: list[tuple[str, str, dict[str, Any]]],
        ctx: WriteContext,
        *,
        dedup: bool = True,
        contexts: list[WriteContext] | None = None,
    ) -> list[BatchWrite]:
        """Write already-validated resources ``(type, id, data)`` in order, with few DynamoDB calls:
        the current versions, the stored Patients referenced and the compartment touch items in
        shared BatchGetItems (100 keys each), the world model's reads for the whole batch, and
        changes packed several per transaction (:meth:`ResourceStore.commit_many`). Each resource is still
        all-or-nothing and version-conditioned; a lost race is re-read and retried.
        ``dedup=False`` writes a new version even when the content is identical. ``contexts``, when
        given, is one provenance per entry (EHR sync: each resource's own ``effective_at``)."""
        from fhir_platform.search.indexing import touch_key
        from fhir_platform.search.parameters import compartment_patient_ids

        # one read for the batch (BatchGetItem, 100 keys per call): its resources' current versions,
        # the stored Patients it references (their entities), the touch items of the compartments it
        # writes in (those of the new data; an update's old patients are read after, if others)
        refs = [(rt, rid) for rt, rid, _ in entries]
        patient_ids = {pid for _, _, data in entries if (pid := patient_reference(data))}
        in_batch = {rid for rt, rid, _ in entries if rt == "Patient"}
        compartments = list(dict.fromkeys(pid for rt, _, data in entries for pid in compartment_patient_ids(rt, data)))
        found, items = self.store.batch_read(
            ws, refs + [("Patient", p) for p in sorted(patient_ids - in_batch)], [touch_key(ws, pid) for pid in compartments]
        )
        previous = {ref: found[ref] for ref in refs if ref in found}
        known = {pid: stored.entity_id for (rt, pid), stored in found.items() if rt == "Patient" and pid in patient_ids and pid not in in_batch}
        touch_items = {pid: items.get((k["PK"], k["SK"])) for pid in compartments for k in [touch_key(ws, pid)]}
        session = getattr(self.resolver, "session", None)
        resolver: EntityResolver = (
            session(patient_entity=lambda _ws, pid: known.get(pid)) if session else DeterministicResolver(lambda _ws, pid: known.get(pid))
        )
        # the directory records this batch will resolve (new or changed): their keys read together
        digests: dict[int, str] = {}
        prefetch = getattr(resolver, "prefetch", None)
        if prefetch is not None:
            resolving, stored_records = [], []  # entity records to resolve; stored ones among them
            for index, (rt, rid, data) in enumerate(entries):
                if rt in ENTITY_TYPES:
                    prior = previous.get((rt, rid))
                    digests[index] = content_hash(data)
                    if not dedup or prior is None or prior.deleted or prior.content_hash != digests[index]:
                        resolving.append((rt, data))
                        if prior is not None and not prior.deleted:
                            stored_records.append((rt, rid))
            if resolving or stored_records:
                prefetch(ws, resolving, stored_records)
        results: list[BatchWrite] = []
        pending: list[tuple[int, ResourceChange]] = []
        for index, (rt, rid, data) in enumerate(entries):
            prior = previous.get((rt, rid))
            change = self.prepare(
                ws, rt, rid, data, prior, contexts[index] if contexts else ctx, resolver=resolver, force=not dedup, digest=digests.get(index)
            )
            if change is None:
                results.append(BatchWrite(rt, rid, "skipped", prior.entity_id if prior else None, False))
                continue
            if rt == "Patient" and change.link.entity_id:
                known[rid] = change.link.entity_id
            previous[(rt, rid)] = self._stored(change)
            pending.append((index, change))
            results.append(
                BatchWrite(rt, rid, "created" if prior is None or change.revives else "updated", change.link.entity_id, change.new_entity or change.link.entity_created)
            )
        changes = [c for _, c in pending]
        lost = {id(c) for c in self.store.commit_many(changes, self._touches(ws, changes, touch_items))}
        count("ResourcesWritten", len(changes) - len(lost))  # the lost ones count when _write redoes them
        for index, change in pending:
            if id(change) in lost:  # a concurrent writer won: redo this one through the single path
                rt, rid, data = entries[index]
                outcome = self._write(ws, rt, rid, data, contexts[index] if contexts else ctx, if_match=None)
                # the winner may have written this very content: then nothing was written here (skipped)
                done = "skipped" if not outcome.changed else "created" if outcome.created else "updated"
                results[index] = BatchWrite(rt, rid, done, outcome.resource.entity_id, outcome.changed and outcome.created and rt == "Patient" and not change.revives)
        refresh = getattr(self.resolver, "refresh_if_due", None)
        if refresh and any(rt == "Patient" for rt, _, _ in entries):
            # amortised: a counter read at most once per settings TTL unless this environment's
            # batches created enough Patients to reach the threshold; an estimation only when due
            refresh(ws, created=sum(1 for r in results if r.resource_type == "Patient" and r.outcome == "created"))
        return results

    def prepare(
        self,
        ws: str,
        rt: str,
        rid: str,
        data: dict[str, Any],
        previous: StoredResource | None,
        ctx: WriteContext,
        *,
        resolver: EntityResolver | None = None,
        force: bool = False,
        digest: str | None = None,
    ) -> ResourceChange | None:
        """Build the change for ``data`` over ``previous``; ``None`` when the content is unchanged
        (unless ``force``). Shared by single writes and the import pipeline."""
        from fhir_platform.search.indexing import diff_index_items
        from fhir_platform.search.parameters import Extraction, compartment_patient_ids
        from fhir_platform.search.timeline import domain_of, event_uuid, timeline_patients

        digest = digest or content_hash(data)
        revives = previous is not None and previous.deleted  # a write re-creating a deleted resource
        if previous is not None and not revives and previous.content_hash == digest and not force:
            return None
        now = self.clock()
        version = (previous.version if previous else 0) + 1
        # a new top level and meta; nested values are shared with ``data`` (neither is mutated later:
        # the write path only reads resources, and the caller hands ``data`` over)
        stored = {**data, "meta": {**(data.get("meta") or {}), "versionId": str(version), "lastUpdated": now}}
        link = (resolver or self.resolver).resolve(ws, rt, rid, stored)
        created_at = previous.created_at if previous and not revives else now
        ex = Extraction(stored)  # the new version's search values, read once (index items, compartments, timeline)
        new_index = self.indexer(
            ws, rt, rid, stored, entity_id=link.entity_id, last_updated=now, created_at=created_at, data_source_id=ctx.data_source_id,
            **({"extraction": ex} if self.indexer is _index_items else {}),
        )
        old_index = (
            self._index_of(ws, previous, created_at)
            if previous and not revives  # a deleted resource has no index items left
            else []
        )
        index_put, index_delete = diff_index_items(old_index, new_index)
        live_previous = previous is not None and not revives
        old_patients = compartment_patient_ids(rt, previous.data) if live_previous else []  # type: ignore[union-attr]
        old_timeline = timeline_patients(rt, previous.data) if live_previous else []  # type: ignore[union-attr]
        return ResourceChange(
            workspace_id=ws,
            resource_type=rt,
            resource_id=rid,
            version=version,
            data=stored,
            content_hash=digest,
            created_at=created_at,
            last_updated=now,
            link=link,
            previous_version=previous.version if previous else None,
            event={
                "event_id": event_uuid(ws, rt, rid, version),
                "event_type": "created" if previous is None or revives else "updated",
                "source": ctx.source,
                "source_system": ctx.source_system,
                "data_source_id": ctx.data_source_id,
                "confidence": link.confidence,
                "effective_at": ctx.effective_at or now,
                "created_at": now,
                "synced_at": ctx.synced_at,
                "sync_error": ctx.sync_error,
                **({"source_version": ctx.source_version} if ctx.source_version else {}),
                "fields_affected": fields_affected(previous.data if previous and not revives else None, stored),
            },
            index_put=index_put,
            index_delete=index_delete,
            new_entity=link.owns_entity and previous is None,
            extra_ops=list(link.ops),
            extra_counters=dict(link.counters),
            # the old version's patients too: a resource moving to another patient leaves the old one's timeline
            touches=list(dict.fromkeys(compartment_patient_ids(rt, stored, ex) + old_patients)),
            previous_data_source_id=previous.data_source_id if previous else None,
            revives=revives,
            timeline=_timeline_moves(old_timeline, timeline_patients(rt, stored, ex)),
            timeline_domain=domain_of(rt),
        )

    def _touches(self, ws: str, changes: list[ResourceChange], read: dict[str, dict | None] | None = None) -> CompartmentTouches:
        """The touch items of every patient these changes are in: those in ``read`` (patient id →
        item or ``None``, read with the batch), the others in one BatchGetItem."""
        from fhir_platform.search.indexing import KEEP, compartment_touch, touch_key

        read = read or {}
        patients = {pid for c in changes for pid in c.touches}
        missing = [pid for pid in patients if pid not in read]
        found = self.store.get_items([touch_key(ws, pid) for pid in missing]) if missing else {}
        previous = {pid: read[pid] if pid in read else found.get((k["PK"], k["SK"])) for pid in patients for k in [touch_key(ws, pid)]}

        def ops(
            ws_: str,
            pid: str,
            event_time: str,
            prev: dict | None,
            entity_id: str | None,
            count: int,
            own: ResourceChange | None,
            timeline: dict[str, int],
        ) -> list[dict]:
            source = own.data_source_id if own is not None else KEEP  # only the Patient's own write sets its source
            return compartment_touch(
                ws_,
                pid,
                event_time=event_time,
                previous=prev,
                entity_id=entity_id,
                count=count,
                source=source,
                deleted=own is not None and own.deleted,
                timeline=timeline,
            )

        return CompartmentTouches(ws, previous, ops)

    def _index_of(self, ws: str, stored: StoredResource, created_at: str) -> list[dict[str, Any]]:
        """The index items a stored version has (to diff a new version against, or to delete)."""
        return self.indexer(
            ws,
            stored.resource_type,
            stored.resource_id,
            stored.data,
            entity_id=stored.entity_id,
            last_updated=stored.last_updated,
            created_at=created_at,
            data_source_id=stored.data_source_id,
        )

    @staticmethod
    def _stored(change: ResourceChange) -> StoredResource:
        return StoredResource(
            resource_type=change.resource_type,
            resource_id=change.resource_id,
            version=change.version,
            data=change.data,
            entity_id=change.link.entity_id,
            confidence=change.link.confidence,
            content_hash=change.content_hash,
            created_at=change.created_at,
            last_updated=change.last_updated,
            data_source_id=change.data_source_id,
            deleted=change.deleted,
        )


def default_resolver(store: ResourceStore) -> EntityResolver:
    """World-model resolution over the store's table (Patients probabilistic; Practitioner,
    Organization, Location by identifier then name + address; compartment resources their
    patient's anchor). Built on first use: functions that only read never import the matching
    libraries (rapidfuzz, jellyfish) at cold start."""
    return _LazyWorldResolver(store)


class _LazyWorldResolver:
    def __init__(self, store: ResourceStore) -> None:
        self._store = store
        self._world: Any = None

    def _get(self) -> Any:
        if self._world is None:
            from fhir_platform.storage.entities import EntityStore
            from fhir_platform.world.refresh import RefreshingWorldResolver

            store = self._store
            self._world = RefreshingWorldResolver(EntityStore(store._table), store, lambda ws, pid: store.entity_of(ws, "Patient", pid))
        return self._world

    def resolve(self, workspace_id: str, resource_type: str, resource_id: str, data: dict[str, Any]) -> EntityLink:
        return self._get().resolve(workspace_id, resource_type, resource_id, data)

    def __getattr__(self, name: str) -> Any:  # session, settings, match_patient, refresh_if_due
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._get(), name)


def _timeline_moves(before: list[str], after: list[str]) -> dict[str, int]:
    """+1 for each patient the resource joins the timeline of, -1 for each it leaves."""
    moves = {pid: 1 for pid in after if pid not in before}
    moves.update({pid: -1 for pid in before if pid not in after})
    return moves


def _busy(rt: str, rid: str) -> Conflict:
    """Lost the race to concurrent writers on every attempt: 409, the client may retry."""
    return Conflict(
        f"{rt}/{rid} is being written concurrently by other requests; nothing was written, retry",
        details=[{"loc": ["path", "resource_id"], "msg": "concurrent writes", "type": "conflict"}],
    )


def _path(loc: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in loc.split(".") if p]
