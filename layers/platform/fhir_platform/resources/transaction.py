"""All-or-nothing writes of several resources (FHIR ``transaction`` Bundles): every change —
creates, updates, deletes — prepared against the current versions read in one BatchGetItem, then
committed in **one** DynamoDB TransactWriteItems, each resource conditioned on the version read, so
either every entry is written or none is (a concurrent writer cancels the whole transaction; it is
re-read and retried, then 409 with nothing written).

The bound is DynamoDB's: 100 items per TransactWriteItems. A resource write costs its CURRENT item,
its event, its index item changes (a create puts ~5-25, a delete removes as many), a new entity for
a new Patient, plus one counter update per transaction and up to 5 items per patient compartment
touched; :class:`~fhir_platform.storage.resources.TransactionTooLarge` (raised before anything is
written) says a set of changes does not fit, and the caller decides what to do.
"""

from __future__ import annotations

from typing import Any

from fhir_platform.errors import NotFound
from fhir_platform.resources.service import MAX_WRITE_ATTEMPTS, ResourceService, WriteContext, WriteOutcome, _busy
from fhir_platform.storage.resources import ResourceChange, VersionConflict
from fhir_platform.world.entities import DeterministicResolver, patient_reference

__all__ = ["commit_atomically"]

# (resource type, id, data) to write, or (resource type, id, None) to delete
Op = tuple[str, str, "dict[str, Any] | None"]


def commit_atomically(service: ResourceService, ws: str, ops: list[Op], ctx: WriteContext) -> list[WriteOutcome]:
    """Write and delete ``ops`` in one transaction; one :class:`WriteOutcome` per op, in order
    (``changed`` False: identical content, or already deleted — nothing to write for it).
    :class:`NotFound` for a delete of a resource never written; ``TransactionTooLarge`` when the
    changes do not fit one TransactWriteItems; :class:`~fhir_platform.errors.Conflict` (409) when
    concurrent writers win every attempt. Nothing is written in any of those cases."""
    store = service.store
    refs = [(rt, rid) for rt, rid, _ in ops]
    for attempt in range(MAX_WRITE_ATTEMPTS):
        previous = store.batch_get(ws, refs)
        in_bundle = {rid for rt, rid, data in ops if rt == "Patient" and data is not None}
        patients = {pid for _, _, data in ops if data is not None and (pid := patient_reference(data))} - in_bundle
        known = {pid: s.entity_id for (_, pid), s in store.batch_get(ws, [("Patient", p) for p in patients]).items()}
        resolver = DeterministicResolver(lambda _ws, pid: known.get(pid))
        outcomes: list[WriteOutcome | None] = [None] * len(ops)
        changes: list[tuple[int, ResourceChange, bool]] = []
        # Patients first, so their compartment resources in the same Bundle find their entity
        for index in sorted(range(len(ops)), key=lambda i: ops[i][0] != "Patient"):
            rt, rid, data = ops[index]
            prior = previous.get((rt, rid))
            if data is None:
                if prior is None:
                    raise NotFound(f"{rt}/{rid} not found (nothing was written)")
                if prior.deleted:
                    outcomes[index] = WriteOutcome(prior, created=False, changed=False)
                    continue
                change = service.prepare_delete(ws, prior, ctx)
            else:
                change = service.prepare(ws, rt, rid, data, prior, ctx, resolver=resolver)
                if change is None:
                    outcomes[index] = WriteOutcome(prior, created=False, changed=False)  # type: ignore[arg-type]
                    continue
                if rt == "Patient" and change.link.entity_id:
                    known[rid] = change.link.entity_id
            changes.append((index, change, prior is None or change.revives))
        if changes:
            batch = [c for _, c, _ in changes]
            try:
                store.commit_atomic(batch, service._touches(ws, batch))
            except VersionConflict:  # a compartment touch or a resource moved: re-read everything and retry
                if attempt == MAX_WRITE_ATTEMPTS - 1:
                    rt, rid, _ = ops[changes[0][0]]
                    raise _busy(rt, rid) from None
                continue
        for index, change, created in changes:
            outcomes[index] = WriteOutcome(service._stored(change), created=created and not change.deleted, changed=True)
        return outcomes  # type: ignore[return-value]
    raise AssertionError("unreachable")
