"""Limits, request checks, import options, S3 key layout, and the benchmark data generator."""

from __future__ import annotations

import json
import uuid

import pytest

from fhir_platform.errors import InvalidInput, PayloadTooLarge
from fhir_platform.imports import (
    STREAM_MAX_LINES,
    SYNC_MAX_BODY_BYTES,
    ImportBodyTooLarge,
    ImportOptions,
    PreparedEntry,
    check_body_size,
    chunk_key,
    job_id_for_object,
    parse_drop_key,
    prepare_ndjson,
)

from .conftest import synthea_patient_bundles

WS = "5b0f3c1e-8a5d-4e0e-9a55-0c3c2d1e4f60"
LAMBDA_SYNC_PAYLOAD = 6 * 1024 * 1024


def test_sync_limit_fits_lambda_payload_even_base64_encoded() -> None:
    # the event envelope (headers, request context) is a few KB; base64 inflates by 4/3
    assert SYNC_MAX_BODY_BYTES * 4 / 3 + 64 * 1024 < LAMBDA_SYNC_PAYLOAD
    # and the largest real bundle we ship as a fixture can be imported synchronously
    assert max(p.stat().st_size for p in synthea_patient_bundles()) < SYNC_MAX_BODY_BYTES
    assert STREAM_MAX_LINES == 10_000


def test_body_over_limit_is_413_with_the_s3_path() -> None:
    check_body_size(SYNC_MAX_BODY_BYTES, workspace_id=WS)
    with pytest.raises(ImportBodyTooLarge) as exc:
        check_body_size(SYNC_MAX_BODY_BYTES + 1, workspace_id=WS, bucket="fhir-imports")
    err = exc.value
    assert isinstance(err, PayloadTooLarge)
    assert f"s3://fhir-imports/imports/{WS}/" in err.message
    assert err.s3_prefix == f"imports/{WS}/" and err.limit == SYNC_MAX_BODY_BYTES


def test_options_defaults_and_validation() -> None:
    o = ImportOptions()
    assert o.to_dict() == {"source": "fhir_import", "source_system": None, "data_source_id": None, "dedup": True,
                           "unsupported_resource_policy": "error"}
    assert ImportOptions.from_dict(o.to_dict()) == o
    for bad in ({"source": "x" * 129}, {"source": ""}, {"source_system": "y" * 129}, {"data_source_id": "nope"},
                {"unsupported_resource_policy": "ignore"}):
        with pytest.raises(InvalidInput):
            ImportOptions(**bad)


def test_options_from_s3_metadata() -> None:
    ds = str(uuid.uuid4())
    o = ImportOptions.from_s3_metadata({"source": "epic-export", "source-system": "epic", "data-source-id": ds,
                                        "dedup": "false", "unsupported-resource-policy": "SKIP"})
    assert o == ImportOptions("epic-export", "epic", ds, False, "skip")
    assert ImportOptions.from_s3_metadata(None) == ImportOptions()


def test_s3_keys_and_job_ids() -> None:
    assert parse_drop_key(f"imports/{WS}/2024/upload.ndjson") == (WS, "2024/upload.ndjson")
    assert parse_drop_key("imports/not-a-uuid/x.json") is None
    assert parse_drop_key(f"import-chunks/{WS}/j/000001.ndjson") is None
    assert chunk_key(WS, "job", 7) == f"import-chunks/{WS}/job/000007.ndjson"
    a = job_id_for_object("b", f"imports/{WS}/x.json", "v1")
    assert a == job_id_for_object("b", f"imports/{WS}/x.json", "v1") != job_id_for_object("b", f"imports/{WS}/x.json", "v2")
    uuid.UUID(a)


def test_generator_is_deterministic_valid_and_counts(tmp_path, gen) -> None:
    a, b, c = tmp_path / "a.ndjson", tmp_path / "b.ndjson", tmp_path / "c.ndjson"
    sa = gen.generate(str(a), count=2300, seed=5)
    gen.generate(str(b), count=2300, seed=5)
    gen.generate(str(c), count=2300, seed=6)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert sa["resources"] == 2300 and sa["by_type"] == {"Patient": 100, "Observation": 1800, "Condition": 400}
    items = list(prepare_ndjson(a.read_bytes()))
    assert all(isinstance(i, PreparedEntry) for i in items), [i for i in items if not isinstance(i, PreparedEntry)][:2]
    sizes = {}
    for i in items:
        sizes.setdefault(i.resource_type, []).append(len(json.dumps(i.data, separators=(",", ":"))))
    assert 1000 < sum(sizes["Patient"]) / len(sizes["Patient"]) < 3000
    assert 400 < sum(sizes["Observation"]) / len(sizes["Observation"]) < 1500
    patients = {f"Patient/{i.resource_id}" for i in items if i.resource_type == "Patient"}
    assert all(i.data["subject"]["reference"] in patients for i in items if i.resource_type != "Patient")


def test_generator_bundle_mode_needs_reference_resolution(tmp_path, gen) -> None:
    from fhir_platform.imports import prepare_bundle

    path = tmp_path / "tx.json"
    gen.generate(str(path), count=230, seed=1, bundle="transaction")
    raw = json.loads(path.read_text())
    assert raw["entry"][1]["resource"]["subject"]["reference"].startswith("urn:uuid:")
    p = prepare_bundle(raw)
    assert p.issues == [] and len(p.entries) == 230
    assert p.entries[1].data["subject"]["reference"] == f"Patient/{p.entries[0].resource_id}"
