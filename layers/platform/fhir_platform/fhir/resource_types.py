"""The FHIR resource types this platform stores.

FHIR R4 JSON is validated with the R4B models of ``fhir.resources`` (R4B reads R4 JSON). A type is
storable when it has an R4B model and is not a transport/operation wrapper (Bundle, Parameters,
OperationOutcome): bundles are unpacked by the import pipeline, the others are never persisted.
The list is fixed here (not discovered at import time) so cold starts stay cheap.
"""

from __future__ import annotations

STORABLE_RESOURCE_TYPES: frozenset[str] = frozenset(
    """
    Account ActivityDefinition AdministrableProductDefinition AdverseEvent AllergyIntolerance
    Appointment AppointmentResponse AuditEvent Basic Binary BiologicallyDerivedProduct BodyStructure
    CapabilityStatement CarePlan CareTeam CatalogEntry ChargeItem ChargeItemDefinition Citation Claim
    ClaimResponse ClinicalImpression ClinicalUseDefinition CodeSystem Communication
    CommunicationRequest CompartmentDefinition Composition ConceptMap Condition Consent Contract
    Coverage CoverageEligibilityRequest CoverageEligibilityResponse DetectedIssue Device
    DeviceDefinition DeviceMetric DeviceRequest DeviceUseStatement DiagnosticReport DocumentManifest
    DocumentReference Encounter Endpoint EnrollmentRequest EnrollmentResponse EpisodeOfCare
    EventDefinition Evidence EvidenceReport EvidenceVariable ExampleScenario ExplanationOfBenefit
    FamilyMemberHistory Flag Goal GraphDefinition Group GuidanceResponse HealthcareService
    ImagingStudy Immunization ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide
    Ingredient InsurancePlan Invoice Library Linkage List Location ManufacturedItemDefinition Measure
    MeasureReport Media Medication MedicationAdministration MedicationDispense MedicationKnowledge
    MedicationRequest MedicationStatement MedicinalProductDefinition MessageDefinition MessageHeader
    MolecularSequence NamingSystem NutritionOrder NutritionProduct Observation ObservationDefinition
    OperationDefinition Organization OrganizationAffiliation PackagedProductDefinition Patient
    PaymentNotice PaymentReconciliation Person PlanDefinition Practitioner PractitionerRole Procedure
    Provenance Questionnaire QuestionnaireResponse RegulatedAuthorization RelatedPerson RequestGroup
    ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject RiskAssessment Schedule
    SearchParameter ServiceRequest Slot Specimen SpecimenDefinition StructureDefinition StructureMap
    Subscription SubscriptionStatus SubscriptionTopic Substance SubstanceDefinition SupplyDelivery
    SupplyRequest Task TerminologyCapabilities TestReport TestScript ValueSet VerificationResult
    VisionPrescription
    """.split()
)

# FHIR ids: [A-Za-z0-9\-\.]{1,64}
ID_PATTERN = r"^[A-Za-z0-9\-.]{1,64}$"


def is_storable(resource_type: str) -> bool:
    return resource_type in STORABLE_RESOURCE_TYPES
