"""Import use cases: synchronous Bundle, NDJSON stream, and the asynchronous S3 → splitter → SQS →
worker path. Every path ends in the same write path as the API
(:meth:`ResourceService.write_many`: validated resources, content-hash dedup, entity links, index
entries, counters), in batches of :data:`WRITE_BATCH` resources.

Async job lifecycle: ``pending`` (created by ``POST /fhir/imports`` or by the splitter for a
partner's direct drop) → ``running`` (the splitter staged ``chunk_count`` chunks and queued their
pointers) → ``completed`` (every chunk's result recorded) or ``failed`` (unusable object, invalid
transaction, or a chunk that exhausted its SQS retries: the worker records the failure on its
last attempt, then the message goes to the dead-letter queue).

Idempotency: job ids are deterministic per object version (or the id the API issued), chunks are
deterministic, a chunk whose result is recorded is not written again, and writes skip identical
content. A chunk retried after a partial write reports those resources as skipped.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

from fhir_platform.errors import Unprocessable
from fhir_platform.imports import (
    ChunkMessage,
    ImportIssue,
    ImportOptions,
    ImportSummary,
    PreparedEntry,
    check_line_cap,
    chunk_key,
    job_id_for_object,
    parse_drop_key,
    prepare_bundle,
    prepare_chunk,
    prepare_ndjson,
    split_import_object,
)
from fhir_platform.imports.summary import COUNTS
from fhir_platform.observability import count, logger
from fhir_platform.resources.service import ResourceService, WriteContext, now_iso
from fhir_platform.storage.import_files import UPLOAD_URL_SECONDS, ImportFiles
from fhir_platform.storage.import_jobs import JOB_ERRORS_CAP, ImportJobRepository
from fhir_platform.world.entities import ENTITY_TYPES

WRITE_BATCH = 500
_API_UPLOAD = re.compile(r"^([0-9a-f-]{36})\.(json|ndjson)$")


class ImportService:
    def __init__(
        self,
        resources: ResourceService | None = None,
        jobs: ImportJobRepository | None = None,
        files: ImportFiles | None = None,
    ) -> None:
        self.resources = resources or ResourceService()
        self.jobs = jobs or ImportJobRepository()
        self.files = files or ImportFiles()

    # ---- writing prepared items (shared by every path) -----------------------------------------

    def write(self, ws: str, items: Iterable[PreparedEntry | ImportIssue], summary: ImportSummary, options: ImportOptions) -> ImportSummary:
        ctx = WriteContext(source=options.source, source_system=options.source_system, data_source_id=options.data_source_id)
        batch: list[PreparedEntry] = []

        def flush() -> None:
            if not batch:
                return
            results = self.resources.write_many(ws, [(e.resource_type, e.resource_id, e.data) for e in batch], ctx, dedup=options.dedup)
            for result in results:
                summary.record_write(result.outcome)
                if result.resource_type in ENTITY_TYPES and result.outcome != "skipped":
                    summary.record_entity("created" if result.entity_created else "updated")
            batch.clear()

        for item in items:
            summary.resources_received += 1
            if isinstance(item, ImportIssue):
                summary.add_issue(item)
                continue
            batch.append(item)
            if len(batch) >= WRITE_BATCH:
                flush()
        flush()
        count("ImportResourcesReceived", summary.resources_received)
        return summary

    # ---- synchronous ---------------------------------------------------------------------------

    def import_bundle(self, ws: str, bundle: Any, options: ImportOptions) -> dict[str, Any]:
        prepared = prepare_bundle(bundle)
        if prepared.transaction_failed:
            raise Unprocessable(
                "Transaction bundle not imported: some entries are invalid (nothing was written)",
                details=prepared.failure_detail(),
            )
        summary = prepared.summary(options.unsupported_resource_policy)
        # prepared.summary already accounts for the issues; count written entries as received
        return self.write(ws, prepared.entries, summary, options).to_response()

    def import_stream(self, ws: str, body: bytes, options: ImportOptions) -> dict[str, Any]:
        check_line_cap(body)
        summary = ImportSummary(options.unsupported_resource_policy)
        return self.write(ws, prepare_ndjson(body), summary, options).to_response()

    # ---- asynchronous: job creation, splitter, worker ------------------------------------------

    def create_job(self, ws: str, options: ImportOptions, fmt: str) -> dict[str, Any]:
        job_id = str(uuid.uuid4())
        key = f"imports/{ws}/{job_id}.{fmt}"
        now = now_iso()
        job = self._new_job(ws, job_id, key, options, now, origin="api", fmt=fmt)
        self.jobs.create(job)
        expires = (datetime.now(UTC) + timedelta(seconds=UPLOAD_URL_SECONDS)).isoformat(timespec="seconds").replace("+00:00", "Z")
        return {
            **job,
            "upload_url": self.files.upload_url(key),
            "upload_method": "PUT",
            "upload_headers": {},  # none required: the URL signs only the host
            "expires_at": expires,
        }

    def get_job(self, ws: str, job_id: str) -> dict[str, Any]:
        return self.jobs.get(ws, job_id)

    def list_jobs(self, ws: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], bool]:
        return self.jobs.list(ws, limit, offset)

    def split(self, bucket: str, raw_key: str, version_id: str | None = None) -> str | None:
        """S3 ObjectCreated → job: stage chunks, record the job's figures, queue the chunks.
        ``version_id`` (the event's, in the versioned imports bucket) pins the object version the
        event is about: a second upload to the same key before this runs is its own event and job."""
        key = unquote_plus(raw_key)
        drop = parse_drop_key(key)
        if drop is None:
            logger.warning("ignoring object outside imports/{workspace_id}/", extra={"bucket": bucket})
            return None
        ws, name = drop
        count("ImportObjects")
        obj = self.files.describe(bucket, key, version_id)
        api_job = _API_UPLOAD.match(name)
        job = self.jobs.find(ws, api_job.group(1)) if api_job else None
        if job is None:
            job_id = job_id_for_object(bucket, key, obj["version_id"] or obj["etag"])
            job = self.jobs.find(ws, job_id)
            if job is None:
                options = ImportOptions.from_s3_metadata(obj["metadata"])
                job = self._new_job(ws, job_id, key, options, now_iso(), origin="s3_drop", fmt=None)
                self.jobs.create(job)
        job_id = job["job_id"]
        if job["status"] != "pending":
            logger.info("import job already started", extra={"job_id": job_id, "status": job["status"]})
            return job_id
        options = ImportOptions.from_dict(job.get("options"))
        messages: list[str] = []

        def emit(index: int, data: bytes, count: int, locations: str) -> None:
            staged = chunk_key(ws, job_id, index)
            self.files.stage(staged, data)
            messages.append(
                ChunkMessage(ws, job_id, index, self.files.bucket, staged, count, locations, validated=False, options=options.to_dict()).to_json()
            )

        now = now_iso()
        try:
            result = split_import_object(
                lambda: self.files.open(bucket, key, obj["etag"], obj["version_id"]), emit, key=key, policy=options.unsupported_resource_policy
            )
        except Exception as exc:  # an unreadable object must not leave the job pending forever
            self.jobs.fail(ws, job_id, f"could not read the uploaded object: {type(exc).__name__}", now)
            raise
        figures = {
            "total": result.resources_seen,
            "format": result.format,
            "bundle_type": result.bundle_type,
            "chunk_count": result.chunk_count,
            "chunks_done": 0,
            "processed": result.summary.resources_received,
            "started_at": now,
            "updated_at": now,
            **{k: v for k, v in result.summary.to_dict().items() if k in _SUMMARY_FIELDS},
            "errors": list(result.summary.errors)[:JOB_ERRORS_CAP],
            "unsupported_resources": list(result.summary.unsupported_resources)[:JOB_ERRORS_CAP],
        }
        if not result.dispatch_allowed:
            reason = result.fatal_error or "transaction bundle has invalid entries; nothing was written"
            self.jobs.start(ws, job_id, {**figures, "status": "failed", "failure": reason, "completed_at": now})
            return job_id
        status = "running" if result.chunk_count else "completed"
        if self.jobs.start(ws, job_id, {**figures, "status": status, **({"completed_at": now} if status == "completed" else {})}):
            self.files.send(messages)
        return job_id

    def process_chunk(self, body: str, receive_count: int, max_receives: int) -> None:
        """One SQS message: write the chunk once and record its result on the job. On the last
        delivery attempt a failure is recorded on the job before the message goes to the DLQ."""
        count("ImportChunks")
        message = ChunkMessage.from_json(body)
        try:
            if self.jobs.chunk_recorded(message.workspace_id, message.job_id, message.chunk_index):
                return  # redelivered after success: nothing to do
            options = ImportOptions.from_dict(message.options)
            data = self.files.read(message.bucket, message.key)
            summary = ImportSummary(options.unsupported_resource_policy, max_errors=JOB_ERRORS_CAP, max_unsupported=JOB_ERRORS_CAP)
            self.write(message.workspace_id, prepare_chunk(data, message.locations, validate=not message.validated), summary, options)
            self.jobs.record_chunk(message.workspace_id, message.job_id, message.chunk_index, summary.to_dict(), now_iso())
        except Exception as exc:
            if receive_count >= max_receives:
                reason = f"chunk {message.chunk_index} failed after {receive_count} attempts: {type(exc).__name__}"
                self.jobs.fail(message.workspace_id, message.job_id, reason, now_iso())
            raise

    @staticmethod
    def _new_job(ws: str, job_id: str, key: str, options: ImportOptions, now: str, origin: str, fmt: str | None) -> dict[str, Any]:
        return {
            "job_id": job_id,
            "workspace_id": ws,
            "status": "pending",
            "origin": origin,
            "object_key": key,
            "format": {"json": "bundle", "ndjson": "ndjson"}.get(fmt or "", None),
            "options": options.to_dict(),
            "created_at": now,
            "updated_at": now,
        }


_SUMMARY_FIELDS = (*COUNTS, "errors_truncated", "unsupported_resources_truncated")
