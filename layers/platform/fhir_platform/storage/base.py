"""Shared plumbing for repositories: the table handle and ClientError → domain error mapping.

Only modules in ``fhir_platform.storage`` talk to DynamoDB; everything above speaks domain types.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from fhir_platform import aws, config


class Repository:
    def __init__(self, table: Any | None = None) -> None:
        self._table = table

    @property
    def table(self) -> Any:
        if self._table is None:
            self._table = aws.dynamodb_table(config.table_name())
        return self._table


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def cancellation_codes(exc: ClientError) -> list[str]:
    """Per-item reasons of a cancelled TransactWriteItems, in request order ('None' = fine)."""
    return [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]


def plain(value: Any) -> Any:
    """DynamoDB resource values → plain JSON-able Python (Decimal → int/float)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
