"""FHIR import pipeline — the pure core (no AWS calls here; handlers wire storage, HTTP and SQS).

Three ways in, one way out::

    POST /fhir/import          Bundle JSON ≤ 4 MiB ─▶ bundle.prepare_bundle ─┐
    POST /fhir/import-stream   NDJSON ≤ 10,000 lines ─▶ ndjson.prepare_ndjson ┤─▶ PreparedEntry ─▶ write path
    S3 imports/{ws}/…  ─▶ splitter.split_import_object ─▶ chunks (S3) ─▶ SQS ─▶ chunks.prepare_chunk ┘
                                                        (+ ImportIssue per bad/unsupported resource)

* :mod:`.common` — ``PreparedEntry``, ``ImportIssue``, deterministic ids, per-resource triage.
* :mod:`.bundle` — Bundle envelope check, entry identity, reference resolution (two passes).
* :mod:`.ndjson` — bounded-memory NDJSON line reader, line cap, per-line preparation.
* :mod:`.splitter` — streaming split of an uploaded object (ijson for Bundles) into chunks.
* :mod:`.chunks` — chunk/SQS message format and the worker's chunk reader.
* :mod:`.pipeline` — ``write_all``: prepared items → write callable → summary.
* :mod:`.summary` — ``ImportSummary``: ``FhirImportResponse`` counts, capped lists, policy, merge.
* :mod:`.limits` — limits, 413/400 errors, ``ImportOptions``, S3 key layout, job ids.

See ``docs/imports.md`` for the whole flow, idempotency and limits.
"""

from .bundle import BundleFormatError, PreparedBundle, Superseded, prepare_bundle
from .chunks import ChunkMessage, decode_locations, encode_locations, prepare_chunk
from .common import ImportIssue, PreparedEntry
from .limits import (
    CHUNK_MAX_BYTES,
    CHUNK_RESOURCES,
    MAX_ERRORS,
    MAX_RESOURCE_BYTES,
    MAX_UNSUPPORTED,
    STREAM_MAX_BODY_BYTES,
    STREAM_MAX_LINES,
    SYNC_MAX_BODY_BYTES,
    ImportBodyTooLarge,
    ImportOptions,
    LineCapExceeded,
    check_body_size,
    chunk_key,
    job_id_for_object,
    parse_drop_key,
)
from .ndjson import check_line_cap, iter_ndjson, prepare_ndjson
from .pipeline import write_all
from .splitter import SplitResult, split_import_object
from .summary import ImportSummary

__all__ = [
    "BundleFormatError",
    "CHUNK_MAX_BYTES",
    "CHUNK_RESOURCES",
    "ChunkMessage",
    "ImportBodyTooLarge",
    "ImportIssue",
    "ImportOptions",
    "ImportSummary",
    "LineCapExceeded",
    "MAX_ERRORS",
    "MAX_RESOURCE_BYTES",
    "MAX_UNSUPPORTED",
    "PreparedBundle",
    "PreparedEntry",
    "STREAM_MAX_BODY_BYTES",
    "SplitResult",
    "STREAM_MAX_LINES",
    "SYNC_MAX_BODY_BYTES",
    "Superseded",
    "check_body_size",
    "check_line_cap",
    "chunk_key",
    "decode_locations",
    "encode_locations",
    "iter_ndjson",
    "job_id_for_object",
    "parse_drop_key",
    "prepare_bundle",
    "prepare_chunk",
    "prepare_ndjson",
    "split_import_object",
    "write_all",
]
