"""The FHIR REST facade end to end with a stock FHIR client from PyPI (fhirpy), over real HTTP to
the local stack: create, read, search paging through ``next``, include, history, conditional
update, transaction, and errors as OperationOutcome."""

from __future__ import annotations

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

from tests.e2e.conftest import Client, make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


@pytest.fixture(scope="module")
def fhir(admin: Client) -> tuple[SyncFHIRClient, Client, str]:
    ws, c = make_workspace(admin)
    base = f"{admin.base_url}/v1/{ws}/fhir/r4"
    return SyncFHIRClient(base, authorization=f"Bearer {c.key}"), c, base


def test_metadata_over_http(fhir: tuple[SyncFHIRClient, Client, str]) -> None:
    client, _, _ = fhir
    cs = client.execute("metadata", method="get")
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"


def test_create_read_history_and_conditional_update(fhir: tuple[SyncFHIRClient, Client, str]) -> None:
    client, http, base = fhir
    patient = client.resource("Patient", name=[{"family": "Fhirpy", "given": ["Ada"]}], gender="female")
    patient.save()
    assert patient.id and patient["meta"]["versionId"] == "1"
    read = client.reference("Patient", patient.id).to_resource()
    assert read["name"][0]["family"] == "Fhirpy"

    read["gender"] = "other"
    read.save()  # PUT
    assert read["meta"]["versionId"] == "2"
    history = client.execute(f"Patient/{patient.id}/_history", method="get")
    assert history["type"] == "history" and [e["resource"]["gender"] for e in history["entry"]] == ["other", "female"]

    mrn = "https://mrn.example.org|FP-1"
    body = client.resource("Patient", identifier=[{"system": "https://mrn.example.org", "value": "FP-1"}], name=[{"family": "Cond"}])
    created, was_created = client.resources("Patient").search(identifier=mrn).update(body)
    assert was_created and created.id
    again, was_created = client.resources("Patient").search(identifier=mrn).update(
        client.resource("Patient", identifier=[{"system": "https://mrn.example.org", "value": "FP-1"}], name=[{"family": "Cond2"}])
    )
    assert not was_created and again.id == created.id and again["meta"]["versionId"] == "2"

    raw = http.get(f"/v1/{base.split('/v1/')[1]}/Patient/{patient.id}", headers={"Accept": "application/fhir+json"})
    assert raw.headers["Content-Type"].startswith("application/fhir+json") and raw.headers["ETag"] == 'W/"2"'
    assert raw.headers["Last-Modified"].endswith("GMT")


def test_search_pages_through_next_and_includes(fhir: tuple[SyncFHIRClient, Client, str]) -> None:
    client, _, _ = fhir
    gp = client.resource("Practitioner", name=[{"family": "Gregory"}])
    gp.save()
    ids = set()
    for i in range(5):
        p = client.resource("Patient", name=[{"family": f"Pagewalk{i}"}], generalPractitioner=[gp.to_reference()])
        p.save()
        ids.add(p.id)
    found = client.resources("Patient").search(name="pagewalk").limit(2).fetch_all()  # follows `next` links
    assert {p.id for p in found} == ids and len(found) == 5

    bundle = client.resources("Patient").search(name="pagewalk").include("Patient", "general-practitioner").limit(10).fetch_raw()
    modes = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]]
    assert modes.count(("Patient", "match")) == 5 and modes.count(("Practitioner", "include")) == 1
    assert bundle["total"] == 5

    obs = client.resource("Observation", status="final", code={"text": "HR"}, subject={"reference": f"Patient/{next(iter(ids))}"})
    obs.save()
    with_patient = client.resources("Observation").search(patient=next(iter(ids))).include("Observation", "patient").fetch_raw()
    assert {e["search"]["mode"] for e in with_patient["entry"]} == {"match", "include"}


def test_transaction_and_errors(fhir: tuple[SyncFHIRClient, Client, str]) -> None:
    client, _, base = fhir
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:7d3c1f0e-1111-4a2b-9c3d-222233334444", "resource": {"resourceType": "Patient", "name": [{"family": "Txn"}]}, "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}, "subject": {"reference": "urn:uuid:7d3c1f0e-1111-4a2b-9c3d-222233334444"}}, "request": {"method": "POST", "url": "Encounter"}},
        ],
    }
    response = client.execute(base, method="post", data=bundle)
    assert response["type"] == "transaction-response"
    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created", "201 Created"]
    patient_ref = response["entry"][0]["response"]["location"].split("/_history")[0]
    encounters = client.resources("Encounter").search(patient=patient_ref).fetch()
    assert len(encounters) == 1 and encounters[0]["subject"]["reference"] == patient_ref

    with pytest.raises(ResourceNotFound):
        client.reference("Patient", "no-such-patient").to_resource()
    with pytest.raises(OperationOutcome) as invalid:
        client.resource("Patient", gender=12).save()
    assert invalid.value.resource["resourceType"] == "OperationOutcome"
    assert invalid.value.resource["issue"][0]["expression"] == ["Patient.gender"]


