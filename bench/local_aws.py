"""moto in-process for the benchmarks: the template's table, the imports bucket and the queues, with
the local stack's moto speed-ups (same semantics, faster Query and transactions)."""

from __future__ import annotations

import os
from typing import Any


def start_moto() -> Any:
    """Start moto with ``bench-data`` (the template's DataTable), ``bench-imports`` and the import
    and sync queues, and point the platform's environment at them. Returns the mock (``.stop()``)."""
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", TABLE_NAME="bench-data",
        IMPORTS_BUCKET="bench-imports", POWERTOOLS_TRACE_DISABLED="1", POWERTOOLS_LOG_LEVEL="ERROR",
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from moto import mock_aws

    from local_stack import moto_speedups

    moto_speedups.apply()
    mock = mock_aws()
    mock.start()
    import boto3

    from tests.support.template import create_table

    create_table(boto3.client("dynamodb"), "DataTable", "bench-data")
    boto3.client("s3").create_bucket(Bucket="bench-imports")
    sqs = boto3.client("sqs")
    os.environ["IMPORT_QUEUE_URL"] = sqs.create_queue(QueueName="bench-imports")["QueueUrl"]
    os.environ["SYNC_QUEUE_URL"] = sqs.create_queue(QueueName="bench-sync")["QueueUrl"]
    return mock
