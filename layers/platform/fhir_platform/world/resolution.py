"""Write-time entity resolution over the stored world (docs/entities.md, "Resolution flow").

:class:`WorldResolver` is the :class:`~fhir_platform.world.entities.EntityResolver` of every write
path (API writes, imports, EHR sync). For a Patient, record at a time:

1. features (:func:`~fhir_platform.world.features.patient_features`) and blocking keys
   (:func:`~fhir_platform.world.blocking.blocking_keys`, ≤ 14);
2. where the record sits now — only for a resource that is not new (``meta.versionId`` > 1):
   its link item, current entity and that entity's META (``EntityStore.current_link``), and the
   entities it must never be linked with (``NOT#`` items);
3. candidates: the members of its non-saturated keys (features stored on the blocking items, so no
   resource is read), plus the records written earlier in the same batch, and their current
   entities (aliases);
4. :func:`~fhir_platform.world.resolver.decide` with the workspace's thresholds and parameters;
5. the decision as transaction operations returned on the :class:`EntityLink` (``ops``,
   ``counters``), which the resource change commits in its own transaction.

The ``entity_id`` stored on the resource stays its **anchor** (``anchor_entity_id``); the current
entity is the alias' target. Practitioner, Organization and Location resolve the same way with
:func:`directory_features` and a deterministic rule (identifier, then normalised name + address).

Everything DynamoDB is behind the ``store`` argument (``storage.entities.EntityStore``); this module
imports no AWS SDK.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from fhir_platform.search.normalize import words
from fhir_platform.world.blocking import MAX_MEMBERS_PER_KEY, blocking_keys
from fhir_platform.world.entities import ENTITY_TYPES, CurrentLink, EntityLink, anchor_entity_id, compartment_link
from fhir_platform.world.features import PatientFeatures, normalize_address_line, normalize_postal_code, patient_features
from fhir_platform.world.model import Parameters, default_parameters
from fhir_platform.world.resolver import Candidate, Decision, Thresholds, decide, score_candidates

__all__ = ["DIRECTORY_TYPES", "WorldResolver", "WorldSettings", "directory_features", "directory_keys"]

DIRECTORY_TYPES = ("Practitioner", "Organization", "Location")
DIRECTORY_IDENTIFIER_CONFIDENCE = 0.99
NAME_ADDRESS_CONFIDENCE = 0.95
SETTINGS_TTL_SECONDS = 60.0  # thresholds / parameters cached per execution environment
REFRESH_FIRST = 100  # first estimation when the workspace holds this many Patients
REFRESH_GROWTH = 3  # then every time the Patient count has grown three-fold
_MAX_DIRECTORY_IDENTIFIERS = 3
_NEW_ENTITY_NS = uuid.UUID("3d1f4c2e-8a5b-4f7e-9b1a-2c6d8e0f4a77")
_CANDIDATE_NS = uuid.UUID("9e2b7c41-5d3a-4c8f-a1e6-7b0d2f9c3e58")


@dataclass(frozen=True)
class WorldSettings:
    thresholds: Thresholds = field(default_factory=Thresholds)
    params: Parameters = field(default_factory=default_parameters)
    estimated_records: int = 0  # Patients the stored parameters were estimated from (0: priors)
    next_refresh_at: int = REFRESH_FIRST
    # every Patient blocking key has a presence item (a workspace created with ``WORLD#PATIENT_KEYS``):
    # Patients Query only their keys in use, as directory records do
    patient_presence: bool = False


def settings_from(thresholds: dict[str, Any] | None, params_item: dict[str, Any] | None) -> WorldSettings:
    """Settings from the workspace's ``world_thresholds`` and its ``WORLD#PARAMS`` item."""
    t = Thresholds()
    if thresholds:
        t = Thresholds(
            link=float(thresholds.get("link", t.link)),
            review=float(thresholds.get("review", t.review)),
            identity_guard=bool(thresholds.get("identity_guard", t.identity_guard)),
        )
    if params_item and params_item.get("params"):
        return WorldSettings(
            t, Parameters.from_json(params_item["params"]), int(params_item.get("records") or 0), int(params_item.get("next_refresh_at") or REFRESH_FIRST)
        )
    return WorldSettings(t)


