"""Bundle preparation: envelope, ids, reference resolution, transactions, batches, policy."""

from __future__ import annotations

import collections
import copy
import json
from typing import Any

import pytest

from fhir_platform.errors import InvalidInput
from fhir_platform.imports import BundleFormatError, ImportSummary, PreparedEntry, prepare_bundle
from fhir_platform.imports.common import conditional_id, iter_references

from .conftest import HL7, SYNTHEA, load, synthea_patient_bundles, synthea_provider_bundles

PATIENT = {"resourceType": "Patient", "name": [{"family": "Doe", "given": ["Jane"]}], "gender": "female"}


def obs(subject: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": subject},
        "valueQuantity": {"value": 72, "unit": "/min"},
        **extra,
    }


def bundle(bundle_type: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}


def refs(data: Any) -> list[str]:
    return [holder["reference"] for holder, _ in iter_references(data)]


# ---- envelope ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"resourceType": "Patient"},
        {"resourceType": "Bundle"},
        {"resourceType": "Bundle", "type": "document", "entry": []},
        {"resourceType": "Bundle", "type": "batch-response", "entry": []},
        {"resourceType": "Bundle", "type": "history", "entry": []},
        {"resourceType": "Bundle", "type": "batch", "entry": {"resource": {}}},
    ],
)
def test_envelope_errors_are_invalid_bundle_format(body: Any) -> None:
    with pytest.raises(BundleFormatError) as exc:
        prepare_bundle(body)
    assert isinstance(exc.value, InvalidInput)  # → 400 "Invalid bundle format."
    assert exc.value.message.startswith("Invalid bundle format")


def test_hl7_non_importable_bundle_types_are_rejected() -> None:
    for name in ("Bundle-father.json", "Bundle-bundle-response.json", "Bundle-bundle-response-medsallergies.json"):
        with pytest.raises(BundleFormatError):
            prepare_bundle(load(HL7 / name))


def test_empty_bundle_is_fine() -> None:
    p = prepare_bundle({"resourceType": "Bundle", "type": "collection"})
    assert p.entries == [] and p.issues == []


# ---- every bundle type -------------------------------------------------------------------------


@pytest.mark.parametrize("bundle_type", ["transaction", "batch", "collection", "searchset", "message"])
def test_every_importable_type_prepares_and_resolves(bundle_type: str) -> None:
    pid = "3f1c9a2e-0d4b-4b8e-9a57-2f5f3f0f9b11"
    entries = [
        {"fullUrl": f"urn:uuid:{pid}", "resource": dict(PATIENT)},
        {"fullUrl": "urn:uuid:9b2d0f31-7a52-4c8e-8e0e-5b6f1a2c3d44", "resource": obs(f"urn:uuid:{pid}")},
    ]
    if bundle_type in ("transaction", "batch"):
        for e in entries:
            e["request"] = {"method": "POST", "url": e["resource"]["resourceType"]}
    p = prepare_bundle(bundle(bundle_type, entries))
    assert p.bundle_type == bundle_type
    assert p.issues == [] and not p.transaction_failed
    assert [e.key for e in p.entries] == [f"Patient/{pid}", "Observation/9b2d0f31-7a52-4c8e-8e0e-5b6f1a2c3d44"]
    assert p.entries[1].data["subject"]["reference"] == f"Patient/{pid}"
    assert [e.location for e in p.entries] == ["entry[0]", "entry[1]"]
    assert all(e.data["id"] == e.resource_id for e in p.entries)


@pytest.mark.parametrize(
    "name,bundle_type,written,unsupported",
    [
        ("Bundle-bundle-example.json", "searchset", 2, 0),
        ("Bundle-bundle-search-warning.json", "searchset", 0, 1),  # OperationOutcome
        ("Bundle-10bb101f-a121-4264-a920-67be9cb82c74.json", "message", 3, 0),
        ("Bundle-3a0707d3-549e-4467-b8b8-5a2ab3800efe.json", "message", 3, 1),
        ("Bundle-lipids.json", "collection", 5, 0),
        ("Bundle-micro.json", "collection", 27, 0),
        ("Bundle-hla-1.json", "transaction", 22, 0),
        ("Bundle-xds.json", "transaction", 5, 0),
        ("Bundle-bundle-request-medsallergies.json", "batch", 0, 5),  # GETs
    ],
)
def test_hl7_example_bundles(name: str, bundle_type: str, written: int, unsupported: int) -> None:
    raw = load(HL7 / name)
    p = prepare_bundle(raw)
    assert p.bundle_type == bundle_type
    assert len(p.entries) == written
    assert len(p.unsupported) == unsupported
    assert p.errors == []
    assert len(p.entries) + len(p.issues) + len(p.superseded) == len(raw["entry"])


