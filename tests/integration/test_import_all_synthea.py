"""Every Synthea fixture bundle imports through the synchronous path with counts that match the
files' own contents (the longest test: ~18,600 resources through moto)."""

from __future__ import annotations

import json
from collections import Counter

from tests.support.shared import FIXTURES as SHARED_FIXTURES

import pytest

from fhir_platform.imports import ImportOptions
from fhir_platform.imports.service import ImportService

FIXTURES = SHARED_FIXTURES / "synthea"


@pytest.mark.xdist_group("synthea-all")
def test_every_synthea_fixture_imports_with_matching_counts(aws: dict) -> None:
    files = sorted(FIXTURES.rglob("*.json"))
    if not files:
        pytest.skip("shared fixtures not present")
    service = ImportService()
    distinct: dict[tuple[str, str], None] = {}
    for path in files:
        bundle = json.loads(path.read_text())
        entries = bundle["entry"]
        result = service.import_bundle("ws-synthea", bundle, ImportOptions(source_system="synthea"))
        assert result["error_count"] == 0, (path.name, result["errors"][:3])
        assert result["unsupported_resource_count"] == 0, path.name
        assert result["events_created"] + result["events_updated"] + result["events_skipped"] == len(entries), path.name
        patients = sum(1 for e in entries if e["resource"]["resourceType"] == "Patient")
        assert result["entities_created"] + result["entities_updated"] <= patients, path.name
        for e in entries:
            rid = e["resource"].get("id") or e["fullUrl"].rsplit(":", 1)[-1]
            distinct[(e["resource"]["resourceType"], rid)] = None
    counts = service.resources.store.counters("ws-synthea")
    assert counts["resource_type_counts"] == dict(Counter(t for t, _ in distinct))
    assert counts["entity_type_counts"] == {"patient": sum(1 for t, _ in distinct if t == "Patient")}
