"""A data source's free-form objects (``connection_config``, ``field_mappings``) are stored as sent,
numbers included, or refused with a 422 naming the field — never a 500.

Found by the OpenAPI fuzz run (tests/e2e/test_openapi_fuzz.py): ``PATCH .../data-sources/{id}`` with
a decimal number anywhere in ``field_mappings`` answered 500 (boto3 refuses Python floats; the
write failed after validation), and a number DynamoDB cannot hold (``1.8e242``), an object nested
deeper than DynamoDB's 32 levels or over its 400 KB item would fail the same way in AWS.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import ADMIN_KEY, new_workspace
from tests.support.gateway import Gateway

CONFIG = {"base_url": "https://ehr.example.org/fhir/R4"}


@pytest.fixture
def source(gateway: Gateway) -> tuple[str, str]:
    ws = new_workspace(gateway)["id"]
    ds = gateway.call("POST", f"/v1/{ws}/data-sources", token=ADMIN_KEY, body={"name": "x", "source_type": "fhir_store", "connection_config": CONFIG})
    assert ds.status == 201, ds.body
    return ws, ds.body["id"]


def test_decimal_numbers_are_stored_and_read_back(gateway: Gateway, source: tuple[str, str]) -> None:
    ws, ds = source
    mappings = {"weight": {"scale": 0.4536, "offset": -1.5, "limit": 1e20, "tiny": 2.5e-7, "count": 3}, "flags": [0.1, 2]}
    patched = gateway.call("PATCH", f"/v1/{ws}/data-sources/{ds}", token=ADMIN_KEY, body={"field_mappings": mappings})
    assert patched.status == 200, patched.body
    assert patched.body["field_mappings"] == mappings
    assert gateway.call("GET", f"/v1/{ws}/data-sources/{ds}", token=ADMIN_KEY).body["field_mappings"] == mappings
    created = gateway.call("POST", f"/v1/{ws}/data-sources", token=ADMIN_KEY, body={"name": "y", "source_type": "fhir_store", "connection_config": CONFIG, "field_mappings": mappings})
    assert created.status == 201 and created.body["field_mappings"] == mappings, created.body


def _nested(depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        out = {"next": out}
    return out


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ({"x": 1.8724844805959077e242}, "number_range"),
        ({"x": [10**40]}, "number_range"),
        ({"x": 1e-140}, "number_range"),
        (_nested(17), "too_deep"),
        ({"x": "a" * 70_000}, "too_large"),
    ],
    ids=["huge float", "40-digit integer", "tiny float", "17 levels", "70 KB"],
)
def test_what_cannot_be_stored_is_refused_where_it_is(gateway: Gateway, source: tuple[str, str], value: dict[str, Any], kind: str) -> None:
    ws, ds = source
    before = gateway.call("GET", f"/v1/{ws}/data-sources/{ds}", token=ADMIN_KEY).body
    for field in ("field_mappings", "connection_config"):
        reply = gateway.call("PATCH", f"/v1/{ws}/data-sources/{ds}", token=ADMIN_KEY, body={field: value})
        assert reply.status == 422, (field, reply.status, reply.body)
        assert [(d["loc"], d["type"]) for d in reply.body["detail"]] == [(["body", field], kind)], reply.body
    assert _nested(16) and gateway.call("PATCH", f"/v1/{ws}/data-sources/{ds}", token=ADMIN_KEY, body={"field_mappings": _nested(16)}).status == 200
    after = gateway.call("GET", f"/v1/{ws}/data-sources/{ds}", token=ADMIN_KEY).body
    assert {k: v for k, v in after.items() if k not in ("field_mappings", "updated_at")} == {k: v for k, v in before.items() if k not in ("field_mappings", "updated_at")}
