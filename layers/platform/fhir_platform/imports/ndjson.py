"""NDJSON reading: one FHIR resource per line, streamed with bounded memory.

Data flow::

    bytes | str | binary file-like (a request body, an S3 StreamingBody, a staged chunk)
      └─ iter_lines()       physical lines split on "\\n" only (a JSON string may hold U+2028…),
                            read in 1 MiB blocks; a line longer than ``max_line_bytes`` is dropped
                            (reported) without ever being held whole; "\\r\\n" and a leading BOM ok
         └─ iter_ndjson()   (line_number, dict | LineError): json.loads per line, blank lines skipped
            └─ prepare_ndjson()  PreparedEntry | ImportIssue per line: supported type, id (kept,
                                 else content-derived), no ``urn:uuid:``/``urn:oid:`` reference left
                                 (the contract: callers MUST pre-resolve them), FHIR validation

Line numbers are 1-based physical line numbers (blank lines count, so they match an editor's), and
locations read ``line 7``. The stream endpoint first checks its line cap with
:func:`check_line_cap` (400 past ``STREAM_MAX_LINES`` non-blank lines; nothing is imported), then
feeds :func:`prepare_ndjson`. NDJSON references are not rewritten: they are expected pre-resolved.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator, Union

from .common import ContentIds, ImportIssue, PreparedEntry, classify_type, scan_references, valid_id, validation_issue
from .limits import MAX_RESOURCE_BYTES, STREAM_MAX_LINES, LineCapExceeded

Source = Union[bytes, bytearray, memoryview, str, BinaryIO]
BLOCK_SIZE = 1024 * 1024
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class LineError:
    """A line that is not a JSON object (no content in ``reason``)."""

    line_number: int
    reason: str

    @property
    def location(self) -> str:
        return line_location(self.line_number)


def line_location(line_number: int) -> str:
    return f"line {line_number}"


def _as_stream(source: Source) -> BinaryIO:
    if isinstance(source, str):
        return io.BytesIO(source.encode("utf-8"))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    return source


def iter_lines(
    source: Source, *, max_line_bytes: int = MAX_RESOURCE_BYTES, block_size: int = BLOCK_SIZE
) -> Iterator[tuple[int, bytes | None]]:
    """Yield ``(line_number, line_bytes)`` for every physical line (without the newline);
    ``line_bytes`` is ``None`` for a line longer than ``max_line_bytes`` (its bytes are skipped as
    they stream past). Only ``read(n)`` is used, so any binary stream works (an S3
    StreamingBody's ``readline`` is byte-by-byte slow; this is not). Memory: one block plus one
    line."""
    stream = _as_stream(source)
    if isinstance(stream, io.TextIOBase):
        raise TypeError("iter_lines needs a binary stream (open files in 'rb' mode)")
    pending = bytearray()
    overflow = False
    line_no = 0
    first = True
    while True:
        block = stream.read(block_size)
        if not block:
            break
        if first:
            first = False
            if block.startswith(_BOM):
                block = block[len(_BOM):]
        start = 0
        while True:
            nl = block.find(b"\n", start)
            if nl < 0:
                if not overflow:
                    pending += block[start:]
                    if len(pending) > max_line_bytes:
                        overflow = True
                        pending.clear()
                break
            line_no += 1
            if overflow or len(pending) + (nl - start) > max_line_bytes:
                yield line_no, None
            else:
                if pending:
                    pending += block[start:nl]
                    line = bytes(pending)
                else:
                    line = block[start:nl]
                yield line_no, line[:-1] if line.endswith(b"\r") else line
            pending.clear()
            overflow = False
            start = nl + 1
    if pending or overflow:
        line_no += 1
        if overflow:
            yield line_no, None
        else:
            line = bytes(pending)
            yield line_no, line[:-1] if line.endswith(b"\r") else line


def parse_line(line_no: int, line: bytes | None, max_line_bytes: int = MAX_RESOURCE_BYTES) -> dict[str, Any] | LineError | None:
    """One physical line → its JSON object, a :class:`LineError`, or ``None`` (blank line)."""
    if line is None:
        return LineError(line_no, f"line is longer than {max_line_bytes} bytes")
    if not line.strip():
        return None
    try:
        value = json.loads(line)
    except UnicodeDecodeError:
        return LineError(line_no, "line is not valid UTF-8")
    except json.JSONDecodeError as exc:
        return LineError(line_no, f"invalid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return LineError(line_no, "invalid JSON: nested too deeply")
    if not isinstance(value, dict):
        return LineError(line_no, "line must hold one JSON object (a FHIR resource)")
    return value


def iter_ndjson(
    source: Source, *, max_line_bytes: int = MAX_RESOURCE_BYTES, block_size: int = BLOCK_SIZE
) -> Iterator[tuple[int, dict[str, Any] | LineError]]:
    """Yield ``(line_number, resource_dict | LineError)`` for every non-blank line."""
    for line_no, line in iter_lines(source, max_line_bytes=max_line_bytes, block_size=block_size):
        parsed = parse_line(line_no, line, max_line_bytes)
        if parsed is not None:
            yield line_no, parsed


def count_lines(source: Source, *, stop_after: int | None = None) -> int:
    """Number of non-blank lines (stops counting past ``stop_after``). Consumes a stream."""
    n = 0
    for _, line in iter_lines(source, max_line_bytes=1 << 62):
        if line is None or line.strip():
            n += 1
            if stop_after is not None and n > stop_after:
                break
    return n


def check_line_cap(source: bytes | bytearray | str, cap: int = STREAM_MAX_LINES) -> int:
    """Raise :class:`LineCapExceeded` (400) when the body has more than ``cap`` non-blank lines;
    return the count otherwise. Call it before importing anything."""
    n = count_lines(source, stop_after=cap)
    if n > cap:
        raise LineCapExceeded(cap)
    return n


def prepare_resource(
    location: str,
    data: Any,
    content_ids: ContentIds | None = None,
    *,
    validate: bool = True,
    require_resolved_references: bool = True,
) -> PreparedEntry | ImportIssue:
    """Triage one standalone resource (an NDJSON line, a chunk line): unsupported type → issue;
    no id → content-derived id; leftover bundle-internal reference → error; FHIR validation."""
    if not isinstance(data, dict):
        return ImportIssue(location, "a FHIR resource must be a JSON object")
    rt, unsupported = classify_type(data)
    rid_raw = data.get("id")
    rid_shown = rid_raw if isinstance(rid_raw, str) else None
    if unsupported:
        return ImportIssue(location, unsupported, rt, rid_shown, "unsupported")
    assert rt is not None
    if rid_raw is None:
        data["id"] = (content_ids or ContentIds()).assign(rt, data)
    elif not valid_id(rid_raw):
        return ImportIssue(location, "id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'", rt, None)
    rid = data["id"]
    left, conditional = scan_references(data)
    if require_resolved_references:
        if left is not None:
            return ImportIssue(
                location,
                f"reference at {left[0]} ({left[1][:80]}) is a bundle-internal reference; "
                "NDJSON imports need references resolved to Type/id",
                rt,
                rid,
            )
    if validate:
        issue = validation_issue(location, rt, rid, data)
        if issue is not None:
            return issue
    return PreparedEntry(location=location, resource_type=rt, resource_id=rid, data=data,
                         conditional_references=conditional)


def prepare_ndjson(
    source: Source,
    *,
    validate: bool = True,
    max_line_bytes: int = MAX_RESOURCE_BYTES,
) -> Iterator[PreparedEntry | ImportIssue]:
    """Every non-blank line as a :class:`PreparedEntry` or an :class:`ImportIssue` (``line N``)."""
    content_ids = ContentIds()
    for line_no, parsed in iter_ndjson(source, max_line_bytes=max_line_bytes):
        loc = line_location(line_no)
        if isinstance(parsed, LineError):
            yield ImportIssue(loc, parsed.reason)
        else:
            yield prepare_resource(loc, parsed, content_ids, validate=validate)
