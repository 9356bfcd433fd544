"""Streaming split of an uploaded import object into chunks (the S3-triggered splitter's core).

Data flow (no AWS here; the Lambda passes two callables)::

    open_stream() ─▶ binary stream of the object (a fresh S3 GET each call; gzip is undone here)
      │
      ├─ detect format (detect_format): .ndjson/.jsonl → NDJSON; a first line that is a complete
      │  non-Bundle JSON object → NDJSON (even if named .json); .json or pretty JSON → Bundle
      │
      ├─ NDJSON (one read): line by line (ndjson.iter_lines, 1 MiB blocks) → parse → unsupported
      │  types and bad lines reported → id-less resources get a content-derived id → chunk
      │
      └─ Bundle (two reads; ijson, so a 200 MB Bundle is never in memory):
           pass 1: ijson *events* → EntryMeta per entry → BundleIndex (fullUrl → Type/id,
                   identifiers, duplicates: a few hundred bytes per entry, no resources)
           pass 2: ijson *items* of ``entry`` one at a time → bundle.prepare_entry (the same code
                   as the synchronous endpoint: ids, references → Type/id) → chunk
    chunker: ≤ ``chunk_resources`` resources and ≤ ``chunk_max_bytes`` per chunk →
             emit_chunk(chunk_index, ndjson_bytes, count, locations)

Memory: one read block + one entry + one chunk (≤ 4 MiB) + the pass-1 index; independent of the
object's size except for the index (O(entries) of short strings).

``emit_chunk`` should only *stage* the chunk (S3 PUT of ``limits.chunk_key``) and remember its
:class:`~fhir_platform.imports.chunks.ChunkMessage`; the caller sends the messages after
:func:`split_import_object` returns and only if :attr:`SplitResult.dispatch_allowed` — a
transaction found invalid half-way (all-or-nothing) or a Bundle that turns out to be broken must
not start any write. Transactions are validated here (every entry, before anything is
dispatched); other imports are validated by the workers, in parallel.

Everything is deterministic (ids, chunk boundaries, chunk bytes), so a retried splitter run
rewrites identical chunks at the same keys.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable

from .bundle import BundleFormatError, BundleIndex, EntryMeta, PreparedEntry, Superseded, check_bundle_type, prepare_entry
from .chunks import encode_locations
from .common import ContentIds, ImportIssue, classify_type, valid_id
from .limits import CHUNK_MAX_BYTES, CHUNK_RESOURCES, MAX_RESOURCE_BYTES
from .ndjson import BLOCK_SIZE, LineError, iter_lines, line_location, parse_line
from .summary import ImportSummary

OpenStream = Callable[[], BinaryIO]
EmitChunk = Callable[[int, bytes, int, str], None]

_GZIP_MAGIC = b"\x1f\x8b"
_SNIFF_BYTES = 64 * 1024


@dataclass
class SplitResult:
    format: str  # "ndjson" | "bundle"
    bundle_type: str | None = None
    resources_seen: int = 0  # bundle entries / non-blank NDJSON lines
    resources_emitted: int = 0  # resources written into chunks
    chunk_count: int = 0
    summary: ImportSummary = field(default_factory=ImportSummary)  # resources the splitter rejected
    transaction_failed: bool = False
    fatal_error: str | None = None  # the whole object is unusable (bad Bundle envelope / JSON)
    validated: bool = False  # chunks hold resources already FHIR-validated (transactions)

    @property
    def dispatch_allowed(self) -> bool:
        """Send the chunk messages? False for a failed transaction or a broken object."""
        return self.fatal_error is None and not self.transaction_failed


class _Chunker:
    def __init__(self, emit: EmitChunk, kind: str, max_count: int, max_bytes: int, result: SplitResult) -> None:
        self.emit, self.kind, self.max_count, self.max_bytes, self.result = emit, kind, max_count, max_bytes, result
        self.buf = bytearray()
        self.positions: list[int] = []
        self.enabled = True

    def add(self, position: int, line: bytes) -> None:
        if not self.enabled:
            return
        if self.positions and (len(self.positions) >= self.max_count or len(self.buf) + len(line) + 1 > self.max_bytes):
            self.flush()
        self.buf += line
        self.buf += b"\n"
        self.positions.append(position)

    def flush(self) -> None:
        if not self.positions or not self.enabled:
            return
        count = len(self.positions)
        self.emit(self.result.chunk_count, bytes(self.buf), count, encode_locations(self.kind, self.positions))
        self.result.chunk_count += 1
        self.result.resources_emitted += count
        self.buf = bytearray()
        self.positions = []

    def disable(self) -> None:
        self.enabled = False
        self.buf = bytearray()
        self.positions = []


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class _Prefixed(io.RawIOBase):
    """Serve ``head`` then the rest of ``stream`` (undo a peek without a second GET)."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head, self.stream = head, stream

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n is None or n < 0:
                out, self.head = self.head + self.stream.read(), b""
                return out
            out, self.head = self.head[:n], self.head[n:]
            return out
        return self.stream.read(n if n is not None else -1)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def _open(open_stream: OpenStream, gz: bool) -> BinaryIO:
    raw = open_stream()
    return gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw  # type: ignore[return-value]


