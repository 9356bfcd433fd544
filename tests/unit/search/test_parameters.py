import pytest
from fhir_platform.search.parameters import (
    Kind,
    compartment_patient_ids,
    extract,
    family_params,
    params_for,
    parse_reference,
    select,
)

from .search_testdata import SYNTHEA_HIV, bundle_resources, hl7

REQUIRED_TYPES = """Patient Practitioner PractitionerRole Organization Location Encounter Observation Condition
Procedure MedicationRequest MedicationStatement AllergyIntolerance Immunization DiagnosticReport Appointment Slot
Schedule Coverage CarePlan Goal Claim ExplanationOfBenefit DocumentReference ImagingStudy""".split()


def values(resource_type: str, name: str, resource: dict):
    return extract(params_for(resource_type)[name], resource)


@pytest.mark.parametrize("resource_type", REQUIRED_TYPES)
def test_every_required_type_has_the_common_parameters(resource_type):
    params = params_for(resource_type)
    assert {"_id", "_lastUpdated", "identifier", "q"} <= params.keys()
    assert params["_lastUpdated"].kind is Kind.DATE


def test_clinical_types_have_patient_date_and_status():
    for t in [
        "Encounter",
        "Observation",
        "Condition",
        "Procedure",
        "MedicationRequest",
        "AllergyIntolerance",
        "Immunization",
        "DiagnosticReport",
        "CarePlan",
        "Claim",
        "DocumentReference",
        "ImagingStudy",
    ]:
        params = params_for(t)
        assert params["patient"].kind is Kind.REFERENCE and params["patient"].targets == ("Patient",), t
        assert params["date"].kind is Kind.DATE, t
        assert params["status"].kind is Kind.TOKEN, t


def test_unregistered_types_get_common_params_only_where_the_element_exists():
    service_request = params_for("ServiceRequest")
    assert {"status", "patient", "subject", "encounter", "identifier"} <= service_request.keys()
    medication = params_for("Medication")
    assert "status" in medication and "patient" not in medication and "subject" not in medication
    assert "identifier" in medication


def test_params_with_identical_extraction_share_an_index_family():
    condition = params_for("Condition")
    assert condition["status"].family == condition["clinical-status"].family == "clinical-status"
    # a typed reference reads the untyped family over the same paths (the items carry the types)
    assert condition["patient"].family == condition["subject"].family == "subject"
    assert [(p.name, [t.name for t in typed]) for p, typed in family_params("Condition") if typed] == [("subject", ["patient"])]
    claim = params_for("Claim")  # practitioner reads provider *and* careTeam.provider: its own family
    assert claim["practitioner"].family == "practitioner" and claim["provider"].family == "provider"
    assert params_for("Claim")["date"].family == "date" and params_for("Claim")["created"].family == "date"


def test_path_selection_with_choice_types_and_filters():
    patient = hl7("Patient-example")
    assert select(patient, "telecom(system=phone).value") == ["(03) 5555 6473", "(03) 3410 5613", "(03) 5555 8834"]
    assert select(patient, "identifier(type.coding.code=MR).value") == ["12345"]
    observation = hl7("Observation-example")
    assert select(observation, "effective[x]") == ["2016-03-28"]


def test_patient_extraction_from_hl7_example():
    p = hl7("Patient-example")
    assert values("Patient", "name", p) == ["Chalmers", "Peter", "James", "Jim", "Windsor"]
    assert values("Patient", "family", p) == ["Chalmers", "Windsor"]
    assert values("Patient", "given", p) == ["Peter", "James", "Jim"]
    assert values("Patient", "identifier", p) == [("urn:oid:1.2.36.146.595.217.0.1", "12345")]
    assert values("Patient", "mrn", p) == [("urn:oid:1.2.36.146.595.217.0.1", "12345")]
    assert values("Patient", "birthdate", p) == [("1974-12-25T00:00:00.000Z", "1974-12-26T00:00:00.000Z")]
    assert values("Patient", "gender", p) == [("", "male")]
    assert values("Patient", "phone", p) == ["0355556473", "0334105613", "0355558834"]
    assert values("Patient", "active", p) == [("", "true")]
    assert values("Patient", "organization", p) == [("Organization", "1")]
    assert values("Patient", "address-city", p) == ["PleasantVille"]