def test_patient_everything_over_http(fhir: tuple[SyncFHIRClient, Client, str]) -> None:
    client, _, _ = fhir
    patient = client.resource("Patient", name=[{"family": "Everything"}])
    patient.save()
    for i in range(3):
        client.resource("Observation", status="final", code={"text": f"e{i}"}, subject=patient.to_reference()).save()
    bundle = patient.execute("$everything", method="get", params={"_count": 2})
    assert bundle["total"] == 4 and len(bundle["entry"]) == 2
    nxt = next(x["url"] for x in bundle["link"] if x["relation"] == "next")
    rest = client.execute(nxt, method="get")
    assert len(rest["entry"]) == 2 and {e["resource"]["resourceType"] for e in rest["entry"]} == {"Observation"}


def test_sort_paged_through_next_with_criteria(fhir: tuple[SyncFHIRClient, Client, str]) -> None:
    client, _, _ = fhir
    births = ["1990-01-02", "1975-06-30", None, "2001-11-11", "1975-06-30", "1988-03-04", None]
    made = []
    for i, birth in enumerate(births):
        p = client.resource("Patient", name=[{"family": f"Sortwalk{i % 3}", "given": [f"G{i}"]}], gender="female" if i != 3 else "male", **({"birthDate": birth} if birth else {}))
        p.save()
        made.append((p.id, birth, p["gender"]))
    found = client.resources("Patient").search(family="sortwalk", gender="female").sort("-birthdate", "_id").limit(2).fetch_all()
    female = [(pid, b) for pid, b, g in made if g == "female"]
    dated = sorted((x for x in female if x[1]), key=lambda x: x[0])
    dated.sort(key=lambda x: x[1], reverse=True)
    expected = [pid for pid, _ in dated] + sorted(pid for pid, b in female if not b)
    assert [p.id for p in found] == expected  # newest birth first, ties by id, no birth date last
    by_family = client.resources("Patient").search(family="sortwalk").sort("family").limit(3).fetch_all()
    families = [p["name"][0]["family"] for p in by_family]
    assert families == sorted(families) and len(by_family) == len(made)
    bundle = client.resources("Patient").search(family="sortwalk").sort("-_lastUpdated").limit(3).fetch_raw()
    assert bundle["total"] == len(made) and bundle["entry"][0]["resource"]["id"] == made[-1][0]
    with pytest.raises(OperationOutcome) as unsupported:
        client.resources("Patient").sort("gender").fetch()
    assert "family" in unsupported.value.resource["issue"][0]["diagnostics"]


def test_conditional_create_post_search_and_delete(fhir: tuple[SyncFHIRClient, Client, str]) -> None:
    client, http, base = fhir
    ident = {"system": "https://mrn.example.org", "value": "GC-1"}
    first, created = client.resources("Patient").search(identifier="https://mrn.example.org|GC-1").get_or_create(client.resource("Patient", identifier=[ident], name=[{"family": "Getorcreate"}]))
    again, created_again = client.resources("Patient").search(identifier="https://mrn.example.org|GC-1").get_or_create(client.resource("Patient", identifier=[ident], name=[{"family": "Other"}]))
    assert created and not created_again and again.id == first.id and again["name"][0]["family"] == "Getorcreate"
    header = http.post(f"/v1/{base.split('/v1/')[1]}/Patient", json={"resourceType": "Patient", "identifier": [ident]}, headers={"If-None-Exist": "identifier=https://mrn.example.org|GC-1", "Content-Type": "application/fhir+json"})
    assert header.status_code == 200 and header.json()["id"] == first.id

    form = http.post(f"/v1/{base.split('/v1/')[1]}/Patient/_search", data={"family": "getorcreate"}, headers={"Accept": "application/fhir+json"})
    assert form.status_code == 200 and form.json()["total"] == 1 and form.json()["entry"][0]["resource"]["id"] == first.id

    first.delete()
    with pytest.raises(ResourceNotFound):  # fhirpy's reading of 410 Gone (and 404)
        client.reference("Patient", first.id).to_resource()
    gone = http.get(f"/v1/{base.split('/v1/')[1]}/Patient/{first.id}", headers={"Accept": "application/fhir+json"})
    assert gone.status_code == 410 and gone.json()["issue"][0]["code"] == "deleted"
    assert client.resources("Patient").search(identifier="https://mrn.example.org|GC-1").fetch() == []
    history = client.execute("Patient/_history", method="get", params={"_count": 1})
    assert history["type"] == "history" and history["entry"][0]["request"]["method"] == "DELETE"
    assert history["entry"][0]["fullUrl"].endswith(f"/Patient/{first.id}")
    older = client.execute(next(x["url"] for x in history["link"] if x["relation"] == "next"), method="get")
    assert older["entry"][0]["fullUrl"] != history["entry"][0]["fullUrl"] or older["entry"][0]["response"]["etag"] != history["entry"][0]["response"]["etag"]
