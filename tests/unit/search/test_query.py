import pytest
from fhir_platform.search.query import (
    DateValue,
    QueryError,
    RefValue,
    TokenValue,
    date_matches,
    matches,
    parse_patient_search,
    parse_search,
)

from .search_testdata import hl7


def match(resource_type: str, params: dict, resource: dict) -> bool:
    return matches(parse_search(resource_type, params).criteria, resource)


def error(resource_type: str, params: dict) -> QueryError:
    with pytest.raises(QueryError) as info:
        parse_search(resource_type, params)
    return info.value


# --- parsing ---------------------------------------------------------------------------------


def test_count_and_offset_defaults_and_bounds():
    q = parse_search("Patient", {})
    assert (q.count, q.offset, q.criteria) == (20, 0, ())
    assert parse_search("Patient", {"_count": "100", "_offset": "40"}).count == 100
    for bad in ("0", "101", "ten", "-1"):
        assert error("Patient", {"_count": bad}).param == "_count"
    assert error("Patient", {"_offset": "-1"}).param == "_offset"
    assert "between 1 and 100" in error("Patient", {"_count": "500"}).msg


def test_unknown_parameter_is_named_with_the_supported_ones():
    e = error("Observation", {"code": "1", "birthdate": "2000"})
    assert e.param == "birthdate"
    assert "unknown search parameter for Observation" in e.msg and "code" in e.msg
    assert str(e).startswith("birthdate: ")
    assert error("Patient", {"_sort": "name"}).param == "_sort"


def test_unknown_modifier_and_prefix_are_rejected():
    assert error("Patient", {"name:contains": "ab"}).param == "name:contains"
    assert "supported: :exact" in error("Patient", {"name:contains": "ab"}).msg
    assert error("Patient", {"birthdate:exact": "2000"}).param == "birthdate:exact"
    e = error("Patient", {"birthdate": "ap2000"})
    assert e.param == "birthdate" and "unknown date prefix 'ap'" in e.msg


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"birthdate": "2000-13-01"}, "birthdate"),
        ({"birthdate": "yesterday"}, "birthdate"),
        ({"date": "ge"}, "date"),
        ({"patient": "Patient?name=x"}, "patient"),
        ({"patient": "Practitioner/1"}, "patient"),
        ({"subject:Group": "Patient/1"}, "subject:Group"),
        ({"identifier": "|"}, "identifier"),
        ({"name": "  "}, "name"),
        ({"name": "a,,b"}, "name"),
        ({"q": "!!!"}, "q"),
        ({"_id": "not an id"}, "_id"),
        ({"phone": "call me"}, "phone"),
        ({"name": "x" * 201}, "name"),
    ],
)
def test_malformed_values_name_their_parameter(params, param):
    assert error("Patient" if "subject:Group" not in params else "Observation", params).param == param


def test_token_forms():
    crit = parse_search("Observation", {"code": "http://loinc.org|8302-2,|local,8867-4,http://loinc.org|"}).criteria[0]
    assert crit.values == (
        TokenValue("http://loinc.org", "8302-2"),
        TokenValue("", "local"),
        TokenValue(None, "8867-4"),
        TokenValue("http://loinc.org", None),
    )


def test_reference_forms_and_type_modifier():
    def refs(params):
        return parse_search("Observation", params).criteria[0].values

    assert refs({"patient": "Patient/123"}) == (RefValue("Patient", "123"),)
    assert refs({"patient": "123"}) == (RefValue(None, "123"),)
    assert refs({"subject:Patient": "123"}) == (RefValue("Patient", "123"),)
    assert refs({"subject": "https://ehr.example.org/fhir/Group/g1"}) == (RefValue("Group", "g1"),)


def test_escaped_comma_is_a_literal():
    crit = parse_search("Patient", {"name": "Smith\\, Jr,Jones"}).criteria[0]
    assert [v.raw for v in crit.values] == ["Smith, Jr", "Jones"]


def test_date_prefixes_parse():
    crit = parse_search("Patient", {"birthdate": "ge2024-03,eb1980"}).criteria[0]
    assert crit.values == (
        DateValue("ge", "2024-03-01T00:00:00.000Z", "2024-04-01T00:00:00.000Z"),
        DateValue("eb", "1980-01-01T00:00:00.000Z", "1981-01-01T00:00:00.000Z"),
    )


# --- string semantics ------------------------------------------------------------------------


