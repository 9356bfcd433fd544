"""Validate response bodies against the public contract (shared/reference/platform-fhir-openapi.json)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.support.template import ROOT

CONTRACT = ROOT.parent / "shared" / "reference" / "platform-fhir-openapi.json"


@cache
def _spec() -> dict[str, Any]:
    return json.loads(CONTRACT.read_text())


def assert_matches(schema_name: str, body: Any) -> None:
    if not CONTRACT.exists():
        pytest.skip("shared/reference contract not present")
    spec = _spec()
    assert schema_name in spec["components"]["schemas"], schema_name
    validator = Draft202012Validator({"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]})
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