def test_synthea_batch_provider_bundle_with_conditional_creates() -> None:
    path = next(p for p in synthea_provider_bundles() if "hiv" in str(p) and p.name.startswith("hospital"))
    raw = load(path)
    p = prepare_bundle(raw, validate=False)
    assert p.bundle_type == "batch" and p.issues == []
    assert len(p.entries) == len(raw["entry"]) == 2382
    conditional = [e for e in p.entries if e.if_none_exist]
    assert len(conditional) == 2382
    assert conditional[0].if_none_exist.startswith("identifier=https://github.com/synthetichealth/synthea|")


# ---- references on real data --------------------------------------------------------------------


def _identifier_index(paths) -> set[tuple[str, str, str]]:
    out = set()
    for path in paths:
        for e in load(path)["entry"]:
            r = e["resource"]
            for ident in r.get("identifier", []):
                out.add((r["resourceType"], ident.get("system"), ident.get("value")))
    return out


@pytest.mark.parametrize("path", synthea_patient_bundles(), ids=lambda p: p.name[:24])
def test_synthea_references_all_resolve_to_entries(path) -> None:
    text = path.read_text(encoding="utf-8")
    original = json.loads(text)
    by_full_url = {e["fullUrl"]: (e["resource"]["resourceType"], e["resource"]["id"]) for e in original["entry"]}
    p = prepare_bundle(json.loads(text), validate=False)

    assert p.issues == [] and p.superseded == [] and not p.transaction_failed
    assert len(p.entries) == len(original["entry"])
    assert collections.Counter(e.resource_type for e in p.entries) == collections.Counter(
        e["resource"]["resourceType"] for e in original["entry"]
    )
    keys = {e.key for e in p.entries}
    assert len(keys) == len(p.entries)
    provider_idents = None
    n_refs = 0
    for prepared, orig in zip(p.entries, original["entry"]):
        assert prepared.resource_id == orig["resource"]["id"] == orig["fullUrl"].removeprefix("urn:uuid:")
        contained = {f"#{c['id']}" for c in prepared.data.get("contained", [])}
        before, after = refs(orig["resource"]), refs(prepared.data)
        assert len(before) == len(after)
        for b, a in zip(before, after):
            n_refs += 1
            if b.startswith("#"):
                assert a == b and a in contained
            elif b.startswith("urn:uuid:"):
                assert a == "{}/{}".format(*by_full_url[b])  # rewritten to the entry's Type/id
                assert a in keys
            else:
                # newer Synthea: conditional references to the separate provider bundles
                assert "?identifier=" in b and a == b and a in prepared.conditional_references
                rt, _, criteria = a.partition("?identifier=")
                system, _, value = criteria.partition("|")
                if provider_idents is None:
                    provider_idents = _identifier_index(q for q in synthea_provider_bundles() if q.parent == path.parent)
                assert (rt, system, value) in provider_idents
    assert n_refs > 100


def test_synthea_bundles_validate_cleanly() -> None:
    total = 0
    for path in synthea_patient_bundles():
        p = prepare_bundle(load(path))
        assert p.issues == [], (path.name, [i.message() for i in p.issues[:3]])
        total += len(p.entries)
    assert total > 12_000


def test_hl7_bundle_references_absolute_relative_urn_and_versions() -> None:
    raw = load(HL7 / "Bundle-bundle-references.json")
    p = prepare_bundle(raw)
    by_loc = {e.location: e for e in p.entries}
    urn_patient = raw["entry"][1]["fullUrl"].removeprefix("urn:uuid:")
    assert by_loc["entry[1]"].key == f"Patient/{urn_patient}"  # id from the urn:uuid fullUrl
    assert by_loc["entry[2]"].data["subject"]["reference"] == "Patient/23"  # relative, base of fullUrl
    assert by_loc["entry[3]"].data["subject"]["reference"] == "Patient/23"  # absolute fullUrl match
    assert by_loc["entry[4]"].data["subject"]["reference"] == f"Patient/{urn_patient}"  # urn:uuid
    assert by_loc["entry[9]"].data["subject"]["reference"] == "Patient/45"  # version-specific, in bundle
    # the two Observation/14 (two servers) and the two Patient/45 versions: last one wins
    assert [(s.location, s.key, s.by_location) for s in p.superseded] == [
        ("entry[5]", "Observation/14", "entry[6]"),
        ("entry[7]", "Patient/45", "entry[8]"),
    ]
    assert p.summary().events_skipped == 2


