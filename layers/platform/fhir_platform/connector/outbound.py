"""Outbound sync: platform changes written back to the EHR from the table's change stream.

The ``outbound_sync`` function receives the stream's inserts of resource events (``SK`` ``V#…``,
``source`` not ``ehr_sync``: the template's filter) and hands them here. For each event, in stream
order (docs/connector.md, Outbound):

1. Which EHR: the workspace's active FHIR source whose ``outbound`` is enabled for the type (at most
   one per type: refused at configuration time). An event the source itself synced in
   (``source`` ``ehr_sync``) is skipped: no echo. Deletes are not written back.
2. Idempotency: a conditional marker item per (event, source) (``OUT#{version}#{ds}``); a
   redelivered event whose marker is ``done`` (or ``conflict``) changes nothing.
3. The resource's EHR link (``EHR#{ds}``: EHR id and the version last seen). Linked →
   ``PUT {base}/{Type}/{ehr_id}`` with ``If-Match: W/"{ehr_version}"``. Not linked and created on
   the platform (its first version did not come from an inbound sync) → ``POST {base}/{Type}``;
   the EHR's id is linked both ways, so later updates go to it and the next inbound poll writes the
   EHR's copy to the platform's resource. Not linked and synced in from another source → skipped;
   synced in from this one before links existed → an outbound failure (no version to match).
4. The EHR's answer goes on the event (``synced_at``, ``ehr_version``, ``ehr_last_updated``,
   ``ehr_id``; ``sync_error`` removed), the link and the marker: one transaction. The event's data
   stays as it was.
5. 409/412: the EHR is re-read. The same content (a PUT whose response was lost and whose retry
   found its own write) is success; anything else is a conflict: an outbound sync failure with the
   EHR's current version, ``sync_error`` on the event, nothing overwritten; the next inbound poll
   brings the EHR's version in. Other EHR errors (after the client's retries) are outbound sync
   failures too, and the record is reported failed so the stream retries it (then the on-failure
   queue); the records after it in the batch are reported too, so changes reach the EHR in order.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Callable

from boto3.dynamodb.types import TypeDeserializer

from fhir_platform.connector.config import FhirConnectionConfig, parse_fhir_config
from fhir_platform.connector.ids import references, rewrite_references
from fhir_platform.connector.inbound import SOURCE, default_client_factory
from fhir_platform.connector.sources import iso, outbound_types
from fhir_platform.fhir.changes import content_hash
from fhir_platform.observability import count, logger
from fhir_platform.storage import keys
from fhir_platform.storage.data_sources import DataSourceRepository
from fhir_platform.storage.resources import ResourceStore
from fhir_platform.storage.sync import SyncRepository

LEASE_SECONDS = 120  # a delivery that dies mid-write leaves its marker claimable after this
_deserializer = TypeDeserializer()


class OutboundRetry(Exception):
    """The change did not reach the EHR and should be retried by the stream (message is PHI-free)."""


@dataclass
class BatchOutcome:
    failed: list[str] = field(default_factory=list)  # sequence numbers reported as batch item failures
    outcomes: Counter[str] = field(default_factory=Counter)  # written | created | skipped | duplicate | conflict | failed


class OutboundWriter:
    def __init__(
        self,
        *,
        sources: DataSourceRepository | None = None,
        sync: SyncRepository | None = None,
        store: ResourceStore | None = None,
        client_factory: Callable[[FhirConnectionConfig], Any] = default_client_factory,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sources = sources or DataSourceRepository()
        self.sync = sync or SyncRepository()
        self.store = store or ResourceStore()
        self.client_factory = client_factory
        self.clock = clock
        self._clients: dict[tuple[str, str], Any] = {}

    # ---- a batch of stream records ----------------------------------------------------------------

    def handle(self, records: list[dict[str, Any]]) -> BatchOutcome:
        result = BatchOutcome()
        targets: dict[str, list[dict[str, Any]]] = {}  # per workspace, read once per batch
        counts: Counter[tuple[str, str, str, str]] = Counter()  # (ws, ds, day, synced|failed)
        try:
            for index, record in enumerate(records):
                event = _event(record)
                if event is None:
                    result.outcomes["skipped"] += 1
                    continue
                ws = event["PK"].split("#")[1]
                if ws not in targets:
                    targets[ws] = [s for s in self.sources.list_all(ws) if outbound_types(s)]
                try:
                    for source in targets[ws]:
                        if event["resource_type"] in outbound_types(source):
                            outcome = self._write(ws, source, event, counts)
                            result.outcomes[outcome] += 1
                except OutboundRetry as exc:
                    result.outcomes["failed"] += 1
                    logger.warning("outbound change not written; the stream retries it", extra={"error": str(exc)})
                    result.failed = [r["dynamodb"]["SequenceNumber"] for r in records[index:]]
                    break
        finally:
            for (ws, ds, day, kind), n in counts.items():
                self.sync.count(ws, ds, day, **{kind: n})
            count("OutboundWrites", sum(n for k, n in result.outcomes.items() if k in ("written", "created")))
            count("SyncFailures", result.outcomes["failed"] + result.outcomes["conflict"])
        return result

    # ---- one event, one source ---------------------------------------------------------------------

    def _write(self, ws: str, source: dict[str, Any], event: dict[str, Any], counts: Counter) -> str:
        from fhir_platform.connector.http import EhrConflict, EhrError

        ds = source["id"]
        rt, rid, version = event["resource_type"], event["resource_id"], int(event["version"])
        if event.get("source") == SOURCE and event.get("data_source_id") == ds:
            return "skipped"  # this source's own inbound sync: never echoed back
        link = self.sync.ehr_link(ws, ds, rt, rid)
        if link is None:
            first = self._first_version(event)
            if first.get("source") == SOURCE and first.get("data_source_id") != ds:
                return "skipped"  # another source's resource: it has no id in this EHR
            if first.get("source") == SOURCE:  # synced in from here before links were recorded
                now = iso(self.clock())
                self._fail(ws, ds, event, now, "no EHR version is known for this resource (not linked yet): not written", final="unlinked")
                counts[(ws, ds, now[:10], "failed")] += 1
                return "failed"
        method = "PUT" if link else "POST"
        state, marker = self.sync.claim_outbound(ws, rt, rid, version, ds, event["event_id"], method, self.clock(), LEASE_SECONDS)
        if state == "done":
            return "duplicate"
        if state == "busy":
            raise OutboundRetry(f"{rt} version {version}: another delivery is writing it")
        now = iso(self.clock())
        day = now[:10]
        if marker.get("state") == "pending" and marker.get("method") == "POST":
            # an earlier delivery died after sending a create: the EHR may hold it; never create twice
            self._fail(ws, ds, event, now, "a create may have reached the EHR before the writer stopped; not repeated", final="uncertain")
            counts[(ws, ds, day, "failed")] += 1
            return "failed"
        client = self._client(source)
        data = self.store.load_data(event)
        refs = references(data) - {(rt, rid)}
        if refs:  # references to resources the EHR knows under its own ids
            data = rewrite_references(data, self.sync.ehr_refs(ws, ds, sorted(refs)))
        try:
            sent = _outgoing(data, link["ehr_id"] if link else None)
            if link:
                answer = client.update(rt, link["ehr_id"], sent, if_match=link.get("ehr_version"))
                ehr_id = link["ehr_id"]
            else:
                answer = client.create(rt, sent)
                ehr_id = answer.id
                if not ehr_id:
                    raise OutboundRetry(f"{rt} version {version}: the EHR's create answer named no id")
            ehr_version, ehr_updated = answer.version_id, answer.last_updated
        except EhrConflict as exc:
            current = self._reread(client, rt, link["ehr_id"]) if link else None
            if current is not None and _same_content(current, sent):
                ehr_id, ehr_version = link["ehr_id"], (current.get("meta") or {}).get("versionId")
                ehr_updated = (current.get("meta") or {}).get("lastUpdated")
            else:
                ehr_current = (current or {}).get("meta", {}).get("versionId") if current else exc.current_version
                message = f"conflict: the EHR changed {rt} since version {link.get('ehr_version') if link else None} (now {ehr_current}); not overwritten"
                self._fail(ws, ds, event, now, message, final="conflict", extra={"ehr_version": ehr_current})
                counts[(ws, ds, day, "failed")] += 1
                return "conflict"
        except (EhrError, OutboundRetry) as exc:
            message = f"{type(exc).__name__}: {exc}"[:1000]
            self._fail(ws, ds, event, now, message, final="failed")
            counts[(ws, ds, day, "failed")] += 1
            raise OutboundRetry(message) from None
        ops = [
            {
                "Update": {
                    "TableName": self.sync.table.name,
                    "Key": {"PK": event["PK"], "SK": event["SK"]},
                    "UpdateExpression": "SET synced_at = :now, ehr_id = :eid, ehr_data_source_id = :ds"
                    + (", ehr_version = :v" if ehr_version else "")
                    + (", ehr_last_updated = :lu" if ehr_updated else "")
                    + " REMOVE sync_error",
                    "ConditionExpression": "attribute_exists(PK)",
                    "ExpressionAttributeValues": {
                        ":now": now, ":eid": ehr_id, ":ds": ds,
                        **({":v": ehr_version} if ehr_version else {}),
                        **({":lu": ehr_updated} if ehr_updated else {}),
                    },
                }
            },
            {"Put": {"TableName": self.sync.table.name, "Item": self.sync.link_item(ws, ds, rt, rid, ehr_id, ehr_version, ehr_updated, now)}},
            self.sync.outbound_marker_op(ws, rt, rid, version, ds, "done", {"ehr_id": ehr_id, "finished_at": now}),
        ]
        if ehr_id != rid:
            ops.append({"Put": {"TableName": self.sync.table.name, "Item": self.sync.reverse_item(ws, ds, rt, rid, ehr_id)}})
        self.sync.transact(ops)
        open_failures = self.sync.open_failures(ws, ds, "outbound", rt, [rid])
        if open_failures:
            self.sync.resolve(ws, open_failures, now)
        counts[(ws, ds, day, "synced")] += 1
        return "written" if link else "created"

    def _client(self, source: dict[str, Any]) -> Any:
        """One EHR client per source and configuration, kept while the execution environment lives
        (connection reuse); a changed configuration gets a new one."""
        key = (source["id"], json.dumps(source["connection_config"], sort_keys=True))
        client = self._clients.get(key)
        if client is None:
            self._clients = {k: c for k, c in self._clients.items() if k[0] != source["id"]}
            client = self._clients[key] = self.client_factory(parse_fhir_config(source["connection_config"]))
        return client

    def _first_version(self, event: dict[str, Any]) -> dict[str, Any]:
        """``source``/``data_source_id`` of the resource's first version (this event, or one GetItem)."""
        if int(event["version"]) == 1:
            return event
        return self.store.table.get_item(
            Key={"PK": event["PK"], "SK": keys.version_sk(1)},
            ProjectionExpression="#s, data_source_id",
            ExpressionAttributeNames={"#s": "source"},
        ).get("Item") or {}

    def _reread(self, client: Any, rt: str, ehr_id: str) -> dict[str, Any] | None:
        from fhir_platform.connector.http import EhrError

        try:
            return client.read(rt, ehr_id)
        except EhrError:
            return None

    def _fail(self, ws: str, ds: str, event: dict[str, Any], now: str, message: str, *, final: str | None, extra: dict[str, Any] | None = None) -> None:
        """An outbound sync failure, ``sync_error`` on the event and (``final``) the marker's state."""
        rt, rid, version = event["resource_type"], event["resource_id"], int(event["version"])
        self.sync.record_failure(
            ws, ds, "outbound", rt, rid, message, now, extra={"version": version, "event_id": event["event_id"], **(extra or {})}
        )
        ops: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.sync.table.name,
                    "Key": {"PK": event["PK"], "SK": event["SK"]},
                    "UpdateExpression": "SET sync_error = :e",
                    "ConditionExpression": "attribute_exists(PK)",
                    "ExpressionAttributeValues": {":e": message},
                }
            }
        ]
        if final is not None:
            ops.append(self.sync.outbound_marker_op(ws, rt, rid, version, ds, final, {"finished_at": now}))
        self.sync.transact(ops)
        logger.warning("outbound change failed", extra={"data_source_id": ds, "resource_type": rt, "state": final})


