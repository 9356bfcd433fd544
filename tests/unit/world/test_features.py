"""Feature extraction: what the matcher sees of a FHIR Patient, normalised."""

from __future__ import annotations

from fhir_platform.world.features import Identifier, PatientFeatures, patient_features

from .conftest import make_patient


def test_names_are_normalised_and_primary_name_is_official() -> None:
    p = {
        "name": [
            {"use": "maiden", "family": "Brown", "given": ["Ann"]},
            {"use": "official", "family": "O'Hara-Smith", "given": ["José", "María"]},
        ]
    }
    f = patient_features(p)
    assert f.family == "ohara smith"
    assert f.given == "jose"
    assert f.given_all == ("jose", "maria")
    assert set(f.families) == {"brown", "ohara smith"}
    assert "ann" in f.givens


def test_text_only_name_splits_last_word_as_family() -> None:
    f = patient_features({"name": [{"text": "Mary Ann Jones"}]})
    assert (f.family, f.given, f.given_all) == ("jones", "mary", ("mary", "ann"))


def test_birth_date_keeps_precision_and_drops_non_dates() -> None:
    assert patient_features({"birthDate": "1980"}).birth_date == "1980"
    assert patient_features({"birthDate": "1980-04-12"}).birth_year == "1980"
    assert patient_features({"birthDate": "12/04/1980"}).birth_date is None


def test_gender_unknown_is_missing() -> None:
    assert patient_features({"gender": "unknown"}).gender is None
    assert patient_features({"gender": "female"}).gender == "female"


def test_phones_use_the_search_normalisation_and_emails_are_trimmed_lowercase() -> None:
    p = {
        "telecom": [
            {"system": "phone", "value": "(555) 010-0012"},
            {"system": "phone", "value": "+1 555-010-0012"},  # the same number
            {"system": "email", "value": "  Ann.Lee@Example.ORG "},
        ]
    }
    f = patient_features(p)
    assert f.phones == ("5550100012",)
    assert f.emails == ("ann.lee@example.org",)


def test_address_line_abbreviated_city_normalised_postal_compact() -> None:
    f = patient_features(make_patient(line="12 Wallaby Street", city="  Saint-Étienne ", postal="sw1a 1aa"))
    assert f.address_line == "12 wallaby st"
    assert f.city == "saint-etienne"
    assert f.postal_code == "SW1A1AA"
    assert patient_features(make_patient(postal="02139-4307")).postal_code == "02139"


def test_identifier_kinds_by_type_code_and_system() -> None:
    f = patient_features(
        make_patient(
            identifiers=[
                ("http://hospital.example/mrn", " ABC-1 ", "MR"),
                ("http://hl7.org/fhir/sid/us-ssn", "999-12-3456", None),
                ("https://github.com/synthetichealth/synthea", "x", None),
            ]
        )
    )
    kinds = {i.system: i.kind for i in f.identifiers}
    assert kinds == {
        "http://hospital.example/mrn": "mrn",
        "http://hl7.org/fhir/sid/us-ssn": "national",
        "https://github.com/synthetichealth/synthea": "other",
    }
    assert f.identifiers[0].value == "abc-1"
    assert [i.kind for i in f.strong_identifiers] == ["mrn", "national"]


def test_features_round_trip_through_json_dict() -> None:
    f = patient_features(make_patient(phone="555-010-0012", identifiers=[("s", "v", "MR")]))
    again = PatientFeatures.from_dict(f.to_dict())
    assert again == f
    assert again.identifiers == (Identifier("s", "v", "mrn"),)
