"""ImportSummary: contract shape, policy, caps, merging across chunks, persistence."""

from __future__ import annotations

import json

import jsonschema
import pytest

from fhir_platform.errors import Unprocessable
from fhir_platform.imports import ImportIssue, ImportSummary, PreparedEntry, write_all

from tests.support.shared import CONTRACT


@pytest.fixture(scope="module")
def response_schema() -> dict:
    spec = json.loads(CONTRACT.read_text())
    schemas = spec["components"]["schemas"]
    schema = dict(schemas["FhirImportResponse"])
    schema["$defs"] = {"FhirUnsupportedResourceItem": schemas["FhirUnsupportedResourceItem"]}
    text = json.dumps(schema).replace("#/components/schemas/", "#/$defs/")
    return json.loads(text)


def unsupported(loc: str) -> ImportIssue:
    return ImportIssue(loc, "resource type 'Parameters' is not supported", "Parameters", None, "unsupported")


def test_response_matches_the_contract_schema(response_schema: dict) -> None:
    s = ImportSummary("error")
    s.record_write("created")
    s.record_write("updated")
    s.record_write("skipped")
    s.record_entity("created")
    s.add_issue(ImportIssue("entry[1]", "invalid Observation: status: bad", "Observation", "o1"))
    s.add_issue(unsupported("entry[2]"))
    body = s.to_response()
    jsonschema.validate(body, response_schema)
    assert set(body) == set(response_schema["properties"])
    assert body["events_created"] == body["events_updated"] == body["events_skipped"] == 1
    assert body["entities_created"] == 1 and body["entities_updated"] == 0
    assert body["error_count"] == 2  # policy 'error': the unsupported one is an error too
    assert body["errors"] == ["entry[1] (Observation/o1): invalid Observation: status: bad",
                              "entry[2] (Parameters/?): resource type 'Parameters' is not supported"]
    assert body["unsupported_resource_count"] == 1
    assert body["unsupported_resources"] == [{"resource_type": "Parameters", "resource_id": None, "location": "entry[2]",
                                              "reason": "resource type 'Parameters' is not supported"}]
    assert body["upsert_semantics"] == "same_resource_id_upsert"
    assert body["absence_semantics"] == "absent_resources_persist"


def test_skip_policy_lists_unsupported_without_errors(response_schema: dict) -> None:
    s = ImportSummary("skip")
    s.add_issue(unsupported("line 3"))
    assert s.error_count == 0 and s.errors == []
    assert s.unsupported_resource_count == 1 and s.unsupported_resources[0]["location"] == "line 3"
    jsonschema.validate(s.to_response(), response_schema)


def test_caps_truncation_and_long_texts(response_schema: dict) -> None:
    s = ImportSummary("error")
    for i in range(1200):
        s.add_issue(ImportIssue(f"line {i + 1}", "x" * 2000))
    for i in range(1100):
        s.add_issue(ImportIssue(f"line {i + 1}", "r" * 600, "Basic" * 40, "i" * 600, "unsupported"))
    body = s.to_response()
    assert body["error_count"] == 2300 and len(body["errors"]) == 1000 and body["errors_truncated"]
    assert body["unsupported_resource_count"] == 1100 and len(body["unsupported_resources"]) == 1000
    assert body["unsupported_resources_truncated"]
    assert max(len(e) for e in body["errors"]) <= 1024
    jsonschema.validate(body, response_schema)  # maxItems and maxLength hold


def test_merge_sums_chunks_and_respects_caps() -> None:
    job = ImportSummary("error")
    chunks = []
    for c in range(6):
        s = ImportSummary("error")
        for _ in range(150):
            s.record_write("created")
        s.record_write("skipped")
        for i in range(200):
            s.add_issue(ImportIssue(f"entry[{c * 1000 + i}]", "bad"))
        s.add_issue(unsupported(f"entry[{c * 1000 + 999}]"))
        chunks.append(s)
    for s in chunks:
        job.merge(s)
    assert job.events_created == 900 and job.events_skipped == 6
    assert job.error_count == 6 * 201 and len(job.errors) == 1000 and job.errors_truncated
    assert job.unsupported_resource_count == 6 and not job.unsupported_resources_truncated
    assert job.errors[0] == "entry[0]: bad"
    # a truncated part keeps the whole truncated
    part = ImportSummary("error", max_errors=1)
    part.add_issue(ImportIssue("a", "b"))
    part.add_issue(ImportIssue("c", "d"))
    assert ImportSummary().merge(part).errors_truncated


def test_round_trip_through_a_dict_with_decimals() -> None:
    from decimal import Decimal

    s = ImportSummary("skip")
    s.record_write("created")
    s.add_issue(ImportIssue("line 2", "bad", "Patient", "p"))
    s.add_issue(unsupported("line 3"))
    s.resources_received = 3
    stored = json.loads(json.dumps(s.to_dict()))
    stored = {k: Decimal(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in stored.items()}
    back = ImportSummary.from_dict(stored)
    assert back.to_dict() == s.to_dict()
    assert back.policy == "skip"


def test_bad_outcomes_and_policy_are_refused() -> None:
    with pytest.raises(ValueError):
        ImportSummary("ignore")
    with pytest.raises(ValueError):
        ImportSummary().record_write("deleted")
    with pytest.raises(ValueError):
        ImportSummary().record_entity("merged")


def test_write_all_records_outcomes_and_per_resource_domain_errors() -> None:
    items = [
        PreparedEntry("line 1", "Patient", "a", {"resourceType": "Patient", "id": "a"}),
        ImportIssue("line 2", "invalid JSON"),
        PreparedEntry("line 3", "Patient", "b", {"resourceType": "Patient", "id": "b"}),
        PreparedEntry("line 4", "Patient", "c", {"resourceType": "Patient", "id": "c"}),
    ]

    def write(entry: PreparedEntry):
        if entry.resource_id == "b":
            raise Unprocessable("Invalid Patient resource: name: bad")
        return ("created", "created") if entry.resource_id == "a" else ("skipped", None)

    s = write_all(items, ImportSummary(), write)
    assert (s.events_created, s.events_skipped, s.entities_created, s.error_count) == (1, 1, 1, 2)
    assert s.errors == ["line 2: invalid JSON", "line 3 (Patient/b): Invalid Patient resource: name: bad"]
    assert s.resources_received == 4


def test_write_all_lets_infrastructure_errors_through() -> None:
    def write(entry: PreparedEntry):
        raise ConnectionError("throttled")

    with pytest.raises(ConnectionError):
        write_all([PreparedEntry("line 1", "Patient", "a", {})], ImportSummary(), write)
