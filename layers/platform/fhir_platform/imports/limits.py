"""Import limits, request checks, import options and the S3 key layout of the async import.

Limits (see ``docs/imports.md`` for the reasoning):

=================================  ============  ==================================================
constant                           value         why
=================================  ============  ==================================================
``SYNC_MAX_BODY_BYTES``            4 MiB         Lambda's synchronous payload cap is 6 MiB for the
                                                 whole event; the body inside it grows by 7-12 %
                                                 (JSON string escaping, measured on the Synthea
                                                 fixtures) or by 33 % (base64, for a non-text
                                                 content type): 4 MiB × 4/3 = 5.33 MiB + headers
                                                 still reaches the handler, so the client gets our
                                                 413 with the S3 path instead of a gateway error.
                                                 The largest fixture bundle (3.7 MiB) fits.
``STREAM_MAX_BODY_BYTES``          4 MiB         same transport limit for ``/fhir/import-stream``
``STREAM_MAX_LINES``               10,000        ``/fhir/import-stream`` line cap (400 past it)
``MAX_RESOURCE_BYTES``             8 MiB         longest NDJSON line / largest single resource
``MAX_ERRORS``                     1,000         ``FhirImportResponse.errors`` maxItems
``MAX_UNSUPPORTED``                1,000         ``FhirImportResponse.unsupported_resources``
``CHUNK_RESOURCES``                200           resources per async chunk
``CHUNK_MAX_BYTES``                4 MiB         serialized bytes per chunk (a single larger
                                                 resource gets a chunk of its own)
=================================  ============  ==================================================

S3 layout (one bucket, ``IMPORTS_BUCKET``):

* ``imports/{workspace_id}/{name}`` — drops; the ``ObjectCreated`` notification on this prefix
  starts the splitter. ``.ndjson``/``.jsonl`` is NDJSON, ``.json`` a Bundle
  (unless its first line is a whole non-Bundle resource), gzip is undone; anything else is sniffed
  (``splitter.detect_format``). Import options come from the object's user metadata
  (:meth:`ImportOptions.from_s3_metadata`).
* ``import-chunks/{workspace_id}/{job_id}/{chunk:06d}.ndjson`` — staged chunks (outside the
  notification prefix; expire them with a lifecycle rule, e.g. 7 days).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from fhir_platform.errors import InvalidInput, PayloadTooLarge

from .common import UNSUPPORTED_POLICIES

MiB = 1024 * 1024

SYNC_MAX_BODY_BYTES = 4 * MiB
STREAM_MAX_BODY_BYTES = 4 * MiB
STREAM_MAX_LINES = 10_000
MAX_RESOURCE_BYTES = 8 * MiB
MAX_ERRORS = 1000
MAX_UNSUPPORTED = 1000
CHUNK_RESOURCES = 200
CHUNK_MAX_BYTES = 4 * MiB

IMPORTABLE_BUNDLE_TYPES: tuple[str, ...] = ("transaction", "batch", "collection", "searchset", "message")

DROP_PREFIX = "imports/"
CHUNK_PREFIX = "import-chunks/"

_NS_JOB = uuid.UUID("6f1c2a52-5d1e-4c57-9d1b-3f0e4f7d9a10")
_DROP_KEY_RE = re.compile(r"^imports/([0-9a-fA-F-]{36})/(.+)$")


class ImportBodyTooLarge(PayloadTooLarge):
    """413: the body is over the synchronous limit; the message names the S3 drop path."""

    def __init__(self, size: int, limit: int, workspace_id: str, bucket: str | None = None) -> None:
        where = f"s3://{bucket}/" if bucket else "the imports bucket at "
        super().__init__(
            f"Request body is {size} bytes; the synchronous import limit is {limit} bytes. "
            f"Upload the Bundle (.json) or NDJSON (.ndjson) file to {where}{DROP_PREFIX}{workspace_id}/<file name> "
            f"for an asynchronous import, and follow it at GET /v1/{workspace_id}/fhir/imports.",
            details=[{"limit_bytes": limit, "size_bytes": size, "s3_prefix": f"{where}{DROP_PREFIX}{workspace_id}/"}],
        )
        self.size = size
        self.limit = limit
        self.s3_prefix = f"{DROP_PREFIX}{workspace_id}/"


class LineCapExceeded(InvalidInput):
    """400 "Stream exceeded line cap." (nothing is imported)."""

    def __init__(self, cap: int) -> None:
        super().__init__(
            f"Stream exceeded line cap: at most {cap} NDJSON lines per request; "
            "split the stream or upload it to S3 for an asynchronous import.",
            details=[{"line_cap": cap}],
        )
        self.cap = cap


def check_body_size(size: int, *, workspace_id: str, bucket: str | None = None, limit: int = SYNC_MAX_BODY_BYTES) -> None:
    """Raise :class:`ImportBodyTooLarge` when ``size`` (bytes of the raw body) is over ``limit``."""
    if size > limit:
        raise ImportBodyTooLarge(size, limit, workspace_id, bucket)


@dataclass(frozen=True)
class ImportOptions:
    """The contract's import parameters (``FhirImportRequest`` / import-stream query)."""

    source: str = "fhir_import"
    source_system: str | None = None
    data_source_id: str | None = None
    dedup: bool = True
    unsupported_resource_policy: str = "error"

    def __post_init__(self) -> None:
        if not self.source or len(self.source) > 128:
            raise InvalidInput("source must be 1-128 characters")
        if self.source_system is not None and len(self.source_system) > 128:
            raise InvalidInput("source_system must be at most 128 characters")
        if self.data_source_id is not None:
            try:
                uuid.UUID(self.data_source_id)
            except ValueError:
                raise InvalidInput("data_source_id must be a UUID") from None
        if self.unsupported_resource_policy not in UNSUPPORTED_POLICIES:
            raise InvalidInput("unsupported_resource_policy must be 'error' or 'skip'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "ImportOptions":
        data = data or {}
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data and data[k] is not None})

    @classmethod
    def from_s3_metadata(cls, metadata: dict[str, str] | None) -> "ImportOptions":
        """Options of an S3 drop, from its user metadata (``x-amz-meta-source``,
        ``-source-system``, ``-data-source-id``, ``-dedup`` = true/false,
        ``-unsupported-resource-policy``); boto3 gives them lower-cased without the prefix."""
        md = {k.lower().replace("_", "-"): v for k, v in (metadata or {}).items()}
        dedup = md.get("dedup")
        return cls(
            source=md.get("source") or "fhir_import",
            source_system=md.get("source-system") or None,
            data_source_id=md.get("data-source-id") or None,
            dedup=True if dedup is None else dedup.strip().lower() not in ("false", "0", "no"),
            unsupported_resource_policy=(md.get("unsupported-resource-policy") or "error").strip().lower(),
        )


def parse_drop_key(key: str) -> tuple[str, str] | None:
    """``imports/{workspace_id}/{name}`` → ``(workspace_id, name)``; ``None`` for other keys.
    S3 event notifications URL-encode keys: pass ``urllib.parse.unquote_plus(record_key)``."""
    m = _DROP_KEY_RE.match(key)
    if not m:
        return None
    try:
        uuid.UUID(m.group(1))
    except ValueError:
        return None
    return m.group(1).lower(), m.group(2)


def chunk_key(workspace_id: str, job_id: str, chunk_index: int) -> str:
    return f"{CHUNK_PREFIX}{workspace_id}/{job_id}/{chunk_index:06d}.ndjson"


def job_id_for_object(bucket: str, key: str, version: str | None) -> str:
    """Deterministic job id of one S3 object version (pass the version id, else the ETag): a
    redelivered S3 event or a retried splitter invocation lands on the same job and chunk keys."""
    return str(uuid.uuid5(_NS_JOB, f"{bucket}/{key}#{version or ''}"))