# ---- directory resources (Practitioner, Organization, Location) ---------------------------------


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return " ".join(words(value)) or None


def _directory_name(rt: str, data: dict[str, Any]) -> str | None:
    if rt == "Practitioner":
        for name in data.get("name") or []:
            if not isinstance(name, dict):
                continue
            family = _text(name.get("family"))
            given = [g for g in (_text(x) for x in name.get("given") or []) if g]
            if family:
                return " ".join([*given[:1], family])
            if _text(name.get("text")):
                return _text(name.get("text"))
        return None
    return _text(data.get("name"))


def _directory_address(rt: str, data: dict[str, Any]) -> str | None:
    raw = data.get("address")
    addresses = [raw] if isinstance(raw, dict) else [a for a in raw or [] if isinstance(a, dict)]
    for a in addresses:
        lines = [x for x in a.get("line") or [] if isinstance(x, str)]
        line = normalize_address_line(" ".join(lines)) if lines else None
        place = normalize_postal_code(a.get("postalCode")) or _text(a.get("city"))
        if line and place:
            return f"{line}|{place}"
    return None


def directory_features(rt: str, data: dict[str, Any]) -> dict[str, Any]:
    """A Practitioner's / Organization's / Location's comparison fields: identifiers with a
    system (``system|value``, value trimmed and casefolded, NPI first), the name normalised like
    Patient names (a Practitioner's first given name + family name), and the first address with a
    street line and a postal code (else city), street words abbreviated as for Patients."""
    idents: list[str] = []
    for ident in data.get("identifier") or []:
        if not isinstance(ident, dict) or ident.get("use") == "old":
            continue
        system, value = ident.get("system"), ident.get("value")
        if isinstance(system, str) and system.strip() and isinstance(value, str) and value.strip():
            key = f"{system.strip()}|{value.strip().casefold()}"
            if key not in idents:
                idents.append(key)
    idents.sort(key=lambda k: not k.startswith("http://hl7.org/fhir/sid/us-npi|"))  # stable: NPI first
    return {"identifiers": idents, "name": _directory_name(rt, data), "address": _directory_address(rt, data)}


def directory_keys(f: dict[str, Any]) -> list[str]:
    """``id:{system|value}`` per identifier (first three) and ``na:{name}|{line}|{place}`` when both
    a name and an address are known."""
    keys = [f"id:{i}" for i in f["identifiers"][:_MAX_DIRECTORY_IDENTIFIERS]]
    if f.get("name") and f.get("address"):
        keys.append(f"na:{f['name']}|{f['address']}")
    return keys


def _decide_directory(f: dict[str, Any], cands: list[tuple[str, str, dict[str, Any]]]) -> Decision:
    """Identifier first (same ``system|value``), then exact normalised name + address; else new.
    ``cands`` = (record id, entity id, features)."""
    mine = set(f["identifiers"])
    for rid, eid, g in cands:
        shared = sorted(mine & set(g.get("identifiers") or []))
        if shared:
            ev = ({"field": "identifier", "level": "exact", "weight": None, "value": shared[0].split("|", 1)[0]},)
            return Decision("link", eid, DIRECTORY_IDENTIFIER_CONFIDENCE, "identifier", ev, rid, "same identifier")  # type: ignore[arg-type]
    for rid, eid, g in cands:
        if f.get("name") and f.get("address") and (g.get("name"), g.get("address")) == (f["name"], f["address"]):
            ev = ({"field": "name", "level": "exact", "weight": None}, {"field": "address", "level": "exact", "weight": None})
            return Decision("link", eid, NAME_ADDRESS_CONFIDENCE, "name_address", ev, rid, "same normalised name and address")  # type: ignore[arg-type]
    return Decision("new", None, 0.0, None, (), None, "no identifier or name + address in common")