def test_synthea_patient_mrn_phone_and_urn_references(synthea_small):
    patient = synthea_small[0]
    assert values("Patient", "mrn", patient) == [
        ("http://hospital.smarthealthit.org", "ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423")
    ]
    assert values("Patient", "phone", patient) == ["5558662259"]
    assert values("Patient", "name", patient) == ["Hoeger", "Buster", "Mr."]
    encounter = next(r for r in synthea_small if r["resourceType"] == "Encounter")
    assert values("Encounter", "patient", encounter) == [("", patient["id"])]
    assert values("Encounter", "date", encounter) == [("1994-09-02T13:55:57.000Z", "1994-09-02T14:10:58.000Z")]
    assert values("Encounter", "class", encounter) == [("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB")]
    assert values("Encounter", "reason-code", encounter) == [("http://snomed.info/sct", "36971009")]
    assert values("Encounter", "practitioner", encounter) == [("", "34ef92a2-f1a5-4324-b274-4ccf96f9f2d1")]
    assert values("Encounter", "organization", encounter) == [("", "49318f80-bd8b-3fc7-a096-ac43088b0c12")]


def test_observation_date_code_and_q():
    obs = hl7("Observation-example")
    assert values("Observation", "date", obs) == [("2016-03-28T00:00:00.000Z", "2016-03-29T00:00:00.000Z")]
    assert ("http://loinc.org", "29463-7") in values("Observation", "code", obs)
    assert len(values("Observation", "code", obs)) == 4
    assert values("Observation", "patient", obs) == [("Patient", "example")]
    assert values("Observation", "encounter", obs) == [("Encounter", "example")]
    assert values("Observation", "q", obs) == ["Body Weight", "Body weight Measured", "Body weight"]


def test_condition_status_is_clinical_status_and_date_is_onset_or_recorded(synthea_small):
    condition = next(r for r in synthea_small if r["resourceType"] == "Condition")
    assert values("Condition", "status", condition) == [
        ("http://terminology.hl7.org/CodeSystem/condition-clinical", "active")
    ]
    assert values("Condition", "date", condition) == [("1994-09-02T13:55:57.000Z", "1994-09-02T13:55:58.000Z")]
    assert values("Condition", "code", hl7("Condition-example")) == [("http://snomed.info/sct", "39065001")]


def test_allergy_and_immunization_and_medication_request():
    allergy = hl7("AllergyIntolerance-example")
    assert values("AllergyIntolerance", "status", allergy)[0][1] == "active"
    assert values("AllergyIntolerance", "patient", allergy) == [("Patient", "example")]
    assert values("AllergyIntolerance", "date", allergy) == [("2014-10-09T03:58:00.000Z", "2014-10-09T03:58:01.000Z")]
    assert values("AllergyIntolerance", "onset", allergy) == [  # onsetDateTime "2004" + reaction onsets, de-duplicated
        ("2004-01-01T00:00:00.000Z", "2005-01-01T00:00:00.000Z"),
        ("2012-06-12T00:00:00.000Z", "2012-06-13T00:00:00.000Z"),
    ]
    assert values("AllergyIntolerance", "practitioner", allergy) == [
        ("Practitioner", "example")
    ]  # Patient asserter dropped
    imm = hl7("Immunization-example")
    assert values("Immunization", "code", imm) == [("urn:oid:1.2.36.1.2001.1005.17", "FLUVAX")]
    assert values("Immunization", "location", imm) == [("Location", "1")]
    assert values("Immunization", "q", imm) == ["Fluvax (Influenza)"]
    med = hl7("MedicationRequest-medrx0302")
    assert values("MedicationRequest", "authoredon", med) == [("2015-01-15T00:00:00.000Z", "2015-01-16T00:00:00.000Z")]
    assert values("MedicationRequest", "practitioner", med) == [("Practitioner", "f007")]
    assert values("MedicationRequest", "medication", med) == []  # '#med0320' is contained, not searchable


