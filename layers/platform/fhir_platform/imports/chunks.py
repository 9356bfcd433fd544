"""The chunk format between the splitter and the import workers, and the worker-side reader.

A chunk is a staged S3 object (``limits.chunk_key``): UTF-8 NDJSON, one resource per line, ids
assigned and bundle references already rewritten to ``Type/id``, at most ``CHUNK_RESOURCES`` lines
and ~``CHUNK_MAX_BYTES``. Chunks are immutable: a retried splitter rewrites identical bytes at the
same key (ids are deterministic), so a redelivered message always reads the same resources.

The SQS message (:class:`ChunkMessage`, JSON, < 2 KB — far below SQS's 256 KB) is a pointer::

    {"v": 1, "workspace_id": "...", "job_id": "...", "chunk_index": 3, "bucket": "...",
     "key": "import-chunks/<ws>/<job>/000003.ndjson", "count": 200,
     "locations": "entry:600-799", "validated": false, "options": {...ImportOptions...}}

``locations`` maps chunk line *i* back to where the resource was in the uploaded file, compactly:
``entry:0-57,59-201`` (``entry[0]``…) for a Bundle, ``line:1-200`` (``line 1``…) for NDJSON, so a
worker's errors name the original position. The worker reads a chunk with :func:`prepare_chunk`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Iterator

from .common import ImportIssue, PreparedEntry
from .ndjson import iter_ndjson, prepare_resource

CHUNK_MESSAGE_VERSION = 1


def encode_locations(kind: str, positions: Iterable[int]) -> str:
    """``("entry", [0,1,2,5])`` → ``"entry:0-2,5"`` (positions ascending)."""
    if kind not in ("entry", "line"):
        raise ValueError("kind must be 'entry' or 'line'")
    parts: list[str] = []
    start = prev = None
    for p in positions:
        if start is None:
            start = prev = p
        elif p == prev + 1:  # type: ignore[operator]
            prev = p
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = p
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return f"{kind}:{','.join(parts)}"


def decode_locations(spec: str) -> list[str]:
    """``"entry:0-2,5"`` → ``["entry[0]", "entry[1]", "entry[2]", "entry[5]"]``."""
    kind, _, ranges = spec.partition(":")
    fmt = {"entry": "entry[{}]", "line": "line {}"}.get(kind)
    if fmt is None:
        raise ValueError(f"bad locations spec {spec[:40]!r}")
    out: list[str] = []
    for part in filter(None, ranges.split(",")):
        a, _, b = part.partition("-")
        out.extend(fmt.format(i) for i in range(int(a), int(b or a) + 1))
    return out


@dataclass(frozen=True)
class ChunkMessage:
    workspace_id: str
    job_id: str
    chunk_index: int
    bucket: str
    key: str
    count: int
    locations: str
    validated: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    v: int = CHUNK_MESSAGE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str) -> "ChunkMessage":
        data = json.loads(body)
        if data.get("v") != CHUNK_MESSAGE_VERSION:
            raise ValueError(f"unsupported chunk message version {data.get('v')!r}")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @property
    def result_id(self) -> str:
        """Idempotency key of this chunk's result record: one per (job, chunk)."""
        return f"{self.job_id}#{self.chunk_index:06d}"


def prepare_chunk(data: bytes, locations: str, *, validate: bool = True) -> Iterator[PreparedEntry | ImportIssue]:
    """Worker side: every chunk line as a :class:`PreparedEntry` or :class:`ImportIssue`, located
    at its position in the uploaded file. Pure and deterministic, so a redelivered chunk prepares
    the same resources (the write path then skips them by content hash)."""
    locs = decode_locations(locations)
    for n, (line_no, parsed) in enumerate(iter_ndjson(data)):
        loc = locs[n] if n < len(locs) else f"chunk line {line_no}"
        if not isinstance(parsed, dict):
            yield ImportIssue(loc, parsed.reason)
        else:
            yield prepare_resource(loc, parsed, None, validate=validate)
