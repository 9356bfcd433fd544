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

    def query_window(self, query: dict[str, Any], offset: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Items ``offset .. offset+limit`` of one Query (following pages as needed), and whether
        more follow. Reads at most ``offset + limit + 1`` items of the one partition."""
        items: list[dict[str, Any]] = []
        kwargs = dict(query)
        while len(items) < offset + limit + 1:
            page = self.table.query(**kwargs, Limit=offset + limit + 1 - len(items))
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return items[offset : offset + limit], len(items) > offset + limit

    def batch_get_items(self, item_keys: list[dict[str, str]], **options: Any) -> list[dict[str, Any]]:
        """Items by key: consistent BatchGetItem, 100 keys per call, unprocessed keys retried.
        ``options`` (e.g. ``ProjectionExpression``) apply to every call. Order is not preserved."""
        unique = list({(k["PK"], k["SK"]): k for k in item_keys}.values())
        found: list[dict[str, Any]] = []
        for start in range(0, len(unique), 100):
            request: dict[str, Any] | None = {
                self.table.name: {"Keys": unique[start : start + 100], "ConsistentRead": True, **options}
            }
            while request:
                resp = self.table.meta.client.batch_get_item(RequestItems=request)
                found += resp.get("Responses", {}).get(self.table.name, [])
                request = resp.get("UnprocessedKeys") or None
        return found


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def cancellation_codes(exc: ClientError) -> list[str]:
    """Per-item reasons of a cancelled TransactWriteItems, in request order ('None' = fine)."""
    return [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]


def stored(value: Any) -> Any:
    """Plain JSON-able Python → DynamoDB resource values (float → Decimal; boto3 refuses floats).
    The inverse of :func:`plain`."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: stored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stored(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """DynamoDB resource values → plain JSON-able Python (Decimal → int/float)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
