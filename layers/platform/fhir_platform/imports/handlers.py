"""Event handlers of the asynchronous import: S3 ObjectCreated → splitter, SQS → worker."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes import S3Event
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from fhir_platform.imports.service import ImportService
from fhir_platform.observability import logger


def handle_s3_event(event: dict[str, Any], service: ImportService) -> dict[str, Any]:
    jobs = []
    for record in S3Event(event).records:
        # the record's version: two uploads to one key are two versions, each imported as it was
        job_id = service.split(record.s3.bucket.name, record.s3.get_object.key, record.s3.get_object.version_id)
        if job_id:
            logger.info("import object split", extra={"job_id": job_id})
            jobs.append(job_id)
    return {"jobs": jobs}


def handle_sqs_event(event: dict[str, Any], context: Any, service: ImportService) -> dict[str, Any]:
    """Partial batch failures: only the failed chunks are retried (then dead-lettered)."""
    max_receives = int(os.environ.get("IMPORT_MAX_RECEIVE_COUNT", "5"))

    def record_handler(record: SQSRecord) -> None:
        service.process_chunk(record.body, int(record.attributes.approximate_receive_count), max_receives)

    return process_partial_response(event=event, record_handler=record_handler, processor=BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False), context=context)