def test_string_is_case_and_accent_insensitive_prefix_on_any_name_part():
    p = hl7("Patient-example")  # Chalmers, Peter James, Jim, Windsor
    assert match("Patient", {"name": "chal"}, p)
    assert match("Patient", {"name": "PETER"}, p)
    assert match("Patient", {"name": "wind"}, p)
    assert not match("Patient", {"name": "halmers"}, p)  # prefix, not contains
    assert match("Patient", {"family": "Chalmers"}, p)
    assert not match("Patient", {"family": "Peter"}, p)
    assert match("Patient", {"given": "ji"}, p)
    p["name"][0]["family"] = "Álvarez-Núñez"
    assert match("Patient", {"family": "alvarez"}, p)
    assert match("Patient", {"family": "nunez"}, p)  # word after a hyphen
    assert match("Patient", {"name": "ÁLVAREZ-NÚÑ"}, p)


def test_string_exact_is_whole_value_case_and_accent_sensitive():
    p = hl7("Patient-example")
    p["name"][0]["family"] = "Álvarez"
    assert match("Patient", {"family:exact": "Álvarez"}, p)
    assert not match("Patient", {"family:exact": "alvarez"}, p)
    assert not match("Patient", {"family:exact": "Álv"}, p)


def test_or_within_a_parameter_and_across_parameters():
    p = hl7("Patient-example")
    assert match("Patient", {"family": "nobody,chalm"}, p)
    assert not match("Patient", {"family": "chalm", "gender": "female"}, p)
    assert match("Patient", {"family": "chalm", "gender": "male,female"}, p)


def test_q_needs_every_word_to_prefix_a_word():
    p = hl7("Patient-example")
    assert match("Patient", {"q": "peter chal"}, p)
    assert match("Patient", {"q": "Chalmers, Peter"}, p)
    assert not match("Patient", {"q": "peter smith"}, p)
    obs = hl7("Observation-example")
    assert match("Observation", {"q": "body weigh"}, obs)
    assert not match("Observation", {"q": "height"}, obs)


# --- token semantics -------------------------------------------------------------------------


def test_token_system_and_code_forms():
    obs = hl7("Observation-example")
    assert match("Observation", {"code": "29463-7"}, obs)
    assert match("Observation", {"code": "http://loinc.org|29463-7"}, obs)
    assert not match("Observation", {"code": "http://snomed.info/sct|29463-7"}, obs)
    assert not match("Observation", {"code": "|29463-7"}, obs)  # it has a system
    assert match("Observation", {"code": "http://snomed.info/sct|"}, obs)
    assert match("Observation", {"code": "BODY-WEIGHT"}, obs)  # case-insensitive codes
    assert match("Observation", {"status": "final"}, obs)
    assert match("Observation", {"status:not": "amended"}, obs)
    assert not match("Observation", {"status:not": "final"}, obs)
    slot = hl7("Slot-1")
    assert match("Slot", {"status": "|busy"}, slot)  # plain code: no system


def test_identifier_and_condition_status():
    p = hl7("Patient-example")
    assert match("Patient", {"identifier": "urn:oid:1.2.36.146.595.217.0.1|12345"}, p)
    assert match("Patient", {"identifier": "12345"}, p)
    assert not match("Patient", {"identifier": "other|12345"}, p)
    cond = hl7("Condition-example")
    assert match("Condition", {"status": "active"}, cond)
    assert match(
        "Condition", {"clinical-status": "http://terminology.hl7.org/CodeSystem/condition-clinical|active"}, cond
    )
    assert not match("Condition", {"status": "resolved"}, cond)


# --- date semantics --------------------------------------------------------------------------


def born(date: str) -> dict:
    return {"resourceType": "Patient", "id": "p", "birthDate": date}


@pytest.mark.parametrize(
    ("query", "birth", "expected"),
    [
        ("1974", "1974-12-25", True),
        ("1974-12", "1974-12-25", True),
        ("1974-12-25", "1974-12-25", True),
        ("1974-11", "1974-12-25", False),
        ("eq1974", "1974", True),
        ("1974-12-25", "1974", False),  # a year is not inside a day
        ("ne1974", "1975-01-01", True),
        ("ne1974", "1974-06-01", False),
        ("gt1974", "1975-01-01", True),
        ("gt1974", "1974-12-31", False),
        ("ge1974", "1974-01-01", True),
        ("ge1974", "1973-12-31", False),
        ("lt1974", "1973-12-31", True),
        ("lt1974", "1974-01-01", False),
        ("le1974", "1974-12-31", True),
        ("le1974", "1975-01-01", False),
        ("sa1974-12-25", "1974-12-26", True),
        ("sa1974-12-25", "1974-12-25", False),
        ("eb1974-12-25", "1974-12-24", True),
        ("eb1974-12-25", "1974-12-25", False),
        ("gt1974-06", "1974", True),  # the year extends past June
        ("sa1974-06", "1974", False),  # ... so it does not start after it
        ("lt1974-06", "1974", True),
        ("eb1974-06", "1974", False),
    ],
)
def test_birthdate_prefixes_and_partial_dates(query, birth, expected):
    assert match("Patient", {"birthdate": query}, born(birth)) is expected


