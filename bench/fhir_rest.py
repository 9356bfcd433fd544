"""FHIR REST facade: DynamoDB calls per request at two patient history sizes (handlers in-process
over moto, the events API Gateway sends). The calls of search, `_include`, `_revinclude` and
`Patient/$everything` pages should not grow with the patient's history.

    .venv/bin/python bench/fhir_rest.py [--sizes 10,1000]

``_sort`` rows: without criteria the sort family is walked; with criteria up to 1,000 candidates
are fetched and ordered in memory (⌈c / 100⌉ BatchGetItems); more (the patient's Observations at
``--sizes 2400``: 1,200) are ordered by walking the sort family over the match set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench is a script folder, run from anywhere

from bench.aws_calls import counting, dynamodb  # noqa: E402
from bench.crud import setup  # noqa: E402


def round_for(size: int) -> list[tuple[str, int]]:
    from fhir_platform.api import deps
    from fhir_platform.resources.service import WriteContext
    from tests.support.gateway import Gateway

    gw = Gateway()
    ws = gw.call("POST", "/v1/workspaces", token="fpadm_bench", body={"name": "Bench", "slug": f"bench-r4-{size}", "ehr_type": "epic", "fhir_store_url": "https://ehr.example.org/fhir"}).body
    key = gw.call("POST", f"/v1/{ws['id']}/api-keys", token="fpadm_bench", body={"duration_days": 1, "role": "admin"}).body["api_key"]
    r4 = f"/v1/{ws['id']}/fhir/r4"
    fhir = {"content-type": "application/fhir+json"}
    gp = gw.call("POST", f"{r4}/Practitioner", token=key, body={"resourceType": "Practitioner", "name": [{"family": "Gp"}]}, headers=fhir).body
    patient = gw.call("POST", f"{r4}/Patient", token=key, body={"resourceType": "Patient", "name": [{"family": "Bench"}], "generalPractitioner": [{"reference": f"Practitioner/{gp['id']}"}]}, headers=fhir).body
    service, ref = deps.resources(), {"reference": f"Patient/{patient['id']}"}
    for i in range(size):  # the patient's history: observations and encounters
        if i % 2:
            data = {"resourceType": "Observation", "status": "final", "code": {"text": f"o{i}"}, "subject": ref, "effectiveDateTime": f"20{10 + i % 15}-0{1 + i % 9}-1{i % 10}"}
        else:
            data = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}, "subject": ref, "period": {"start": f"20{10 + i % 15}-0{1 + i % 9}-2{i % 10}"}}
        service.create(ws["id"], data["resourceType"], data, WriteContext(source="bench"))
    requests = [
        ("read Patient", f"/Patient/{patient['id']}", None),
        ("search Observation?patient (20)", "/Observation", {"patient": patient["id"]}),
        ("  + _include=Observation:patient", "/Observation", {"patient": patient["id"], "_include": "Observation:patient"}),
        ("search Patient + _include gp", "/Patient", {"_id": patient["id"], "_include": "Patient:general-practitioner"}),
        ("search Patient + _revinclude Encounter", "/Patient", {"_id": patient["id"], "_revinclude": "Encounter:patient"}),
        ("$everything page 1 (50)", f"/Patient/{patient['id']}/$everything", None),
        ("$everything a later page", f"/Patient/{patient['id']}/$everything", {"_offset": str(max(0, size - 50))}),
        ("history", f"/Patient/{patient['id']}/_history", None),
        ("Observation?_sort=-date (no criteria)", "/Observation", {"_sort": "-date"}),
        ("  _offset=n/4 (walk)", "/Observation", {"_sort": "-date", "_offset": str(size // 4)}),
        ("Observation?patient&_sort=-date", "/Observation", {"patient": patient["id"], "_sort": "-date"}),
        ("  _offset=n/4 (matches)", "/Observation", {"patient": patient["id"], "_sort": "-date", "_offset": str(size // 4)}),
        ("Encounter?patient&_sort=date,-_id", "/Encounter", {"patient": patient["id"], "_sort": "date,-_id"}),
        ("Observation?date=ge2020&_sort=_id", "/Observation", {"date": "ge2020", "_sort": "_id"}),
        ("Patient?_sort=family", "/Patient", {"_sort": "family"}),
        ("Observation/_history (type, 10)", "/Observation/_history", None),
        ("  _offset=n/4", "/Observation/_history", {"_offset": str(size // 4)}),
    ]
    out = []
    for label, path, query in requests:
        with counting() as c:
            reply = gw.call("GET", r4 + path, token=key, query=query, headers=fhir)
        assert reply.status == 200, (label, reply.status, reply.body)
        out.append((label, dynamodb(c)))
    form = {"content-type": "application/x-www-form-urlencoded"}
    with counting() as c:
        reply = gw.call("POST", f"{r4}/Observation/_search", token=key, raw_body=f"patient={patient['id']}&_sort=-date", headers=form)
    assert reply.status == 200, reply.body
    out.append(("POST Observation/_search (form)", dynamodb(c)))
    mrn = {"system": "https://mrn.example.org", "value": f"B-{size}"}
    txn = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:1e7f6c2a-0000-4000-8000-000000000001", "resource": {"resourceType": "Patient", "identifier": [mrn], "name": [{"family": "Txn"}]},
             "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={mrn['system']}|{mrn['value']}"}},
            {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "t"}, "subject": {"reference": "urn:uuid:1e7f6c2a-0000-4000-8000-000000000001"}},
             "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    with counting() as c:
        reply = gw.call("POST", r4, token=key, body=txn, headers=fhir)
    assert reply.status == 200 and reply.body["entry"][1]["response"]["status"] == "201 Created", reply.body
    out.append(("transaction Patient(ifNoneExist)+Obs", dynamodb(c)))
    with counting() as c:
        reply = gw.call("POST", f"{r4}/Patient", token=key, body=txn["entry"][0]["resource"], headers={**fhir, "if-none-exist": f"identifier={mrn['system']}|{mrn['value']}"})
    assert reply.status == 200, reply.body
    out.append(("POST Patient If-None-Exist (matches)", dynamodb(c)))
    with counting() as c:
        reply = gw.call("DELETE", f"{r4}/Practitioner/{gp['id']}", token=key, headers=fhir)
    assert reply.status == 204, reply.body
    out.append(("DELETE Practitioner", dynamodb(c)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,1000", help="resources in the patient's history")
    args = parser.parse_args()
    mock = setup()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        results = {size: dict(round_for(size)) for size in sizes}
        print("\n== FHIR REST facade: DynamoDB calls per request (incl. authorizer + workspace gate) ==")
        print(f"{'request':<44}" + "".join(f"{f'{s} events':>14}" for s in sizes))
        for label in results[sizes[0]]:
            print(f"{label:<44}" + "".join(f"{results[s][label]:>14}" for s in sizes))
    finally:
        mock.stop()


if __name__ == "__main__":
    main()
