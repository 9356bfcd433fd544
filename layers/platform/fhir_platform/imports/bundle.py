"""Bundle preparation: a FHIR Bundle (dict) → resources ready to write + per-entry issues.

Data flow (pure; no AWS)::

    bundle dict ──check_bundle_envelope──▶ type ∈ {transaction, batch, collection, searchset, message}
        │
        ├─ pass 1: entry_meta() per entry (fullUrl, type, id, request, identifiers) → BundleIndex
        │          = identity of every entry (Type/id), fullUrl → Type/id, conditional criteria and
        │            identifier → Type/id, duplicate keys
        └─ pass 2: prepare_entry() per entry → PreparedEntry | ImportIssue | Superseded
                   (id assigned, references rewritten to Type/id, validated)

The synchronous endpoint runs both passes over the parsed body (:func:`prepare_bundle`); the S3
splitter runs pass 1 over ijson events of the object and pass 2 over ijson-parsed entries of a
second read (``fhir_platform.imports.splitter``), with the same :class:`BundleIndex` and
:func:`prepare_entry`, so both paths produce identical resources.

Identity (natural key = workspace + resourceType + id), first rule that applies (:func:`plan_entry`):

1. ``PUT Type/id`` → that id (a different ``resource.id`` is an error);
2. ``resource.id``;
3. an absolute fullUrl ``http(s)://base/Type/id`` → ``id`` (a fullUrl naming another resource
   type is an error; one whose id differs from ``resource.id`` is tolerated and resolves to the
   resource's own id, as in some of HL7's examples);
4. conditional create/update without an id (``POST`` + ``ifNoneExist``, or ``PUT Type?criteria``)
   → ``uuid5(criteria)`` — the same criteria always name the same resource, so re-importing the
   bundle updates rather than duplicates;
5. ``fullUrl`` ``urn:uuid:<uuid>`` → ``<uuid>``; ``urn:oid:<oid>`` → ``<oid>`` (when a valid id);
   any other fullUrl → ``uuid5(fullUrl)``;
6. no id and no fullUrl → ``uuid5(content hash)`` (+ occurrence number for identical copies), so an
   identical re-upload gets the same id and is deduplicated.

References: every string ``reference`` at any depth (contained resources, extensions, …) except
``#local`` ones is looked up, per FHIR's bundle rules: an exact ``fullUrl`` match (``urn:uuid:``,
``urn:oid:``, absolute URL, version suffix ignored); a relative ``Type/id`` is resolved against the
base of the containing entry's absolute fullUrl; a match is rewritten to the target's ``Type/id``.
Conditional references ``Type?identifier=system|value`` are rewritten when exactly one entry of the
bundle is that resource (it carries the identifier, or is a conditional create with the same
criteria); otherwise they are left as they are and listed in
``PreparedEntry.conditional_references`` for the write path (which has an identifier index) to
resolve. A ``urn:uuid:``/``urn:oid:`` reference matching no entry is an error (it would dangle).

Conditional creates (minimal support): ``ifNoneExist`` / ``PUT Type?criteria`` only feed rule 4
and ``PreparedEntry.if_none_exist``; no search is run here. ``GET``/``HEAD``/``DELETE``/``PATCH``
entries are unsupported operations (reported per entry per ``unsupported_resource_policy``; import
never deletes).

Transactions are all-or-nothing: :attr:`PreparedBundle.transaction_failed` is true when any entry
is an error, and then nothing may be written. The same resource twice is an error in a
transaction; in other bundle types the last occurrence wins and earlier ones are ``Superseded``
(counted as skipped). Unsupported entries are skipped, never a transaction failure (the contract:
"'error' skips the resource and adds a per-resource error").
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable

from fhir_platform.errors import InvalidInput

from .common import (
    ContentIds,
    ImportIssue,
    PreparedEntry,
    classify_type,
    conditional_id,
    full_url_id,
    identifier_criteria,
    iter_references,
    normalize_criteria,
    valid_id,
    validation_issue,
)
from .limits import IMPORTABLE_BUNDLE_TYPES
from .summary import ImportSummary

UNSUPPORTED_METHODS = ("GET", "HEAD", "DELETE", "PATCH")
WRITE_METHODS = ("POST", "PUT")

_REST_URL_RE = re.compile(
    r"^(?P<base>https?://.+/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/(?P<ver>[^/]+))?/?$"
)
_REQUEST_PATH_RE = re.compile(r"^(?:.*/)?(?P<type>[A-Z][A-Za-z]+)(?:/(?P<id>[^/]+))?(?:/_history/[^/]+)?/?$")
_AMBIGUOUS = "\x00ambiguous"


class BundleFormatError(InvalidInput):
    """400 "Invalid bundle format.": the body is not an importable Bundle at all. ``detail[].loc``
    names the field of the request's ``bundle`` (``["body", "bundle", <field>]``, as the entries'
    issues do); an S3 import keeps only the message."""

    def __init__(self, message: str, field: str | None = None) -> None:
        msg = message.removeprefix("Invalid bundle format: ")
        loc = ["body", "bundle", *([field] if field else [])]
        super().__init__(message, details=[{"loc": loc, "msg": msg, "type": "value_error"}])


def check_bundle_envelope(bundle: Any) -> str:
    """Validate the Bundle envelope; return its type. Raises :class:`BundleFormatError`."""
    if not isinstance(bundle, dict):
        raise BundleFormatError("Invalid bundle format: the bundle must be a JSON object")
    if bundle.get("resourceType") != "Bundle":
        raise BundleFormatError("Invalid bundle format: resourceType must be 'Bundle'", "resourceType")
    return check_bundle_type(bundle.get("type"), bundle.get("entry", []))


def check_bundle_type(bundle_type: Any, entries: Any = None) -> str:
    if bundle_type not in IMPORTABLE_BUNDLE_TYPES:
        shown = bundle_type if isinstance(bundle_type, str) and len(bundle_type) <= 40 else type(bundle_type).__name__
        raise BundleFormatError(
            f"Invalid bundle format: Bundle.type {shown!r} cannot be imported; "
            f"expected one of {', '.join(IMPORTABLE_BUNDLE_TYPES)}",
            "type",
        )
    if entries is not None and not isinstance(entries, list):
        raise BundleFormatError("Invalid bundle format: Bundle.entry must be an array", "entry")
    return bundle_type


# ---- pass 1: what each entry is --------------------------------------------------------------


@dataclass(slots=True)
class EntryMeta:
    """The small facts about one entry that identity and reference resolution need."""

    index: int
    is_object: bool = True
    full_url: str | None = None
    has_resource: bool = False
    resource_is_object: bool = False
    resource_type: str | None = None
    resource_id: Any = None
    has_request: bool = False
    method: str | None = None
    url: str | None = None
    if_none_exist: str | None = None
    identifiers: list[tuple[str | None, str]] = field(default_factory=list)


def entry_meta(index: int, entry: Any) -> EntryMeta:
    if not isinstance(entry, dict):
        return EntryMeta(index, is_object=False)
    meta = EntryMeta(index)
    fu = entry.get("fullUrl")
    meta.full_url = fu if isinstance(fu, str) and fu else None
    res = entry.get("resource")
    meta.has_resource = res is not None
    if isinstance(res, dict):
        meta.resource_is_object = True
        rt = res.get("resourceType")
        meta.resource_type = sys.intern(rt) if isinstance(rt, str) and 0 < len(rt) <= 64 else (rt if isinstance(rt, str) and rt else None)
        meta.resource_id = res.get("id")
        idents = res.get("identifier")
        for ident in idents if isinstance(idents, list) else ():
            if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                system = ident.get("system")
                meta.identifiers.append((system if isinstance(system, str) else None, ident["value"]))
    req = entry.get("request")
    if isinstance(req, dict):
        meta.has_request = True
        m, u, ine = req.get("method"), req.get("url"), req.get("ifNoneExist")
        meta.method = m.upper() if isinstance(m, str) else None
        meta.url = u if isinstance(u, str) else None
        meta.if_none_exist = ine if isinstance(ine, str) and ine else None
    return meta


@dataclass(slots=True)
class EntryPlan:
    """What pass 2 does with an entry: write it as ``resource_type/resource_id`` (``resource_id``
    ``None`` = assign a content id), or report ``issue``."""

    location: str
    resource_type: str | None = None
    resource_id: str | None = None
    method: str = "PUT"
    criteria: str | None = None  # conditional create/update criteria
    issue: ImportIssue | None = None

    @property
    def key(self) -> str | None:
        if self.issue is None and self.resource_type and self.resource_id:
            return f"{self.resource_type}/{self.resource_id}"
        return None


def location_of(index: int) -> str:
    return f"entry[{index}]"


def plan_entry(meta: EntryMeta, bundle_type: str) -> EntryPlan:
    loc = location_of(meta.index)
    plan = EntryPlan(loc)
    if not meta.is_object:
        plan.issue = ImportIssue(loc, "entry must be a JSON object")
        return plan
    rt = meta.resource_type
    rid_raw = meta.resource_id
    rid_shown = rid_raw if isinstance(rid_raw, str) else None
    uses_request = bundle_type in ("transaction", "batch") and meta.has_request
    method = meta.method if uses_request else None
    url_type = url_id = url_query = None
    if uses_request and meta.url:
        path, _, query = meta.url.partition("?")
        m = _REQUEST_PATH_RE.match(path)
        if m:
            url_type, url_id = m.group("type"), m.group("id")
            url_query = query or None
    if method in UNSUPPORTED_METHODS:
        plan.issue = ImportIssue(
            loc,
            f"request.method {method} is not performed by import (import only creates or updates resources)",
            rt or url_type,
            rid_shown or url_id,
            "unsupported",
        )
        return plan
    if uses_request and method is not None and method not in WRITE_METHODS:
        plan.issue = ImportIssue(loc, "request.method must be one of POST, PUT, GET, HEAD, DELETE, PATCH", rt, rid_shown)
        return plan
    if not meta.has_resource:
        plan.issue = ImportIssue(loc, "entry has no resource", url_type, url_id)
        return plan
    if not meta.resource_is_object:
        plan.issue = ImportIssue(loc, "entry.resource must be a JSON object")
        return plan
    if rt is None:
        plan.issue = ImportIssue(loc, "resourceType is missing", None, rid_shown, "unsupported")
        return plan
    _, unsupported = classify_type({"resourceType": rt})
    if unsupported:
        plan.issue = ImportIssue(loc, unsupported, rt, rid_shown, "unsupported")
        return plan
    plan.resource_type = rt
    if rid_raw is not None and not valid_id(rid_raw):
        plan.issue = ImportIssue(loc, "id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'", rt, None)
        return plan

    # request.url consistency and conditional criteria
    if uses_request and meta.url:
        if url_type is None:
            plan.issue = ImportIssue(loc, "request.url is not a resource URL this import understands", rt, rid_shown)
            return plan
        if url_type != rt:
            plan.issue = ImportIssue(loc, f"request.url names {url_type} but the resource is a {rt}", rt, rid_shown)
            return plan
    if method == "PUT" and url_id is not None:
        if url_query:
            url_id = None
        elif not valid_id(url_id):
            plan.issue = ImportIssue(loc, "request.url id is not a valid FHIR id", rt, rid_shown)
            return plan
        elif rid_raw is not None and rid_raw != url_id:
            plan.issue = ImportIssue(loc, f"resource.id does not match the id in request.url ({url_id})", rt, rid_raw)
            return plan
        else:
            plan.resource_id = url_id
    if method == "PUT" and url_id is None and url_query:
        plan.criteria = url_query
    elif method == "POST" and meta.if_none_exist:
        plan.criteria = meta.if_none_exist
    plan.method = method or "PUT"

    fu = meta.full_url
    rest = _REST_URL_RE.match(fu) if fu else None
    if rest is not None and not rest.group("base"):
        rest = None
    if plan.resource_id is None and rid_raw is not None:
        plan.resource_id = rid_raw
    if plan.resource_id is None and rest is not None:
        plan.resource_id = rest.group("id")
    if plan.resource_id is None and plan.criteria:
        plan.resource_id = conditional_id(rt, plan.criteria)
    if plan.resource_id is None and fu:
        plan.resource_id = id_from_full_url(fu)
    if rest is not None and rest.group("type") != rt:
        plan.issue = ImportIssue(loc, f"fullUrl names a {rest.group('type')} but the resource is a {rt}", rt, plan.resource_id)
    # A RESTful fullUrl whose id differs from resource.id (seen in HL7's own examples) is tolerated:
    # the resource's id is its identity and the fullUrl still resolves to it.
    return plan


def id_from_full_url(full_url: str) -> str:
    """The id an entry without one gets from its fullUrl: ``urn:uuid:<uuid>`` → ``<uuid>``,
    ``urn:oid:<oid>`` → ``<oid>``, ``…/Type/<id>`` → ``<id>``, anything else → ``uuid5(fullUrl)``."""
    for prefix in ("urn:uuid:", "urn:oid:"):
        if full_url.startswith(prefix) and valid_id(full_url[len(prefix):]):
            return full_url[len(prefix):]
    m = _REST_URL_RE.match(full_url)
    if m and m.group("base"):
        return m.group("id")
    return full_url_id(full_url)


def _normal_full_url(full_url: str) -> str:
    i = full_url.find("/_history/")
    return full_url[:i] if i > 0 and full_url.startswith(("http://", "https://")) else full_url


def _tail_id(full_url: str) -> str:
    if full_url.startswith("urn:"):
        return full_url.split(":", 2)[-1]
    return full_url.rsplit("/", 1)[-1]


def _base_of(full_url: str | None) -> str | None:
    if not full_url:
        return None
    m = _REST_URL_RE.match(full_url)
    return m.group("base") if m and m.group("base") else None


class BundleIndex:
    """Pass-1 result: the identity of every entry and the lookups reference resolution needs.

    Memory is O(entries) of short strings (fullUrl → Type/id, one key per entry, identifiers), never
    the resources themselves — a few hundred bytes per entry, ~30 MB for a 100,000-entry bundle.
    """

    def __init__(self, bundle_type: str) -> None:
        self.bundle_type = bundle_type
        self.full_urls: dict[str, str] = {}
        self.criteria: dict[str, str] = {}
        self.identifiers: dict[tuple[str, str | None, str], str] = {}
        self.first_index: dict[str, int] = {}
        self.duplicates: dict[str, list[int]] = {}
        self.entry_count = 0

    def add(self, meta: EntryMeta) -> EntryPlan:
        self.entry_count += 1
        plan = plan_entry(meta, self.bundle_type)
        rt = plan.resource_type or meta.resource_type
        rid = plan.resource_id
        if rid is None and plan.issue is not None:
            # entries that will not be written still get an identity, so references to them
            # become Type/id (typed, if dangling) rather than errors in the referencing entry
            if valid_id(meta.resource_id):
                rid = meta.resource_id
            elif meta.full_url:
                rid = id_from_full_url(meta.full_url)
        key = plan.key
        if meta.full_url and rt and rid:
            fu = _normal_full_url(meta.full_url)
            if fu not in self.full_urls:
                # compact form: just the (interned) type when the fullUrl ends with the id
                self.full_urls[fu] = sys.intern(rt) if _tail_id(fu) == rid else (key or f"{rt}/{rid}")
        if key is None:
            return plan
        if plan.criteria:
            self._put(self.criteria, f"{plan.resource_type}?{normalize_criteria(plan.criteria)}", key)
        for system, value in meta.identifiers:
            self._put(self.identifiers, (plan.resource_type, system, value), key)
        first = self.first_index.setdefault(key, meta.index)
        if first != meta.index:
            self.duplicates.setdefault(key, [first]).append(meta.index)
        return plan

    def _full_url_target(self, full_url: str) -> str | None:
        hit = self.full_urls.get(full_url)
        if hit is None or "/" in hit:
            return hit
        return f"{hit}/{_tail_id(full_url)}"

    @staticmethod
    def _put(table: dict, k: Any, key: str) -> None:
        old = table.get(k)
        if old is None:
            table[k] = key
        elif old != key:
            table[k] = _AMBIGUOUS

    def resolve(self, ref: str, base: str | None) -> str | None:
        """The ``Type/id`` a reference points to inside the bundle, or ``None`` (leave it)."""
        hit = self._full_url_target(ref)
        if hit is not None:
            return hit
        if ref.startswith("urn:") or ref.startswith("#"):
            return None
        path, sep, query = ref.partition("?")
        if sep:
            return self.resolve_conditional(path, query)
        m = _REST_URL_RE.match(ref)
        if not m:
            return None
        tail = f"{m.group('type')}/{m.group('id')}"
        if m.group("base"):
            return self._full_url_target(m.group("base") + tail) if m.group("ver") else None
        if base:
            return self._full_url_target(base + tail)
        return None

    def resolve_conditional(self, resource_type: str, query: str) -> str | None:
        if "/" in resource_type or not resource_type[:1].isupper():
            return None
        hit = self.criteria.get(f"{resource_type}?{normalize_criteria(query)}")
        if hit is None:
            ident = identifier_criteria(query)
            if ident is not None and ident[0] is not None:
                hit = self.identifiers.get((resource_type, ident[0], ident[1]))
        return None if hit is None or hit == _AMBIGUOUS else hit

    def duplicate_status(self, key: str, index: int) -> tuple[str, int] | None:
        """``("error", first)`` for a repeated key in a transaction, ``("superseded", last)`` for a
        non-last occurrence elsewhere, ``None`` when the entry is the one to write."""
        dups = self.duplicates.get(key)
        if not dups:
            return None
        if self.bundle_type == "transaction":
            return ("error", dups[0]) if index != dups[0] else None
        return ("superseded", dups[-1]) if index != dups[-1] else None


# ---- pass 2: prepare each entry ----------------------------------------------------------------


@dataclass(slots=True)
class Superseded:
    """An earlier occurrence of a resource that a later entry of the same (non-transaction) bundle
    replaces; it is not written and counts as skipped."""

    location: str
    key: str
    by_location: str


def prepare_entry(
    entry: Any,
    index: int,
    bindex: BundleIndex,
    content_ids: ContentIds,
    *,
    validate: bool = True,
) -> PreparedEntry | ImportIssue | Superseded:
    """Pass 2 for one entry (mutates ``entry["resource"]`` in place: id, references)."""
    meta = entry_meta(index, entry)
    plan = plan_entry(meta, bindex.bundle_type)
    if plan.issue is not None:
        return plan.issue
    rt = plan.resource_type
    assert rt is not None
    resource: dict[str, Any] = entry["resource"]
    if plan.resource_id is not None:
        dup = bindex.duplicate_status(f"{rt}/{plan.resource_id}", index)
        if dup is not None:
            kind, other = dup
            if kind == "error":
                return ImportIssue(
                    plan.location,
                    f"the same resource appears more than once in the transaction (first at {location_of(other)})",
                    rt,
                    plan.resource_id,
                )
            return Superseded(plan.location, f"{rt}/{plan.resource_id}", location_of(other))

    base = _base_of(meta.full_url)
    conditional: list[str] = []
    for holder, path in iter_references(resource):
        ref = holder["reference"]
        if not ref or ref[0] == "#":
            continue
        target = bindex.resolve(ref, base)
        if target is not None:
            holder["reference"] = target
        elif ref.startswith("urn:uuid:") or ref.startswith("urn:oid:"):
            return ImportIssue(
                plan.location, f"reference at {path} ({ref[:80]}) does not match any entry's fullUrl", rt, plan.resource_id
            )
        elif "?" in ref:
            conditional.append(ref)

    rid = plan.resource_id
    if rid is None:
        rid = content_ids.assign(rt, resource)
    resource["id"] = rid
    if validate:
        issue = validation_issue(plan.location, rt, rid, resource)
        if issue is not None:
            return issue
    return PreparedEntry(
        location=plan.location,
        resource_type=rt,
        resource_id=rid,
        data=resource,
        method=plan.method,
        full_url=meta.full_url,
        if_none_exist=plan.criteria,
        conditional_references=tuple(sorted(set(conditional))),
    )


@dataclass
class PreparedBundle:
    bundle_type: str
    entries: list[PreparedEntry] = field(default_factory=list)
    issues: list[ImportIssue] = field(default_factory=list)
    superseded: list[Superseded] = field(default_factory=list)

    @property
    def errors(self) -> list[ImportIssue]:
        return [i for i in self.issues if i.kind == "error"]

    @property
    def unsupported(self) -> list[ImportIssue]:
        return [i for i in self.issues if i.kind == "unsupported"]

    @property
    def transaction_failed(self) -> bool:
        """A transaction with any invalid entry: write nothing."""
        return self.bundle_type == "transaction" and any(i.kind == "error" for i in self.issues)

    def summary(self, policy: str = "error") -> ImportSummary:
        """A summary holding the preparation's issues (and superseded entries as skipped); pass
        ``self.entries`` to :func:`~fhir_platform.imports.pipeline.write_all` with it to add the
        write outcomes (``resources_received`` then counts every entry of the bundle)."""
        s = ImportSummary(policy)
        s.resources_received = len(self.issues) + len(self.superseded)
        s.add_issues(self.issues)
        if not self.transaction_failed:
            for _ in self.superseded:
                s.record_write("skipped")
        return s

    def failure_detail(self) -> list[dict[str, Any]]:
        """``HTTPValidationError.detail`` items for a failed transaction (422): one per problem,
        ``loc`` = ``["body", "bundle", "entry", i, "resource", ...path]``."""
        out: list[dict[str, Any]] = []
        for issue in self.errors:
            idx = _entry_index(issue.location)
            head: list[Any] = ["body", "bundle", "entry", idx] if idx is not None else ["body", "bundle"]
            if issue.problems:
                for loc, msg, typ in issue.problems:
                    path = [int(p) if p.isdigit() else p for p in loc.split(".") if p] if loc else []
                    out.append({"loc": [*head, "resource", *path], "msg": msg, "type": typ})
            else:
                out.append({"loc": head, "msg": issue.reason, "type": "value_error"})
        return out


def _entry_index(location: str) -> int | None:
    m = re.match(r"^entry\[(\d+)\]$", location)
    return int(m.group(1)) if m else None


def prepare_bundle(bundle: Any, *, validate: bool = True) -> PreparedBundle:
    """Both passes over an in-memory Bundle (the synchronous endpoint). Mutates the bundle's
    resources in place. Raises :class:`BundleFormatError` for a non-importable envelope."""
    bundle_type = check_bundle_envelope(bundle)
    entries: list[Any] = bundle.get("entry") or []
    bindex = BundleIndex(bundle_type)
    for i, entry in enumerate(entries):
        bindex.add(entry_meta(i, entry))
    return prepare_entries(entries, bindex, validate=validate)


def prepare_entries(entries: Iterable[Any], bindex: BundleIndex, *, validate: bool = True, start: int = 0) -> PreparedBundle:
    out = PreparedBundle(bindex.bundle_type)
    content_ids = ContentIds()
    for i, entry in enumerate(entries, start):
        result = prepare_entry(entry, i, bindex, content_ids, validate=validate)
        if isinstance(result, PreparedEntry):
            out.entries.append(result)
        elif isinstance(result, Superseded):
            out.superseded.append(result)
        else:
            out.issues.append(result)
    return out
