import json

import pytest

from fhir_platform.fhir.validation import FhirValidationError, UnknownResourceTypeError, validate_resource
from fhir_platform.world.entities import DeterministicResolver, patient_reference
from tests.support.shared import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "hl7-fhir-r4-examples"


@pytest.mark.parametrize("name", ["Patient-example.json", "Observation-bmi.json", "Condition-example.json", "Encounter-example.json"])
def test_official_examples_validate(name: str) -> None:
    if not FIXTURES.exists():
        pytest.skip("shared fixtures not present")
    data = json.loads((FIXTURES / name).read_text())
    assert validate_resource(data, expected_type=data["resourceType"]) == data["resourceType"]


def test_problems_name_their_location() -> None:
    with pytest.raises(FhirValidationError) as err:
        validate_resource({"resourceType": "Patient", "name": [{"given": "x"}], "extra": 1})
    locs = {p.loc for p in err.value.problems}
    assert locs == {"name.0.given", "extra"}
    with pytest.raises(FhirValidationError) as err:
        validate_resource({"resourceType": "Patient", "id": "has space"})
    assert err.value.problems[0].loc == "id"


def test_unknown_and_transport_types_are_not_storable() -> None:
    for rt in ("Spaceship", "Bundle", "OperationOutcome"):
        with pytest.raises(UnknownResourceTypeError):
            validate_resource({"resourceType": rt})


def test_deterministic_resolution() -> None:
    lookups: list[tuple[str, str]] = []
    resolver = DeterministicResolver(lambda ws, pid: lookups.append((ws, pid)) or ("ent-1" if pid == "p1" else None))
    p = resolver.resolve("ws", "Patient", "p1", {})
    assert p.owns_entity and p.confidence == 1.0 and p.entity_id == resolver.resolve("ws", "Patient", "p1", {}).entity_id
    assert p.entity_id != resolver.resolve("other-ws", "Patient", "p1", {}).entity_id
    assert resolver.resolve("ws", "Observation", "o", {"subject": {"reference": "Patient/p1"}}).entity_id == "ent-1"
    assert resolver.resolve("ws", "Observation", "o", {"subject": {"reference": "Patient/p2"}}).entity_id is None
    assert resolver.resolve("ws", "Observation", "o", {"subject": {"reference": "Group/g"}}).entity_id is None
    assert patient_reference({"patient": {"reference": "Patient/x"}}) == "x"
    assert patient_reference({"subject": {"reference": "https://other/Patient/x"}}) is None
