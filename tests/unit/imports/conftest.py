"""Fixture data for the import tests (the shared, third-party FHIR samples) and the generator."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.shared import FIXTURES
SYNTHEA = FIXTURES / "synthea"
HL7 = FIXTURES / "hl7-fhir-r4-examples"
NDJSON_SMART = FIXTURES / "ndjson" / "smart-on-fhir_sample-bulk-fhir-datasets_10-patients"
NDJSON_PATHLING = FIXTURES / "ndjson" / "aehrc_pathling_test-data-fhir"
ROOT = Path(__file__).resolve().parents[3]


def synthea_patient_bundles() -> list[Path]:
    return sorted(p for p in SYNTHEA.glob("*/*.json") if not p.name.startswith(("hospital", "practitioner")))


def synthea_provider_bundles() -> list[Path]:
    return sorted(p for p in SYNTHEA.glob("*/*.json") if p.name.startswith(("hospital", "practitioner")))


def load(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        return json.load(f)


def gen_module():
    spec = importlib.util.spec_from_file_location("gen_ndjson", ROOT / "bench" / "gen_ndjson.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def gen():
    return gen_module()

