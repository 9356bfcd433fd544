"""Where the shared reference material lives: ``../shared`` beside the project checkout
(``fixtures/`` with HL7 examples and Synthea bundles, ``reference/`` with the HTTP contract)."""

from __future__ import annotations

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
SHARED = PROJECT.parent / "shared"
FIXTURES = SHARED / "fixtures"
CONTRACT = SHARED / "reference" / "platform-fhir-openapi.json"