def _event(record: dict[str, Any]) -> dict[str, Any] | None:
    """The resource event a stream record inserted, or ``None`` for anything else (the template's
    filter already drops those; this is the code-side check)."""
    dynamodb = record.get("dynamodb") or {}
    if record.get("eventName") != "INSERT" or not str(((dynamodb.get("Keys") or {}).get("SK") or {}).get("S", "")).startswith("V#"):
        return None
    image = {k: _deserializer.deserialize(v) for k, v in (dynamodb.get("NewImage") or {}).items()}
    if image.get("source") == SOURCE or image.get("event_type") not in ("created", "updated"):
        return None
    return image


def _outgoing(data: dict[str, Any], ehr_id: str | None) -> dict[str, Any]:
    """The platform's version as sent to the EHR: the EHR's id (none for a create) and without the
    platform's ``meta.versionId``/``lastUpdated`` (the EHR assigns its own)."""
    out = copy.deepcopy(data)
    out.pop("id", None)
    if ehr_id:
        out = {"resourceType": out["resourceType"], "id": ehr_id, **{k: v for k, v in out.items() if k != "resourceType"}}
    meta = {k: v for k, v in (out.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out


def _same_content(ehr_copy: dict[str, Any], sent: dict[str, Any]) -> bool:
    """The EHR holds exactly what was sent (the content hash ignores ``versionId``/``lastUpdated``)."""
    return content_hash({**ehr_copy, "id": sent.get("id")}) == content_hash(sent)