# ---- the resolver -------------------------------------------------------------------------------


@dataclass
class _Batch:
    """What the batch's earlier records changed, so later records see them before they commit."""

    links: dict[str, CurrentLink] = field(default_factory=dict)  # "Type/id" -> state
    members: dict[tuple[str, str], dict[str, tuple[str, dict[str, Any]]]] = field(default_factory=dict)  # (etype, key) -> rid -> (anchor, features)
    removed: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    entity_of_anchor: dict[str, str] = field(default_factory=dict)
    entities: dict[str, dict[str, Any]] = field(default_factory=dict)  # eid -> {"member_count", "status"}
    taken_ids: set[str] = field(default_factory=set)
    resolved_patients: int = 0
    # directory keys: (etype, key) -> "stored" (its presence item exists: Query it), "batch" (first
    # put by this batch: its members are in ``members``), "" (never used: nothing to read)
    key_use: dict[tuple[str, str], str] = field(default_factory=dict)
    # "Type/id" -> where a stored record sat when the batch began (read for the whole batch by
    # ``prefetch``; used once, by the record's first resolution in the batch)
    stored_links: dict[str, CurrentLink] = field(default_factory=dict)


@dataclass
class ResolveStats:
    calls: int = 0  # DynamoDB calls made by resolution (reads; the writes ride on the resource's transaction)
    candidates: int = 0