def test_dates_with_time_zones_and_periods():
    enc = {
        "resourceType": "Encounter",
        "id": "e",
        "period": {"start": "2024-03-05T23:30:00-05:00", "end": "2024-03-06T01:00:00-05:00"},
    }
    assert match("Encounter", {"date": "2024-03-06"}, enc)  # 04:30Z .. 06:00Z
    assert not match("Encounter", {"date": "2024-03-05"}, enc)
    assert match("Encounter", {"date": "ge2024-03-06T05:00:00Z"}, enc)
    assert match("Encounter", {"date": "gt2024-03-06T05:00:00Z"}, enc)
    assert not match("Encounter", {"date": "sa2024-03-06T05:00:00Z"}, enc)
    ongoing = {"resourceType": "Encounter", "id": "o", "period": {"start": "2024-01-01"}}
    assert match("Encounter", {"date": "gt2030"}, ongoing)  # no end: still going
    assert not match("Encounter", {"date": "eb2030"}, ongoing)
    assert match("Encounter", {"date": "sa2023"}, ongoing)


def test_date_matches_is_the_r4_table():
    s = ("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z")
    inside = ("2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z")
    straddle = ("2023-12-31T00:00:00Z", "2024-01-02T00:00:00Z")
    assert date_matches("eq", *s, *inside) and not date_matches("eq", *s, *straddle)
    assert date_matches("ne", *s, *straddle)
    assert date_matches("lt", *s, *straddle) and date_matches("le", *s, *straddle)
    assert not date_matches("ge", *s, *straddle) and not date_matches("gt", *s, *straddle)
    assert not date_matches("eb", *s, *straddle)


def test_last_updated():
    p = hl7("Patient-example")
    p["meta"] = {"lastUpdated": "2024-03-05T10:00:00.000+00:00"}
    assert match("Patient", {"_lastUpdated": "2024-03-05"}, p)
    assert match("Patient", {"_lastUpdated": "gt2024-03-05T09:59:59Z"}, p)
    assert not match("Patient", {"_lastUpdated": "gt2024-03-05T10:00:00Z"}, p)


# --- reference and phone ---------------------------------------------------------------------


def test_reference_type_id_bare_id_and_urn():
    obs = hl7("Observation-example")  # subject Patient/example
    assert match("Observation", {"patient": "Patient/example"}, obs)
    assert match("Observation", {"patient": "example"}, obs)
    assert match("Observation", {"subject:Patient": "example"}, obs)
    assert match("Observation", {"subject": "http://other.server/fhir/Patient/example"}, obs)
    assert not match("Observation", {"subject": "Group/example"}, obs)
    assert not match("Observation", {"patient": "Patient/other"}, obs)
    synthea_obs = {"resourceType": "Observation", "id": "o", "subject": {"reference": "urn:uuid:abc-1"}}
    assert match("Observation", {"patient": "Patient/abc-1"}, synthea_obs)  # untyped reference
    assert match("Observation", {"patient": "abc-1"}, synthea_obs)


def test_phone_any_format_matches():
    p = {"resourceType": "Patient", "id": "p", "telecom": [{"system": "phone", "value": "(555) 010-0012"}]}
    for q in ["(555) 010-0012", "+1 555-010-0012", "5550100012", "1-555-010-0012"]:
        assert match("Patient", {"phone": q}, p), q
    assert not match("Patient", {"phone": "555-010-0013"}, p)
    email = {"resourceType": "Patient", "id": "p", "telecom": [{"system": "email", "value": "Ann@Example.org"}]}
    assert match("Patient", {"email": "ann@example.org"}, email)


def test_id():
    assert match("Patient", {"_id": "example,other"}, hl7("Patient-example"))
    assert not match("Patient", {"_id": "other"}, hl7("Patient-example"))


# --- GET /fhir/patients ----------------------------------------------------------------------


def test_patient_search_parsing():
    s = parse_patient_search({"q": " ann ", "sort_by": "-created_at", "limit": "5", "offset": "10"})
    assert (s.q, s.sort_field, s.descending, s.limit, s.offset) == ("ann", "created_at", True, 5, 10)
    assert parse_patient_search({}).sort_field == "last_event_at" and parse_patient_search({}).descending
    assert parse_patient_search({"sort_by": "+name"}).descending is False
    assert parse_patient_search({"sort_by": " name"}).descending is False  # '+' decoded as a space
    assert parse_patient_search({"sort_by": "name"}).descending is False


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"sort_by": "-age"}, "sort_by"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"offset": "-5"}, "offset"),
        ({"name": "x"}, "name"),
        ({"phone": "abc"}, "phone"),
    ],
)
def test_patient_search_errors(params, param):
    with pytest.raises(QueryError) as info:
        parse_patient_search(params)
    assert info.value.param == param
