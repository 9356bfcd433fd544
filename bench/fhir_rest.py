"""FHIR REST facade: DynamoDB calls per request at two patient history sizes (handlers in-process
over moto, the events API Gateway sends). The calls of search, `_include`, `_revinclude` and
`Patient/$everything` pages should not grow with the patient's history.

    .venv/bin/python bench/fhir_rest.py [--sizes 10,1000]
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
            data = {"resourceType": "Observation", "status": "final", "code": {"text": f"o{i}"}, "subject": ref}
        else:
            data = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}, "subject": ref}
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
    ]
    out = []
    for label, path, query in requests:
        with counting() as c:
            reply = gw.call("GET", r4 + path, token=key, query=query, headers=fhir)
        assert reply.status == 200, (label, reply.status, reply.body)
        out.append((label, dynamodb(c)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,1000", help="resources in the patient's history")
    args = parser.parse_args()
    mock = setup()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        results = {size: dict(round_for(size)) for size in sizes}
        print(f"\n== FHIR REST facade: DynamoDB calls per request (incl. authorizer + workspace gate) ==")
        print(f"{'request':<42}" + "".join(f"{f'{s} events':>14}" for s in sizes))
        for label in results[sizes[0]]:
            print(f"{label:<42}" + "".join(f"{results[s][label]:>14}" for s in sizes))
    finally:
        mock.stop()


if __name__ == "__main__":
    main()
