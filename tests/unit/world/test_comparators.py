"""Every level of every comparison, field by field: the pair reaches the first level that holds."""

from __future__ import annotations

import pytest

from fhir_platform.world.comparators import NULL, PATIENT_COMPARISONS, comparison_by_name, compare

from .conftest import features


def level(field: str, a: dict, b: dict) -> str:
    return comparison_by_name(field).compare(features(**a), features(**b))


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("Smith", "smith", "exact"),
        ("Smith", "Smyth", "jaro_winkler_92"),  # one edit
        ("Anderson", "Andersen", "jaro_winkler_92"),  # JW 0.95
        ("Johnson", "Jonsen", "jaro_winkler_85"),  # JW 0.879, two edits
        ("Smith", "Smythe", "jaro_winkler_85"),  # JW 0.858
        ("Dixon", "Dickson", "phonetic"),  # JW 0.832, both Metaphone TKSN
        ("Knight", "Nite", "phonetic"),  # JW 0.61, both Metaphone NT
        ("Smith", "Jones", "else"),
    ],
)
def test_family_name_levels(a: str, b: str, expected: str) -> None:
    assert level("family_name", {"family": a}, {"family": b}) == expected


def test_family_alias_matches_a_maiden_name() -> None:
    a = {"family": "Jones", "extra_names": [{"use": "maiden", "family": "Brown"}]}
    assert level("family_name", a, {"family": "Brown"}) == "alias"


def test_swapped_given_and_family() -> None:
    a, b = {"family": "Taylor", "given": "James"}, {"family": "James", "given": "Taylor"}
    assert level("family_name", a, b) == "swapped"
    assert level("given_name", a, b) == "swapped"


def test_given_name_levels() -> None:
    assert level("given_name", {"given": "Anne"}, {"given": "anne"}) == "exact"
    assert level("given_name", {"given": ["Mary", "Ann"]}, {"given": "Ann"}) == "alias"  # middle name
    assert level("given_name", {"given": "Jon"}, {"given": "John"}) == "jaro_winkler_92"
    assert level("given_name", {"given": "Stevens"}, {"given": "Stephens"}) == "jaro_winkler_85"  # JW 0.908
    assert level("given_name", {"given": "Catherine"}, {"given": "Kathryn"}) == "phonetic"  # Metaphone K0RN
    assert level("given_name", {"given": "Anne"}, {"given": "Robert"}) == "else"


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("1980-04-12", "1980-04-12", "exact"),
        ("1980-04-12", "1980-12-04", "transposed"),
        ("1980-04-12", "1980-04-13", "one_digit"),
        ("1980-04-12", "1908-04-12", "one_digit"),  # adjacent digits swapped
        ("1980-04-12", "1980-09-30", "year"),
        ("1980", "1980-09-30", "year"),  # one side known only to the year
        ("1980-04-12", "1975-11-02", "else"),
    ],
)
def test_birth_date_levels(a: str, b: str, expected: str) -> None:
    assert level("birth_date", {"birth": a}, {"birth": b}) == expected


def test_gender_levels() -> None:
    assert level("gender", {"gender": "female"}, {"gender": "female"}) == "exact"
    assert level("gender", {"gender": "female"}, {"gender": "male"}) == "else"
    assert level("gender", {"gender": "female"}, {"gender": None}) == NULL


def test_phone_levels() -> None:
    assert level("phone", {"phone": "(555) 010-0012"}, {"phone": "+1 555 010 0012"}) == "exact"
    assert level("phone", {"phone": "555-010-0012"}, {"phone": "555-010-0013"}) == "one_digit"
    assert level("phone", {"phone": "555-010-0012"}, {"phone": "555-777-1234"}) == "else"


def test_email_levels() -> None:
    assert level("email", {"email": "Ann@x.org"}, {"email": "ann@x.org "}) == "exact"
    assert level("email", {"email": "ann.lee@x.org"}, {"email": "ann.le@x.org"}) == "fuzzy"
    assert level("email", {"email": "ann@x.org"}, {"email": "bob.jones@y.com"}) == "else"


def test_address_line_levels() -> None:
    assert level("address_line", {"line": "12 Wallaby Street"}, {"line": "12 wallaby st"}) == "exact"
    assert level("address_line", {"line": "12 Wallaby St"}, {"line": "12 Walaby St"}) == "fuzzy_90"
    assert level("address_line", {"line": "12 Wallaby St Unit 4"}, {"line": "12 Wallaby St"}) == "fuzzy_75"
    assert level("address_line", {"line": "12 Wallaby St"}, {"line": "99 Ocean Parade"}) == "else"


def test_city_levels() -> None:
    assert level("city", {"city": "Springfield"}, {"city": "springfield"}) == "exact"
    assert level("city", {"city": "Springfield"}, {"city": "Springfeild"}) == "fuzzy"
    assert level("city", {"city": "Springfield"}, {"city": "Boston"}) == "else"


def test_postal_code_levels() -> None:
    assert level("postal_code", {"postal": "2119"}, {"postal": "2119"}) == "exact"
    assert level("postal_code", {"postal": "2119"}, {"postal": "2191"}) == "one_edit"
    assert level("postal_code", {"postal": "2119"}, {"postal": "4881"}) == "else"


def test_identifier_levels_compare_only_within_a_system() -> None:
    sys_a = "http://hospital.example/mrn"

    def ids(value: str, system: str = sys_a) -> dict:
        return {"identifiers": [(system, value, "MR")]}

    assert level("identifier", ids("1804974"), ids("1804974")) == "exact"
    assert level("identifier", ids("1804974"), ids("1804947")) == "one_edit"
    assert level("identifier", ids("1804974"), ids("1814964")) == "two_edits"
    assert level("identifier", ids("1804974"), ids("5551234")) == "else"
    # different systems: nothing to compare, neutral
    assert level("identifier", ids("1804974"), ids("1804974", "http://other.example")) == NULL


def test_missing_values_are_null_for_every_comparison() -> None:
    empty = features(family=None, given=None, birth=None, gender=None)
    full = features(phone="555-010-0012", email="a@b.c", line="1 A St", city="X", postal="1", identifiers=[("s", "v", "MR")])
    vector = compare(empty, full)
    assert set(vector) == {c.name for c in PATIENT_COMPARISONS}
    assert set(vector.values()) == {NULL}


def test_levels_are_ordered_and_end_with_else() -> None:
    for c in PATIENT_COMPARISONS:
        assert c.levels[0].name == "exact"
        assert c.levels[-1].name == "else" and c.levels[-1].predicate is None
        assert len(set(c.level_names)) == len(c.level_names)


def test_swapped_needs_both_parts_crossed() -> None:
    # a household: "Smith, Mary" vs a record of "Smith" written with family and given swapped would
    # cross one part only — that is not a swap
    assert level("family_name", {"family": "Smith", "given": "Mary"}, {"family": "John", "given": "Smith"}) == "else"
    assert level("family_name", {"family": "Smith", "given": "Mary"}, {"family": "Mary", "given": "Smyth"}) == "swapped"