def test_absolute_and_relative_fullurls() -> None:
    base = "http://ehr.example.org/fhir/"
    entries = [
        {"fullUrl": base + "Patient/p1", "resource": dict(PATIENT)},  # id from the fullUrl
        {"fullUrl": base + "Observation/o1", "resource": obs("Patient/p1")},  # relative → base
        {"fullUrl": base + "Observation/o2", "resource": obs(base + "Patient/p1")},  # absolute
        {"fullUrl": base + "Observation/o3", "resource": obs("http://other.example.org/fhir/Patient/p1")},
        {"fullUrl": base + "Observation/o4", "resource": obs("Patient/elsewhere")},
    ]
    p = prepare_bundle(bundle("collection", entries))
    assert p.issues == []
    assert [e.key for e in p.entries] == ["Patient/p1", "Observation/o1", "Observation/o2", "Observation/o3", "Observation/o4"]
    got = [e.data["subject"]["reference"] for e in p.entries[1:]]
    assert got == ["Patient/p1", "Patient/p1", "http://other.example.org/fhir/Patient/p1", "Patient/elsewhere"]


def test_contained_and_nested_references_are_rewritten_but_local_ones_kept() -> None:
    pid = "urn:uuid:0d7e1f4a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
    med_request = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "contained": [{"resourceType": "Medication", "id": "med1", "extension": [
            {"url": "http://example.org/ext", "valueReference": {"reference": pid}}]}],
        "medicationReference": {"reference": "#med1"},
        "subject": {"reference": pid},
        "extension": [{"url": "http://example.org/ext2", "valueReference": {"reference": pid}}],
    }
    p = prepare_bundle(bundle("batch", [
        {"fullUrl": pid, "resource": dict(PATIENT), "request": {"method": "POST", "url": "Patient"}},
        {"resource": med_request, "request": {"method": "POST", "url": "MedicationRequest"}},
    ]))
    assert p.issues == []
    data = p.entries[1].data
    target = "Patient/0d7e1f4a-2b3c-4d5e-8f90-a1b2c3d4e5f6"
    assert data["contained"][0]["extension"][0]["valueReference"]["reference"] == target
    assert data["extension"][0]["valueReference"]["reference"] == target
    assert data["subject"]["reference"] == target
    assert data["medicationReference"]["reference"] == "#med1"


def test_urn_oid_full_urls() -> None:
    p = prepare_bundle(bundle("collection", [
        {"fullUrl": "urn:oid:2.16.840.1.113883.19.5", "resource": {"resourceType": "Organization", "name": "Acme"}},
        {"resource": {**PATIENT, "managingOrganization": {"reference": "urn:oid:2.16.840.1.113883.19.5"}}},
    ]))
    assert p.issues == []
    assert p.entries[0].key == "Organization/2.16.840.1.113883.19.5"
    assert p.entries[1].data["managingOrganization"]["reference"] == "Organization/2.16.840.1.113883.19.5"


def test_unresolvable_urn_reference_is_an_error() -> None:
    p = prepare_bundle(bundle("batch", [
        {"resource": obs("urn:uuid:11111111-2222-4333-8444-555555555555"), "request": {"method": "POST", "url": "Observation"}},
    ]))
    assert p.entries == []
    assert p.errors[0].location == "entry[0]"
    assert "does not match any entry's fullUrl" in p.errors[0].reason


# ---- ids -------------------------------------------------------------------------------------


def test_ids_without_full_url_are_content_derived_and_deterministic() -> None:
    def run():
        return prepare_bundle(bundle("collection", [
            {"resource": dict(PATIENT)}, {"resource": dict(PATIENT)},
            {"resource": {**PATIENT, "gender": "male"}},
        ]))

    a, b = run(), run()
    assert [e.key for e in a.entries] == [e.key for e in b.entries]  # identical re-upload → same ids
    assert len({e.key for e in a.entries}) == 3  # identical copies stay distinct


def test_put_uses_url_id_and_rejects_mismatch() -> None:
    p = prepare_bundle(bundle("transaction", [
        {"resource": dict(PATIENT), "request": {"method": "PUT", "url": "Patient/abc"}},
        {"resource": {**PATIENT, "id": "other"}, "request": {"method": "PUT", "url": "Patient/xyz"}},
        {"resource": dict(PATIENT), "request": {"method": "PUT", "url": "Observation/q"}},
    ]))
    assert p.entries[0].key == "Patient/abc"
    assert [i.location for i in p.errors] == ["entry[1]", "entry[2]"]
    assert p.transaction_failed


