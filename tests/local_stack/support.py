"""Shared helpers of the local_stack tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import boto3
from boto3.dynamodb.types import TypeDeserializer

TEMPLATE = Path(__file__).resolve().parent / "template.yaml"
RECORDER_TABLE = "fhir-platform-local-RecorderTable"
T = TypeVar("T")
_DESERIALIZE = TypeDeserializer().deserialize


def wait_for(probe: Callable[[], T], timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last value: {value!r})")
        time.sleep(0.1)


def aws_client(service: str, endpoint_url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def recorded(endpoint_url: str, pk: str) -> list[dict[str, Any]]:
    """Items the test functions wrote to RecorderTable under ``pk``."""
    client = aws_client("dynamodb", endpoint_url)
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": RECORDER_TABLE,
        "KeyConditionExpression": "PK = :pk",
        "ExpressionAttributeValues": {":pk": {"S": pk}},
        "ConsistentRead": True,
    }
    while True:
        page = client.query(**kwargs)
        items += [{k: _DESERIALIZE(v) for k, v in item.items()} for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
