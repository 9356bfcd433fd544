"""Patient timeline and summary benchmark: DynamoDB calls per page at two history lengths.

Builds one workspace with two patients, one with a short history and one with a long one (default
10 and 10,000 events: Observations, Encounters, Conditions, Immunizations and vital signs, written
through ``ResourceService.write_many`` — the import write path, so every timeline item and touch
count is the real one — with moto's local speed-ups), then requests through the handlers (the same
events API Gateway sends) a few timeline pages (first page, a deep offset, one domain) and the
summary, and prints per history length the DynamoDB calls per request (they include the
authorizer's GetItem and the FHIR gate's workspace GetItem: 2 calls) and the reported ``total``.
The point: the calls do not grow with the history. Latency is moto's and not printed.

    .venv/bin/python bench/timeline.py [--sizes 10,10000]
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench is a script folder, run from anywhere

from bench.aws_calls import counting, dynamodb  # noqa: E402
from bench.crud import setup  # noqa: E402

ADMIN = "fpadm_bench"
BATCH = 500
VITALS = [("8867-4", "Heart rate", "/min", 72), ("29463-7", "Body weight", "kg", 80.2), ("8302-2", "Body height", "cm", 170),
          ("39156-5", "BMI", "kg/m2", 27.7), ("8310-5", "Body temperature", "Cel", 36.8)]


def history(pid: str, n: int) -> list[tuple[str, str, dict]]:
    """``n`` compartment resources of ``pid``, an hour apart, of several domains."""
    out: list[tuple[str, str, dict]] = []
    start = datetime(2000, 1, 1, tzinfo=UTC)
    subject = {"reference": f"Patient/{pid}"}
    for i in range(n):
        when = (start + timedelta(hours=i)).isoformat().replace("+00:00", "Z")
        rid = f"{pid}-{i}"
        kind = i % 10
        if kind == 0:
            r = {"resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"}, "type": [{"text": "Checkup"}],
                 "subject": subject, "period": {"start": when}}
        elif kind == 1:
            r = {"resourceType": "Condition", "subject": subject, "code": {"text": f"Problem {i}"},
                 "clinicalStatus": {"coding": [{"code": "active" if i % 7 else "resolved"}]}, "onsetDateTime": when}
        elif kind == 2:
            r = {"resourceType": "Immunization", "status": "completed", "patient": subject, "vaccineCode": {"text": "Influenza"},
                 "occurrenceDateTime": when}
        else:
            code, name, unit, value = VITALS[i % len(VITALS)]
            r = {"resourceType": "Observation", "status": "final", "subject": subject, "effectiveDateTime": when,
                 "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": name}]},
                 "valueQuantity": {"value": value, "unit": unit}}
        out.append((r["resourceType"], rid, {**r, "id": rid}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,10000", help="events in each patient's history")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    mock = setup()
    try:
        from fhir_platform.resources.service import ResourceService, WriteContext
        from tests.support.gateway import Gateway

        gw = Gateway()
        ws = gw.call("POST", "/v1/workspaces", token=ADMIN, body={"name": "Bench", "slug": "bench-timeline",
                                                                   "ehr_type": "epic", "fhir_store_url": "https://ehr.example.org/fhir"}).body
        key = gw.call("POST", f"/v1/{ws['id']}/api-keys", token=ADMIN, body={"duration_days": 1, "role": "viewer"}).body["api_key"]
        service = ResourceService()
        ctx = WriteContext(source="bench")
        for n in sizes:
            pid = f"bench-{n}"
            print(f"== writing a history of {n:,} events ==", flush=True)
            service.write_many(ws["id"], [("Patient", pid, {"resourceType": "Patient", "id": pid, "name": [{"family": "Bench"}]})], ctx)
            entries = history(pid, n)
            for start in range(0, n, BATCH):
                service.write_many(ws["id"], entries[start:start + BATCH], ctx)
        requests: dict[str, tuple[str, dict[str, str]]] = {
            "timeline first page (50)": ("timeline", {}),
            "timeline limit=200": ("timeline", {"limit": "200"}),
            "timeline offset=n/2 limit=50": ("timeline", {"offset": "half", "limit": "50"}),
            "timeline domain=observation": ("timeline", {"domain": "observation"}),
            "timeline domain=encounter": ("timeline", {"domain": "encounter"}),
            "summary": ("summary", {}),
        }
        results: dict[str, dict[int, tuple[int, Any]]] = {}
        gw.call("GET", f"/v1/{ws['id']}/fhir/patients/bench-{sizes[0]}/summary", token=key)  # the key's first use writes last_used_at
        for label, (what, query) in requests.items():
            for n in sizes:
                q = {k: str(n // 2) if v == "half" else v for k, v in query.items()}
                with counting() as c:
                    reply = gw.call("GET", f"/v1/{ws['id']}/fhir/patients/bench-{n}/{what}", token=key, query=q or None)
                assert reply.status == 200, reply.body
                total = reply.body.get("total", reply.body.get("event_count"))
                results.setdefault(label, {})[n] = (dynamodb(c), total)
    finally:
        mock.stop()
    print("\n== DynamoDB calls per request (incl. 2 auth/gate GetItems) and the `total` reported "
          "(summary: event_count), per history length ==")
    print(f"{'request':<32}" + "".join(f"{f'{n:,} events: calls':>22}{'total':>8}" for n in sizes))
    for label, per in results.items():
        print(f"{label:<32}" + "".join(f"{per[n][0]:>22}{per[n][1]:>8}" for n in sizes))


if __name__ == "__main__":
    main()
