"""Every Synthea fixture bundle imports through the synchronous path with counts that match the
files' own contents (the longest test: ~18,600 resources through moto)."""

from __future__ import annotations

import json
from collections import Counter

from tests.support.shared import FIXTURES as SHARED_FIXTURES

import pytest

from fhir_platform.imports import ImportOptions
from fhir_platform.imports.service import ImportService
from fhir_platform.world.entities import ENTITY_TYPES

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
        members = sum(1 for e in entries if e["resource"]["resourceType"] in ENTITY_TYPES)
        assert result["entities_created"] + result["entities_updated"] <= members, path.name
        for e in entries:
            rid = e["resource"].get("id") or e["fullUrl"].rsplit(":", 1)[-1]
            distinct[(e["resource"]["resourceType"], rid)] = None
    counts = service.resources.store.counters("ws-synthea")
    assert counts["resource_type_counts"] == dict(Counter(t for t, _ in distinct))
    by_type = Counter(ENTITY_TYPES[t] for t, _ in distinct if t in ENTITY_TYPES)
    # every Synthea patient is a different person: one entity each; the directory (practitioners,
    # organizations, locations) is resolved by identifier then name + address, so records of one
    # practitioner or organization repeated across files (or listed twice) may share an entity
    assert counts["entity_type_counts"]["patient"] == by_type["patient"]
    for entity_type, records in by_type.items():
        assert 1 <= counts["entity_type_counts"][entity_type] <= records, entity_type
    assert counts["entity_count"] == sum(counts["entity_type_counts"].values())