def _read_head(stream: BinaryIO, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        b = stream.read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def detect_format(key: str, head: bytes) -> str | None:
    """``"ndjson"``/``"bundle"``: ``.ndjson``/``.jsonl`` keys are NDJSON; otherwise a first line
    that is a complete JSON object other than a Bundle means NDJSON (so NDJSON named ``.json`` still
    imports), a ``.json`` key means a Bundle, and anything else is judged from ``head``. ``None``:
    cannot tell from ``head`` (first line longer than the sniffed bytes, no suffix)."""
    name = key.lower().removesuffix(".gz")
    if name.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    nl = text.find(b"\n")
    if text[:1] == b"{" and nl > 0:
        try:
            first = json.loads(text[:nl])
        except (ValueError, RecursionError):
            first = None  # pretty-printed JSON: "{" alone on the first line
        if isinstance(first, dict) and first.get("resourceType") != "Bundle":
            return "ndjson"
        return "bundle"
    if name.endswith(".json"):
        return "bundle"
    if not text or text[:1] != b"{":
        return "ndjson"  # empty, or not JSON at all: let the per-line errors say what is wrong
    return None if len(head) >= _SNIFF_BYTES else "bundle"


def _sniff_resource_type(stream: BinaryIO) -> str:
    import ijson

    try:
        for prefix, event, value in ijson.parse(stream, multiple_values=True):
            if prefix == "resourceType" and event == "string":
                return "bundle" if value == "Bundle" else "ndjson"
            if prefix == "" and event == "end_map":
                return "ndjson"
    except ijson.JSONError:
        return "ndjson"
    return "ndjson"


def split_import_object(
    open_stream: OpenStream,
    emit_chunk: EmitChunk,
    *,
    key: str = "",
    policy: str = "error",
    chunk_resources: int = CHUNK_RESOURCES,
    chunk_max_bytes: int = CHUNK_MAX_BYTES,
    max_resource_bytes: int = MAX_RESOURCE_BYTES,
    validate: bool | None = None,
) -> SplitResult:
    """Split one uploaded object into chunks. ``open_stream`` returns a fresh binary stream of the
    object each call (1 call for NDJSON, 2 for a Bundle; pin the version/ETag so both reads see
    the same bytes); ``emit_chunk(chunk_index, ndjson_bytes, count, locations)`` stages a chunk.
    ``validate``: FHIR-validate every resource here (default: only for transaction Bundles, which
    are all-or-nothing). Never raises for bad content: see ``fatal_error`` and ``summary``."""
    first = open_stream()
    head = _read_head(first, 2)
    gz = head == _GZIP_MAGIC
    stream: BinaryIO = _Prefixed(head, first)  # type: ignore[assignment]
    if gz:
        stream = gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[assignment]
    head = _read_head(stream, _SNIFF_BYTES)
    fmt = detect_format(key, head)
    stream = _Prefixed(head, stream)  # type: ignore[assignment]
    if fmt is None:
        fmt = _sniff_resource_type(stream)
        stream = _open(open_stream, gz)
    summary = ImportSummary(policy)
    if fmt == "ndjson":
        result = SplitResult("ndjson", summary=summary)
        _split_ndjson(stream, emit_chunk, result, chunk_resources, chunk_max_bytes, max_resource_bytes, bool(validate))
    else:
        result = SplitResult("bundle", summary=summary)
        _split_bundle(stream, lambda: _open(open_stream, gz), emit_chunk, result, chunk_resources, chunk_max_bytes, max_resource_bytes, validate)
    # inputs this summary accounts for (the rest are in chunks, counted by the workers), so
    # splitter summary + chunk summaries = every resource of the file exactly once
    summary.resources_received = result.resources_seen - result.resources_emitted
    return result


# ---- NDJSON ------------------------------------------------------------------------------------


def _split_ndjson(
    stream: BinaryIO,
    emit: EmitChunk,
    result: SplitResult,
    chunk_resources: int,
    chunk_max_bytes: int,
    max_resource_bytes: int,
    validate: bool,
) -> None:
    from .ndjson import prepare_resource

    chunker = _Chunker(emit, "line", chunk_resources, chunk_max_bytes, result)
    content_ids = ContentIds()
    result.validated = validate
    for line_no, line in iter_lines(stream, max_line_bytes=max_resource_bytes, block_size=BLOCK_SIZE):
        parsed = parse_line(line_no, line, max_resource_bytes)
        if parsed is None:
            continue
        result.resources_seen += 1
        loc = line_location(line_no)
        if isinstance(parsed, LineError):
            result.summary.add_issue(ImportIssue(loc, parsed.reason))
            continue
        rt, unsupported = classify_type(parsed)
        rid = parsed.get("id")
        if unsupported:
            result.summary.add_issue(ImportIssue(loc, unsupported, rt, rid if isinstance(rid, str) else None, "unsupported"))
            continue
        if validate:
            prepared = prepare_resource(loc, parsed, content_ids, validate=True)
            if isinstance(prepared, ImportIssue):
                result.summary.add_issue(prepared)
                continue
            chunker.add(line_no, _dumps(prepared.data))
        elif rid is None:
            parsed["id"] = content_ids.assign(rt, parsed)  # type: ignore[arg-type]
            chunker.add(line_no, _dumps(parsed))
        elif not valid_id(rid):
            result.summary.add_issue(ImportIssue(loc, "id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'", rt, None))
        else:
            chunker.add(line_no, line.strip())  # type: ignore[union-attr]
    chunker.flush()


# ---- Bundle ------------------------------------------------------------------------------------

# prefix → field of EntryMeta for string values (pass 1)
_ENTRY = "entry.item"
_STRING_FIELDS = {
    "entry.item.fullUrl": "full_url",
    "entry.item.resource.resourceType": "resource_type",
    "entry.item.request.url": "url",
    "entry.item.request.ifNoneExist": "if_none_exist",
}
_SCALAR_EVENTS = frozenset(("string", "number", "boolean", "null", "integer", "double"))


class _Pass1:
    """Build the BundleIndex from ijson events, never materialising an entry."""

    def __init__(self) -> None:
        self.resource_type: Any = None
        self.bundle_type: Any = None
        self.entry_not_array = False
        self.index: BundleIndex | None = None
        self.deferred: list[EntryMeta] = []  # entries seen before Bundle.type (rare key order)
        self.count = 0

    def _done(self, meta: EntryMeta) -> None:
        self.count += 1
        if self.index is not None:
            self.index.add(meta)
        elif self.bundle_type is not None:
            self.index = BundleIndex(check_bundle_type(self.bundle_type))
            self.index.add(meta)
        else:
            self.deferred.append(meta)

    def run(self, stream: BinaryIO) -> BundleIndex:
        import ijson

        meta: EntryMeta | None = None
        ident: list[Any] | None = None
        string_fields = _STRING_FIELDS
        for prefix, event, value in ijson.parse(stream, use_float=True):
            if not prefix.startswith("entry"):
                if prefix == "resourceType" and event == "string":
                    self.resource_type = value
                elif prefix == "type" and event in _SCALAR_EVENTS:
                    self.bundle_type = value
                    if self.resource_type == "Bundle":
                        check_bundle_type(value)
                continue
            if prefix == _ENTRY:
                if event == "start_map":
                    meta = EntryMeta(self.count)
                elif event == "end_map":
                    if meta is not None:
                        self._done(meta)
                    meta = None
                elif event in _SCALAR_EVENTS or event == "start_array":
                    self._done(EntryMeta(self.count, is_object=False))
                continue
            if prefix == "entry":
                if event not in ("start_array", "end_array", "null"):
                    self.entry_not_array = True
                continue
            if meta is None:
                continue
            attr = string_fields.get(prefix)
            if attr is not None:
                if event == "string" and value:
                    setattr(meta, attr, sys.intern(value) if attr == "resource_type" and len(value) <= 64 else value)
            elif prefix == "entry.item.resource":
                if event == "start_map":
                    meta.has_resource = meta.resource_is_object = True
                elif event in ("string", "number", "boolean", "integer", "double", "start_array"):
                    meta.has_resource = True
            elif prefix == "entry.item.resource.id":
                meta.resource_id = value if event in _SCALAR_EVENTS else {}
            elif prefix == "entry.item.request":
                if event == "start_map":
                    meta.has_request = True
            elif prefix == "entry.item.request.method":
                if event == "string":
                    meta.method = value.upper()
            elif prefix == "entry.item.resource.identifier.item":
                if event == "start_map":
                    ident = [None, None]
                elif event == "end_map" and ident is not None:
                    if isinstance(ident[1], str):
                        meta.identifiers.append((ident[0], ident[1]))
                    ident = None
            elif ident is not None and event == "string":
                if prefix == "entry.item.resource.identifier.item.system":
                    ident[0] = value
                elif prefix == "entry.item.resource.identifier.item.value":
                    ident[1] = value
        if self.resource_type != "Bundle":
            raise BundleFormatError("Invalid bundle format: resourceType must be 'Bundle'", "resourceType")
        if self.entry_not_array:
            raise BundleFormatError("Invalid bundle format: Bundle.entry must be an array", "entry")
        if self.index is None:
            self.index = BundleIndex(check_bundle_type(self.bundle_type))
        for m in self.deferred:
            self.index.add(m)
        self.deferred.clear()
        return self.index


def index_bundle_stream(stream: BinaryIO) -> BundleIndex:
    """Pass 1 over a Bundle stream (raises :class:`BundleFormatError`, ``ijson.JSONError``)."""
    return _Pass1().run(stream)


def _split_bundle(
    stream: BinaryIO,
    reopen: Callable[[], BinaryIO],
    emit: EmitChunk,
    result: SplitResult,
    chunk_resources: int,
    chunk_max_bytes: int,
    max_resource_bytes: int,
    validate: bool | None,
) -> None:
    import ijson

    try:
        bindex = index_bundle_stream(stream)
    except BundleFormatError as exc:
        result.fatal_error = exc.message
        return
    except (ijson.JSONError, UnicodeDecodeError):
        # ijson's messages quote the input around the error: never pass them on (PHI)
        result.fatal_error = "Invalid bundle format: the object is not valid JSON"
        return
    result.bundle_type = bindex.bundle_type
    result.resources_seen = bindex.entry_count
    is_transaction = bindex.bundle_type == "transaction"
    do_validate = is_transaction if validate is None else validate
    result.validated = do_validate
    chunker = _Chunker(emit, "entry", chunk_resources, chunk_max_bytes, result)
    content_ids = ContentIds()
    summary = result.summary
    seen = 0
    try:
        for i, entry in enumerate(ijson.items(reopen(), "entry.item", use_float=True)):
            seen += 1
            prepared = prepare_entry(entry, i, bindex, content_ids, validate=do_validate)
            if isinstance(prepared, Superseded):
                summary.record_write("skipped")
                continue
            if isinstance(prepared, ImportIssue):
                summary.add_issue(prepared)
                if prepared.kind == "error" and is_transaction:
                    result.transaction_failed = True
                    chunker.disable()
                continue
            assert isinstance(prepared, PreparedEntry)
            line = _dumps(prepared.data)
            if len(line) > max_resource_bytes:
                summary.add_issue(
                    ImportIssue(prepared.location, f"resource is larger than {max_resource_bytes} bytes",
                                prepared.resource_type, prepared.resource_id)
                )
                if is_transaction:
                    result.transaction_failed = True
                    chunker.disable()
                continue
            chunker.add(i, line)
    except (ijson.JSONError, UnicodeDecodeError):
        result.fatal_error = "Invalid bundle format: the object changed or is not valid JSON on the second read"
        chunker.disable()
        return
    if seen != bindex.entry_count:
        result.fatal_error = "The object changed between the two reads of the splitter"
        chunker.disable()
        return
    chunker.flush()
