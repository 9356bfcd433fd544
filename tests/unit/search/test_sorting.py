"""FHIR ``_sort``: parsing, sort values, and the index items each type gets (pure)."""

from __future__ import annotations

import pytest

from fhir_platform.search.sorting import SortError, SortSpec, parse_sort, sort_fields, sort_items, sort_value


def test_fields_per_type() -> None:
    assert sort_fields("Patient") == ("_lastUpdated", "_id", "family", "given", "birthdate", "name")
    assert sort_fields("Observation") == ("_lastUpdated", "_id", "date")
    assert sort_fields("Condition") == ("_lastUpdated", "_id", "onset-date", "recorded-date")
    assert sort_fields("Organization") == ("_lastUpdated", "_id", "name")
    assert sort_fields("Basic") == ("_lastUpdated", "_id")  # no date parameter


@pytest.mark.parametrize(
    ("raw", "spec"),
    [
        (["family"], SortSpec("family", False, False)),
        (["-birthdate"], SortSpec("birthdate", True, True)),
        (["-birthdate,_id"], SortSpec("birthdate", True, False)),
        (["family", "-_id"], SortSpec("family", False, True)),  # repeated _sort parameters join
        (["-_id"], SortSpec("_id", True, True)),
        ([" _lastUpdated"], SortSpec("_lastUpdated", False, False)),  # an unencoded + decodes to a space
    ],
)
def test_parse(raw: list[str], spec: SortSpec) -> None:
    assert parse_sort("Patient", raw) == spec


@pytest.mark.parametrize("raw", [["gender"], ["family,given"], ["_id,family"], ["family,_id,_id"], ["family,"], [""], ["date"]])
def test_parse_refuses_naming_what_is_supported(raw: list[str]) -> None:
    with pytest.raises(SortError) as err:
        parse_sort("Patient", raw)
    assert "_lastUpdated, _id, family, given, birthdate, name" in str(err.value)


def test_no_sort() -> None:
    assert parse_sort("Patient", []) is None


def test_values() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"use": "maiden", "family": "Zed"}, {"use": "official", "family": "Ómez", "given": ["Ana", "María"]}],
        "birthDate": "1980-04",
        "meta": {"lastUpdated": "2026-01-02T03:04:05.6Z"},
    }
    assert sort_value("Patient", "family", patient) == "omez"
    assert sort_value("Patient", "given", patient) == "ana maria"
    assert sort_value("Patient", "birthdate", patient) == "1980-04-01T00:00:00.000Z"
    assert sort_value("Patient", "_lastUpdated", patient) == "2026-01-02T03:04:05.600Z"
    assert sort_value("Patient", "_id", patient) == "p1"
    assert sort_value("Patient", "birthdate", {"id": "p2"}) is None
    obs = {"resourceType": "Observation", "effectivePeriod": {"start": "2024-05-01T10:00:00+02:00"}, "issued": "2020-01-01T00:00:00Z"}
    assert sort_value("Observation", "date", obs) == "2024-05-01T08:00:00.000Z"  # effective[x] first, UTC


def test_items_one_per_field_in_the_value_or_none_family() -> None:
    items = sort_items("ws", "Patient", "p1", {"resourceType": "Patient", "id": "p1", "name": [{"family": "Li"}]})
    families = sorted(i["PK"].split("#")[4] for i in items)
    # name: the patient list's family; _id: the TypeIndex over CURRENT items (no item of its own)
    assert families == ["sort.birthdate.none", "sort.family", "sort.given.none"]
    family = next(i for i in items if "#sort.family#" in i["PK"])
    assert family["SK"] == "li#p1" and family["id"] == "p1"
    assert [len(sort_items("ws", t, "x", {"resourceType": t, "id": "x"})) for t in ("Observation", "Condition", "Organization", "Basic")] == [1, 2, 1, 0]