def test_conditional_create_gets_stable_id_and_conditional_references_resolve() -> None:
    ident = {"system": "http://hl7.org/fhir/sid/us-npi", "value": "9999949599"}
    practitioner = {"resourceType": "Practitioner", "identifier": [ident], "name": [{"family": "Who"}]}
    cond_ref = "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999949599"
    enc = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
           "participant": [{"individual": {"reference": cond_ref}}]}
    entries = [
        {"fullUrl": "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001", "resource": practitioner,
         "request": {"method": "POST", "url": "Practitioner", "ifNoneExist": "identifier=http://hl7.org/fhir/sid/us-npi|9999949599"}},
        {"resource": enc, "request": {"method": "POST", "url": "Encounter"}},
        {"resource": {**enc, "participant": [{"individual": {"reference": "Practitioner?identifier=http://x|unknown"}}]},
         "request": {"method": "POST", "url": "Encounter"}},
    ]
    p = prepare_bundle(bundle("transaction", copy.deepcopy(entries)))
    assert p.issues == []
    expected_id = conditional_id("Practitioner", "identifier=http://hl7.org/fhir/sid/us-npi|9999949599")
    assert p.entries[0].key == f"Practitioner/{expected_id}"
    assert p.entries[0].if_none_exist == "identifier=http://hl7.org/fhir/sid/us-npi|9999949599"
    assert p.entries[1].data["participant"][0]["individual"]["reference"] == f"Practitioner/{expected_id}"
    assert p.entries[1].conditional_references == ()
    # not in the bundle: left for the write path's identifier index, and listed
    assert p.entries[2].conditional_references == ("Practitioner?identifier=http://x|unknown",)
    # the same criteria in another bundle give the same id (re-import updates, never duplicates)
    again = prepare_bundle(bundle("batch", copy.deepcopy(entries[:1])))
    assert again.entries[0].key == p.entries[0].key


def test_hl7_transaction_example_methods() -> None:
    p = prepare_bundle(load(HL7 / "Bundle-bundle-transaction.json"))
    assert [e.method for e in p.entries] == ["POST", "POST", "PUT", "PUT", "PUT"]
    assert [e.key for e in p.entries][2] == "Patient/123"
    assert p.entries[0].key == "Patient/61ebe359-bfdc-4613-8bf2-c5e300945f0a"
    assert {i.location: i.kind for i in p.issues} == {
        "entry[5]": "unsupported", "entry[6]": "unsupported", "entry[7]": "unsupported",
        "entry[8]": "unsupported", "entry[9]": "unsupported",
    }
    assert "DELETE" in p.issues[0].reason
    assert not p.transaction_failed  # unsupported entries are skipped, not a failure


# ---- transaction vs batch ----------------------------------------------------------------------


def _corrupted_synthea(bundle_type: str) -> tuple[dict[str, Any], int]:
    raw = load(SYNTHEA / "smart-on-fhir_generated-sample-data" / "Buster_Hoeger_ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423.json")
    raw["type"] = bundle_type
    idx = next(i for i, e in enumerate(raw["entry"]) if e["resource"]["resourceType"] == "Observation")
    raw["entry"][idx]["resource"]["valueQuantity"]["value"] = "seventy"
    raw["entry"][idx]["resource"]["unknownElement"] = 1
    return raw, idx


def test_transaction_with_an_invalid_entry_fails_as_a_whole() -> None:
    raw, idx = _corrupted_synthea("transaction")
    p = prepare_bundle(raw)
    assert p.transaction_failed
    assert [i.location for i in p.errors] == [f"entry[{idx}]"]
    err = p.errors[0]
    assert err.resource_type == "Observation" and err.resource_id == raw["entry"][idx]["resource"]["id"]
    assert "valueQuantity.value" in err.reason and "unknownElement" in err.reason
    assert "seventy" not in err.reason  # never echo content (PHI)
    detail = p.failure_detail()
    assert {tuple(d["loc"]) for d in detail} >= {
        ("body", "bundle", "entry", idx, "resource", "valueQuantity", "value"),
        ("body", "bundle", "entry", idx, "resource", "unknownElement"),
    }
    s = p.summary()
    assert s.error_count == 1 and s.errors[0].startswith(f"entry[{idx}] (Observation/")
    assert s.events_created == 0


def test_batch_with_an_invalid_entry_writes_the_rest() -> None:
    raw, idx = _corrupted_synthea("batch")
    n = len(raw["entry"])
    p = prepare_bundle(raw)
    assert not p.transaction_failed
    assert len(p.entries) == n - 1
    assert f"entry[{idx}]" not in {e.location for e in p.entries}
    s = p.summary()
    assert s.error_count == 1 and s.errors[0].startswith(f"entry[{idx}] ")