def test_scheduling_resources():
    appt = hl7("Appointment-example")
    assert values("Appointment", "patient", appt) == [("Patient", "example")]
    assert values("Appointment", "practitioner", appt) == [("Practitioner", "example")]
    assert values("Appointment", "location", appt) == [("Location", "1")]
    assert values("Appointment", "date", appt) == [("2013-12-10T09:00:00.000Z", "2013-12-10T09:00:01.000Z")]
    assert "Dr Adam Careful" in values("Appointment", "q", appt)
    slot = hl7("Slot-1")
    assert values("Slot", "status", slot) == [("", "busy")]
    assert values("Slot", "schedule", slot) == [("Schedule", "example")]
    schedule = hl7("Schedule-example")
    assert values("Schedule", "location", schedule) == [("Location", "1")]
    assert values("Schedule", "practitioner", schedule) == []
    assert values("Schedule", "date", schedule) == [("2013-12-25T09:15:00.000Z", "2013-12-25T09:30:01.000Z")]


def test_coverage_directory_and_documents():
    cov = hl7("Coverage-9876B1")
    assert values("Coverage", "patient", cov) == [("Patient", "4")]
    assert values("Coverage", "policy-holder", cov) == [("Organization", "CBI35")]  # absolute URL
    assert values("Coverage", "date", cov) == [("2011-05-23T00:00:00.000Z", "2012-05-24T00:00:00.000Z")]
    role = hl7("PractitionerRole-example")
    assert values("PractitionerRole", "practitioner", role) == [("Practitioner", "example")]
    assert values("PractitionerRole", "phone", role) == ["0355556473"]
    assert values("PractitionerRole", "email", role) == [("email", "adam.southern@example.org")]
    org = hl7("Organization-hl7")
    assert values("Organization", "name", org) == ["Health Level Seven International", "HL7 International"]
    assert values("Organization", "phone", org) == ["7346777777"]
    loc = hl7("Location-1")
    assert values("Location", "phone", loc) == ["2328"]  # the fax is not a phone
    assert values("Location", "address-city", loc) == ["Den Burg"]
    doc = hl7("DocumentReference-example")
    assert values("DocumentReference", "patient", doc) == [("Patient", "xcda")]
    assert values("DocumentReference", "practitioner", doc) == [("Practitioner", "xcda1")]


def test_goal_and_careplan():
    goal = hl7("Goal-example")
    assert values("Goal", "status", goal) == [("", "on-hold")]
    assert values("Goal", "start-date", goal) == [("2015-04-05T00:00:00.000Z", "2015-04-06T00:00:00.000Z")]
    assert values("Goal", "target-date", goal) == [("2016-04-05T00:00:00.000Z", "2016-04-06T00:00:00.000Z")]
    assert values("Goal", "patient", goal) == [("Patient", "example")]


def test_conditional_references_are_not_searchable_until_resolved():
    """Newer Synthea bundles point at Location/Practitioner with conditional references
    (``Location?identifier=...``); the import resolves them, the extractor never guesses."""
    resources = bundle_resources(SYNTHEA_HIV)
    encounter = next(r for r in resources if r["resourceType"] == "Encounter")
    assert encounter["location"][0]["location"]["reference"].startswith("Location?identifier=")
    assert values("Encounter", "location", encounter) == []
    assert values("Encounter", "practitioner", encounter) == []
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    assert values("Encounter", "patient", encounter) == [("", patient["id"])]
    assert values("Encounter", "q", encounter)[0] == "Well child visit (procedure)"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("Patient/123", ("Patient", "123")),
        ("Patient/123/_history/2", ("Patient", "123")),
        ("https://fhir.example.org/r4/Patient/abc-1", ("Patient", "abc-1")),
        ("urn:uuid:e4531916-b162-4f4b-90c2-ce37e132b8d4", ("", "e4531916-b162-4f4b-90c2-ce37e132b8d4")),
        ("abc", ("", "abc")),
        ("#contained", None),
        ("", None),
        ("Patient?identifier=x|1", None),
    ],
)
def test_parse_reference(ref, expected):
    assert parse_reference(ref) == expected


def test_compartment_patient_ids():
    assert compartment_patient_ids("Observation", hl7("Observation-example")) == ["example"]
    assert compartment_patient_ids("Patient", hl7("Patient-example")) == ["example"]
    assert compartment_patient_ids("Coverage", hl7("Coverage-9876B1")) == ["4"]
    assert compartment_patient_ids("Organization", hl7("Organization-hl7")) == []