class WorldResolver:
    """Probabilistic (Patients) and rule-based (directory types) resolution over ``store``.

    ``patient_entity(ws, patient_id)`` gives a stored Patient's anchor for compartment resources
    (as the deterministic resolver did). :meth:`session` returns a resolver whose records see
    each other (one import batch or bundle); :meth:`resolve` alone is a fresh session per record.
    """

    def __init__(self, store: Any, patient_entity: Callable[[str, str], str | None], clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._patient_entity = patient_entity
        self._clock = clock
        self._settings: dict[str, tuple[float, WorldSettings]] = {}
        self.stats = ResolveStats()

    # ---- settings ------------------------------------------------------------------------------

    def settings(self, ws: str) -> WorldSettings:
        cached = self._settings.get(ws)
        now = self._clock()
        if cached and now - cached[0] < SETTINGS_TTL_SECONDS:
            return cached[1]
        thresholds, params, *presence = self.store.world_settings(ws)
        self.stats.calls += 1
        out = settings_from(thresholds, params)
        if presence and presence[0]:
            out = replace(out, patient_presence=True)
        self._settings[ws] = (now, out)
        return out

    def forget_settings(self, ws: str) -> None:
        self._settings.pop(ws, None)

    # ---- EntityResolver ----------------------------------------------------------------------

    def resolve(self, workspace_id: str, resource_type: str, resource_id: str, data: dict[str, Any]) -> EntityLink:
        return self.session().resolve(workspace_id, resource_type, resource_id, data)

    def forget(self, ws: str, rt: str, rid: str, entity_id: str | None, confidence: float | None) -> EntityLink:
        """A deleted member: its blocking members go (it is no longer proposed as a candidate) and
        its link forgets its keys; the membership, entity and history stay, and a later write that
        re-creates the resource re-resolves it."""
        anchor = anchor_entity_id(ws, rt, rid)
        cl = self.store.current_link(ws, rt, rid, anchor)
        self.stats.calls += 1 + (1 if cl.alias else 0)
        if cl.link is None:
            return EntityLink(entity_id, confidence)
        etype = ENTITY_TYPES[rt]
        ops = [self.store.ops.delete_member(ws, etype, key, rt, rid) for key in cl.link.get("blocking_keys") or []]
        ops.append(self.store.ops.put_link(ws, cl.entity_id, rt, rid, **_link_args({**cl.link, "blocking_keys": []})))
        return EntityLink(entity_id, confidence, etype, ops=tuple(ops), current_entity_id=cl.entity_id)

    def session(self, patient_entity: Callable[[str, str], str | None] | None = None) -> "ResolutionSession":
        return ResolutionSession(self, patient_entity or self._patient_entity)

    # ---- $match --------------------------------------------------------------------------------

    def match_patient(self, ws: str, data: dict[str, Any], count: int) -> list[dict[str, Any]]:
        """Ranked candidate entities for a Patient that is not stored (nothing written): blocking
        members → current entities → scores; each entity once, at its best record."""
        settings = self.settings(ws)
        f = patient_features(data)
        read = self.store.blocking_members(ws, "patient", blocking_keys(f))
        self.stats.calls += read.calls
        anchors = self.store.current_entities(ws, [m.anchor_id for m in read.members]) if read.members else {}
        self.stats.calls += 1 if read.members else 0
        cands = [Candidate(m.record_id, anchors[m.anchor_id], PatientFeatures.from_dict(m.features)) for m in read.members]
        ranked = score_candidates(f, cands, settings.params)
        out = []
        for s in ranked[:count]:
            confidence = s.probability
            if s.identifier_link:
                confidence = max(confidence, 0.99)
            out.append(
                {
                    "entity_id": s.entity_id,
                    "confidence": round(confidence, 6),
                    "grade": _grade(confidence, settings.thresholds, s.contradicted and not s.shared_identifier),
                    "evidence": [e.to_dict() for e in s.evidence],
                }
            )
        out.sort(key=lambda c: -c["confidence"])
        return out


def _grade(confidence: float, t: Thresholds, contradicted: bool = False) -> str:
    if contradicted:
        return "certainly-not" if confidence < t.review else "possible"
    return "certain" if confidence >= t.link else "probable" if confidence >= t.review else "possible"


class ResolutionSession:
    """One batch's resolver: the records it resolves see each other (in memory) before commit."""

    def __init__(self, world: WorldResolver, patient_entity: Callable[[str, str], str | None]) -> None:
        self.world = world
        self.store = world.store
        self._patient_entity = patient_entity
        self.batch = _Batch()

    def resolve(self, workspace_id: str, resource_type: str, resource_id: str, data: dict[str, Any]) -> EntityLink:
        if resource_type in ENTITY_TYPES:
            return self._resolve_member(workspace_id, resource_type, resource_id, data)
        return compartment_link(self._patient_entity, workspace_id, data)

    def prefetch(self, ws: str, entries: list[tuple[str, dict[str, Any]]], stored: list[tuple[str, str]] | None = None) -> None:
        """Read, for every directory record (Practitioner, Organization, Location) about to be
        resolved in this batch, which of its keys are in use: one BatchGetItem per 100 keys for
        the whole batch instead of a Query per key and record (docs/entities.md); and where the
        ``stored`` records (``(type, id)``: entity records already stored, about to be
        re-resolved) sit now — one BatchGetItem per 33 records instead of one per record."""
        wanted = [
            (ENTITY_TYPES[rt], key)
            for rt, data in entries
            if rt in DIRECTORY_TYPES
            for key in directory_keys(directory_features(rt, data))
        ]
        if any(rt == "Patient" for rt, _ in entries) and self.world.settings(ws).patient_presence:
            wanted += [(ENTITY_TYPES[rt], key) for rt, data in entries if rt == "Patient" for key in blocking_keys(patient_features(data))]
        self._read_key_use(ws, wanted)
        b = self.batch
        records = list(dict.fromkeys((rt, rid) for rt, rid in stored or () if f"{rt}/{rid}" not in b.links and f"{rt}/{rid}" not in b.stored_links))
        if records and hasattr(self.store, "current_links"):
            found = self.store.current_links(ws, [(rt, rid, anchor_entity_id(ws, rt, rid)) for rt, rid in records])
            self.world.stats.calls += (3 * len(records) + 99) // 100 + (2 * sum(1 for cl in found.values() if cl.alias) + 99) // 100
            b.stored_links.update(found)

    def _read_key_use(self, ws: str, wanted: list[tuple[str, str]]) -> None:
        b = self.batch
        unknown = list(dict.fromkeys(k for k in wanted if k not in b.key_use))
        if not unknown:
            return
        present = self.store.keys_in_use(ws, unknown)
        self.world.stats.calls += (len(unknown) + 99) // 100
        for k in unknown:
            b.key_use[k] = "stored" if k in present else ""

    # ---- members -------------------------------------------------------------------------------

    def _resolve_member(self, ws: str, rt: str, rid: str, data: dict[str, Any]) -> EntityLink:
        world, b = self.world, self.batch
        etype = ENTITY_TYPES[rt]
        record = f"{rt}/{rid}"
        anchor = anchor_entity_id(ws, rt, rid)
        meta = data.get("meta") or {}
        at = meta.get("lastUpdated") or ""
        version = str(meta.get("versionId") or "1")
        if rt == "Patient":
            pf = patient_features(data)
            features, keys = pf.to_dict(), blocking_keys(pf)
            settings = world.settings(ws)
        else:
            features = directory_features(rt, data)
            keys = directory_keys(features)
            settings = None

        prior = b.links.get(record)
        if prior is None and version != "1":  # not new: where does it sit now?
            cl = b.stored_links.pop(record, None)  # read with the batch's other stored records
            if cl is None:
                cl = self.store.current_link(ws, rt, rid, anchor)
                world.stats.calls += 1 + (1 if cl.alias else 0)
            prior = cl
            if b.entities.get(cl.entity_id):
                prior.entity = {**(prior.entity or {}), **b.entities[cl.entity_id]}
        if prior is not None and prior.link is None and prior.entity is None and not prior.anchor_entity_exists and not prior.alias:
            prior = None  # a resource that was never linked (e.g. written before it had entities)
        if settings is None and prior is not None and _unchanged(prior, features, keys):
            # a directory record whose identifiers, name and address did not change: the rule would
            # decide what it decided (its candidates are the same keys' members), so nothing moves
            # and no entity item is rewritten
            b.links[record] = prior
            b.entity_of_anchor[anchor] = prior.entity_id
            return EntityLink(anchor, _f(prior.link.get("confidence"), 1.0), etype, ("unchanged",), current_entity_id=prior.entity_id)  # type: ignore[union-attr]

        # candidates: stored members of the non-saturated keys, plus this batch's. A directory key
        # (a Patient key, in a workspace whose Patient keys have presence items) whose presence
        # item is absent has no stored members: not queried.
        query_keys = keys
        if settings is None or settings.patient_presence:
            self._read_key_use(ws, [(etype, k) for k in keys])
            query_keys = [k for k in keys if b.key_use[(etype, k)] == "stored"]
        read = self.store.blocking_members(ws, etype, query_keys)
        world.stats.calls += read.calls
        saturated = set(read.saturated)
        stored = {m.record_id: m for m in read.members}
        members: dict[str, tuple[str, dict[str, Any]]] = {}
        for key in keys:
            if key in saturated:
                continue
            gone = b.removed.get((etype, key), set())
            ids = [r for r in read.per_key.get(key, ()) if r not in gone]
            extra = b.members.get((etype, key), {})
            if len(set(ids) | set(extra)) > MAX_MEMBERS_PER_KEY:
                saturated.add(key)
                continue
            for r in ids:
                members.setdefault(r, (stored[r].anchor_id, stored[r].features))
            members.update(extra)  # the batch's version of a record wins over the stored one
        members.pop(record, None)
        unknown = [a for a, _ in members.values() if a not in b.entity_of_anchor]
        current = self.store.current_entities(ws, unknown) if unknown else {}
        world.stats.calls += (len(set(unknown)) + 99) // 100
        current.update({a: e for a, e in b.entity_of_anchor.items()})
        world.stats.candidates += len(members)

        if prior is not None and prior.pinned:
            decision: Decision | None = None
        else:
            exclude: set[str] = set()
            if prior is not None and prior.link is not None:
                exclude = self.store.not_together(ws, prior.entity_id)
                world.stats.calls += 1
            exclude |= {e for e, s in b.entities.items() if s.get("status") == "merged"}
            if rt == "Patient":
                cands = [Candidate(r, current.get(a, a), PatientFeatures.from_dict(f)) for r, (a, f) in members.items()]
                decision = decide(pf, cands, settings.params, settings.thresholds, exclude_entities=exclude)  # type: ignore[union-attr]
            else:
                cands_d = [(r, current.get(a, a), f) for r, (a, f) in members.items() if current.get(a, a) not in exclude]
                decision = _decide_directory(features, cands_d)
        return self._apply(ws, rt, rid, etype, anchor, at, version, data, features, keys, saturated, prior, decision, settings)

    def _apply(
        self,
        ws: str,
        rt: str,
        rid: str,
        etype: str,
        anchor: str,
        at: str,
        version: str,
        data: dict[str, Any],
        features: dict[str, Any],
        keys: list[str],
        saturated: set[str],
        prior: CurrentLink | None,
        decision: Decision | None,
        settings: WorldSettings | None,
    ) -> EntityLink:
        ops_b = self.store.ops
        b = self.batch
        record = f"{rt}/{rid}"
        refs = [{"resource_type": rt, "resource_id": rid}]
        ops: list[dict[str, Any]] = []
        counters: dict[str, int] = {}
        display = _display_name(rt, data)

        # blocking members: current keys put (features refreshed), keys it no longer has deleted
        old_keys = list((prior.link or {}).get("blocking_keys") or []) if prior else []
        for key in keys:
            if key not in saturated:
                ops.append(ops_b.put_member(ws, etype, key, rt, rid, anchor, features))
                if b.key_use.get((etype, key)) == "":  # its first member: the key is in use from now on
                    ops.append(ops_b.put_key_in_use(ws, etype, key))
                    b.key_use[(etype, key)] = "batch"
        for key in old_keys:
            if key not in keys:
                ops.append(ops_b.delete_member(ws, etype, key, rt, rid))

        if decision is None:  # pinned: stays where a person put it; only its features and keys move on
            assert prior is not None and prior.link is not None
            link = {**prior.link, "features": features, "blocking_keys": keys}
            ops.append(ops_b.put_link(ws, prior.entity_id, rt, rid, **_link_args(link)))
            self._remember(etype, record, keys, old_keys, saturated, anchor, features, replace(prior, link=link))
            return EntityLink(anchor, _f(prior.link.get("confidence"), 1.0), etype, ("pinned",), ops=tuple(ops), current_entity_id=prior.entity_id)

        evidence = [_evidence(e) for e in decision.evidence]
        legacy = prior is not None and prior.link is None  # linked before entity items existed: its own anchor entity
        sole = prior is not None and (legacy or prior.member_count <= 1)
        if decision.outcome == "link" and decision.entity_id:
            target, method, confidence = decision.entity_id, decision.method or "probabilistic", decision.confidence
        elif prior is not None and sole:
            target, method, confidence = prior.entity_id, "probabilistic", 1.0  # stays its own entity
        else:
            target, method, confidence = self._new_entity_id(anchor, prior, version), "probabilistic", 1.0
        moved = prior is None or target != prior.entity_id
        creates = moved and (decision.outcome != "link" or not decision.entity_id)
        proposed = None
        reason = {"decision": decision.outcome, "confidence": round(decision.confidence, 6), "method": decision.method, "reason": decision.reason, "evidence": evidence}
        if decision.matched_record_id:
            mt, _, mid = decision.matched_record_id.partition("/")
            reason["matched"] = {"resource_type": mt, "resource_id": mid}

        if decision.outcome == "review" and decision.entity_id:
            proposed = decision.entity_id
            if not (prior and prior.link and prior.link.get("proposed") == decision.entity_id):
                cid = str(uuid.uuid5(_CANDIDATE_NS, f"{ws}/{record}/{decision.entity_id}/{at}"))
                assert settings is not None
                ops += ops_b.open_candidate(
                    ws, cid, at, entity_id=target, other_entity_id=decision.entity_id, resources=refs,
                    confidence=decision.confidence, grade=_grade(decision.confidence, settings.thresholds), evidence=evidence, reason=decision.reason,
                )
        link = {
            "anchor_id": anchor,
            "confidence": confidence,
            "method": method,
            "evidence": evidence if decision.outcome == "link" else [],
            "linked_at": at if moved else (prior.link or {}).get("linked_at", at),  # type: ignore[union-attr]
            "linked_by": "system",
            "pinned": False,
            "features": features,
            "blocking_keys": keys,
            "proposed": proposed,
        }
        ops.append(ops_b.put_link(ws, target, rt, rid, **_link_args(link)))

        entity_state = b.entities
        if moved and prior is not None:
            if legacy:
                # the deterministic resolver's anchor META: replaced by a merged (or fresh) META
                if target != prior.entity_id:
                    ops.append(ops_b.replace_entity(ws, prior.entity_id, etype, None, at, member_count=0, merged_into=target))
                    counters["entity_count"] = counters.get("entity_count", 0) - 1
                    counters[f"et_{etype}"] = counters.get(f"et_{etype}", 0) - 1
                    entity_state[prior.entity_id] = {"member_count": 0, "status": "merged"}
            else:
                ops.append(ops_b.delete_link(ws, prior.entity_id, rt, rid))
                n = prior.member_count
                dissolves = n <= 1
                ops.append(ops_b.remove_member(ws, prior.entity_id, at, n, merged_into=target if dissolves else None))
                ops.append(ops_b.event(ws, prior.entity_id, "unlinked", at, resources=refs, other_entity_id=target, reason=reason, event_id=_event_id(ws, prior.entity_id, "unlinked", record, at)))
                if dissolves:
                    counters["entity_count"] = counters.get("entity_count", 0) - 1
                    counters[f"et_{etype}"] = counters.get(f"et_{etype}", 0) - 1
                entity_state[prior.entity_id] = {"member_count": max(n - 1, 0), "status": "merged" if dissolves else "active"}
        if moved:
            if creates:
                ops.append(ops_b.create_entity(ws, target, etype, display, at))
                ops.append(ops_b.event(ws, target, "created", at, resources=refs, reason=reason, event_id=_event_id(ws, target, "created", record, at)))
                counters["entity_count"] = counters.get("entity_count", 0) + 1
                counters[f"et_{etype}"] = counters.get(f"et_{etype}", 0) + 1
                entity_state[target] = {"member_count": 1, "status": "active"}
                b.taken_ids.add(target)
            else:
                ops.append(ops_b.add_member(ws, target, at))
                ops.append(ops_b.event(ws, target, "linked", at, resources=refs, reason=reason, event_id=_event_id(ws, target, "linked", record, at)))
                known = entity_state.get(target)
                entity_state[target] = {"member_count": (known or {}).get("member_count", 1) + 1, "status": "active"}
            had_alias = prior.alias if prior else None
            if target == anchor:
                if had_alias:
                    ops.append(ops_b.delete_alias(ws, anchor))
            elif had_alias != target:
                ops.append(ops_b.put_alias(ws, anchor, target))
        elif legacy:  # stays in its anchor entity: the META gains the fields it lacked
            ops.append(ops_b.replace_entity(ws, target, etype, display, at, member_count=1))
            entity_state[target] = {"member_count": 1, "status": "active"}

        state = CurrentLink(
            anchor, target, None if target == anchor else target, {**link, "entity_id": target},
            entity_state.get(target) or (prior.entity if prior and not moved else None),
            (prior.anchor_entity_exists if prior else False) or target == anchor,
        )
        self._remember(etype, record, keys, old_keys, saturated, anchor, features, state)
        b.entity_of_anchor[anchor] = target
        if rt == "Patient":
            b.resolved_patients += 1
        return EntityLink(
            anchor, confidence, etype, (decision.reason,) if decision.reason else (),
            ops=tuple(ops), counters=tuple(counters.items()), entity_created=creates, current_entity_id=target,
        )

    def _new_entity_id(self, anchor: str, prior: CurrentLink | None, version: str) -> str:
        """The anchor when no entity ever had that id, else a fresh id derived from the version."""
        if not (prior and prior.anchor_entity_exists) and anchor not in self.batch.taken_ids:
            return anchor
        return str(uuid.uuid5(_NEW_ENTITY_NS, f"{anchor}/{version}"))

    def _remember(
        self, etype: str, record: str, keys: list[str], old_keys: list[str], saturated: set[str], anchor: str, features: dict[str, Any], state: CurrentLink
    ) -> None:
        b = self.batch
        for key in keys:
            if key not in saturated:
                b.members.setdefault((etype, key), {})[record] = (anchor, features)
                b.removed.get((etype, key), set()).discard(record)
        for key in old_keys:
            if key not in keys:
                b.members.get((etype, key), {}).pop(record, None)
                b.removed.setdefault((etype, key), set()).add(record)
        b.links[record] = state


def _unchanged(prior: CurrentLink, features: dict[str, Any], keys: list[str]) -> bool:
    """A linked, unpinned directory record with the same features and keys as its link item."""
    link = prior.link
    if link is None or prior.pinned or list(link.get("blocking_keys") or []) != keys:
        return False
    stored = link.get("features")
    if isinstance(stored, str):
        try:
            stored = json.loads(stored)
        except ValueError:
            return False
    return stored == features


def _link_args(link: dict[str, Any]) -> dict[str, Any]:
    return {
        "anchor_id": link["anchor_id"],
        "confidence": _f(link.get("confidence"), 1.0),
        "method": link.get("method") or "probabilistic",
        "evidence": list(link.get("evidence") or []),
        "linked_at": link.get("linked_at") or "",
        "linked_by": link.get("linked_by") or "system",
        "pinned": bool(link.get("pinned")),
        "features": link.get("features"),
        "blocking_keys": list(link.get("blocking_keys") or []),
        "proposed": link.get("proposed"),
    }


def _f(value: Any, default: float) -> float:
    return float(value) if value is not None else default


def _evidence(e: Any) -> dict[str, Any]:
    if isinstance(e, dict):
        return {k: v for k, v in e.items() if v is not None}
    return e.to_dict()


def _event_id(ws: str, eid: str, kind: str, record: str, at: str) -> str:
    return str(uuid.uuid5(_CANDIDATE_NS, f"{ws}/{eid}/{kind}/{record}/{at}"))


def _display_name(rt: str, data: dict[str, Any]) -> str | None:
    if rt in ("Patient", "Practitioner"):
        for name in data.get("name") or []:
            if not isinstance(name, dict):
                continue
            if isinstance(name.get("text"), str) and name["text"].strip():
                return name["text"].strip()
            parts = [g for g in name.get("given") or [] if isinstance(g, str)][:1]
            if isinstance(name.get("family"), str):
                parts.append(name["family"])
            if parts:
                return " ".join(parts)
        return None
    return data.get("name") if isinstance(data.get("name"), str) else None