def test_duplicates_error_in_transaction_and_last_wins_elsewhere() -> None:
    entries = [{"resource": {**PATIENT, "id": "p1"}}, {"resource": {**PATIENT, "id": "p1", "gender": "male"}}]
    tx = prepare_bundle(bundle("transaction", [dict(e, request={"method": "PUT", "url": "Patient/p1"}) for e in copy.deepcopy(entries)]))
    assert tx.transaction_failed and tx.errors[0].location == "entry[1]" and "entry[0]" in tx.errors[0].reason
    col = prepare_bundle(bundle("collection", copy.deepcopy(entries)))
    assert [e.data["gender"] for e in col.entries] == ["male"]
    assert col.superseded[0].location == "entry[0]"


# ---- unsupported_resource_policy -------------------------------------------------------------


def _mixed(bundle_type: str) -> dict[str, Any]:
    entries = [
        {"resource": {**PATIENT, "id": "ok"}},
        {"resource": {"resourceType": "OperationOutcome", "id": "oo", "issue": []}},
        {"resource": {"id": "no-type"}},
        {"resource": {"resourceType": "NotARealType", "id": "x"}},
        {"request": {"method": "DELETE", "url": "Patient/gone"}},
    ]
    if bundle_type in ("transaction", "batch"):
        for e in entries[:4]:
            e["request"] = {"method": "PUT", "url": f"{e['resource'].get('resourceType', 'Patient')}/{e['resource']['id']}"}
    return bundle(bundle_type, entries)


@pytest.mark.parametrize("bundle_type", ["transaction", "batch", "collection"])
def test_unsupported_policy_error_reports_errors_and_items(bundle_type: str) -> None:
    p = prepare_bundle(_mixed(bundle_type))
    assert [e.key for e in p.entries] == ["Patient/ok"]
    assert not p.transaction_failed
    s = p.summary("error")
    expected_locs = ["entry[1]", "entry[2]", "entry[3]"] + (["entry[4]"] if bundle_type != "collection" else [])
    assert s.unsupported_resource_count == len(expected_locs)
    assert [i["location"] for i in s.unsupported_resources] == expected_locs
    assert s.unsupported_resources[0] == {
        "resource_type": "OperationOutcome", "resource_id": "oo", "location": "entry[1]",
        "reason": "resource type 'OperationOutcome' is not supported by the platform FHIR APIs",
    }
    assert s.unsupported_resources[1]["reason"] == "resourceType is missing"
    # 'error' skips the resource AND adds a per-resource error
    assert s.error_count == len(expected_locs) + (1 if bundle_type == "collection" else 0)
    assert all(any(e.startswith(loc) for e in s.errors) for loc in expected_locs)


@pytest.mark.parametrize("bundle_type", ["transaction", "batch"])
def test_unsupported_policy_skip_reports_items_without_errors(bundle_type: str) -> None:
    p = prepare_bundle(_mixed(bundle_type))
    s = p.summary("skip")
    assert s.unsupported_resource_count == 4
    assert len(s.unsupported_resources) == 4
    assert s.error_count == 0 and s.errors == []
    assert s.unsupported_resources[3]["reason"].startswith("request.method DELETE")


def test_collection_entry_without_resource_is_an_error() -> None:
    p = prepare_bundle(_mixed("collection"))
    assert [(i.location, i.kind) for i in p.issues][-1] == ("entry[4]", "error")


def test_error_list_caps_and_truncation() -> None:
    entries = [{"resource": {"resourceType": "Patient", "id": f"p{i}", "birthDate": "nope"}} for i in range(1005)]
    p = prepare_bundle(bundle("batch", entries))
    s = p.summary()
    assert s.error_count == 1005 and len(s.errors) == 1000 and s.errors_truncated
    entries = [{"resource": {"resourceType": "Parameters", "id": f"x{i}"}} for i in range(1001)]
    s = prepare_bundle(bundle("collection", entries)).summary("skip")
    assert s.unsupported_resource_count == 1001 and len(s.unsupported_resources) == 1000
    assert s.unsupported_resources_truncated and not s.errors_truncated and s.error_count == 0


def test_prepared_entry_is_what_the_write_path_needs() -> None:
    p = prepare_bundle(bundle("collection", [{"resource": {**PATIENT, "id": "p9"}}]))
    e = p.entries[0]
    assert isinstance(e, PreparedEntry)
    assert (e.resource_type, e.resource_id, e.data["id"], e.location) == ("Patient", "p9", "p9", "entry[0]")
    assert isinstance(p.summary(), ImportSummary)
