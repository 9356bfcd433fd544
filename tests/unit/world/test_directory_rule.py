"""Practitioner / Organization / Location: identifier first, then exact normalised name + address."""

from __future__ import annotations

from fhir_platform.world.resolution import _decide_directory, directory_features, directory_keys

NPI = "http://hl7.org/fhir/sid/us-npi"


def test_features_normalise_identifiers_names_and_addresses() -> None:
    f = directory_features(
        "Practitioner",
        {
            "identifier": [{"system": "urn:local", "value": " AB-1 "}, {"system": NPI, "value": "1234567893"}, {"value": "no-system"}, {"system": "urn:old", "value": "x", "use": "old"}],
            "name": [{"prefix": ["Dr."], "family": "O'Brien", "given": ["Seán", "P"]}],
            "address": [{"line": ["10 North Main Street"], "postalCode": "02110-1234"}],
        },
    )
    assert f == {"identifiers": [f"{NPI}|1234567893", "urn:local|ab-1"], "name": "sean obrien", "address": "10 n main st|02110"}
    assert directory_keys(f) == [f"id:{NPI}|1234567893", "id:urn:local|ab-1", "na:sean obrien|10 n main st|02110"]


def test_location_address_is_one_object_and_city_stands_in_for_postal_code() -> None:
    f = directory_features("Location", {"name": "Ward 3", "address": {"line": ["1 Hospital Road"], "city": "Springfield"}})
    assert f["address"] == "1 hospital rd|springfield"
    assert directory_keys(directory_features("Organization", {"name": "Acme"})) == []  # no address: no name key


def test_rule_identifier_then_name_address_then_new() -> None:
    f = directory_features("Organization", {"name": "Acme Clinic", "identifier": [{"system": "urn:ein", "value": "12"}], "address": [{"line": ["1 Main St"], "postalCode": "01103"}]})
    by_id = ("Organization/a", "E1", {"identifiers": ["urn:ein|12"], "name": "other", "address": None})
    by_name = ("Organization/b", "E2", {"identifiers": [], "name": "acme clinic", "address": "1 main st|01103"})
    d = _decide_directory(f, [by_name, by_id])
    assert (d.outcome, d.entity_id, d.method, d.confidence) == ("link", "E1", "identifier", 0.99)
    d = _decide_directory(f, [by_name])
    assert (d.outcome, d.entity_id, d.method, d.confidence) == ("link", "E2", "name_address", 0.95)
    elsewhere = ("Organization/c", "E3", {"identifiers": [], "name": "acme clinic", "address": "9 elm st|01103"})
    assert _decide_directory(f, [elsewhere]).outcome == "new"
