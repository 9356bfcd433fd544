"""Search benchmark: handlers in-process over moto (the same events API Gateway sends).

Builds workspaces of N patients (default 1,000 and 20,000), each Patient with a few Observations
(plus a fixed directory: practitioners, locations, organizations, schedules, slots, appointments),
written through ``ResourceService.write_many`` — the import write path, so every index item,
counter and compartment touch is the real one — with moto's local speed-ups. Then, for a
representative set of queries, prints per workspace size: p50/p95 latency (in-process moto: only
the *shape* is meaningful) and the DynamoDB calls per request (the backend-independent cost; they
include the authorizer's GetItem and the FHIR gate's workspace GetItem, 2 calls). The point is the
last column: the calls per query must not grow with the workspace.

    .venv/bin/python bench/search.py [--sizes 1000,20000] [--obs 3] [--repeat 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench is a script folder, run from anywhere

from bench.aws_calls import counting, dynamodb  # noqa: E402
from bench.crud import setup  # noqa: E402
from bench.gen_ndjson import observation, patient  # noqa: E402

ADMIN = "fpadm_bench"
BATCH = 500
DIRECTORY = 40  # practitioners / locations / organizations / schedules per workspace (fixed)
SLOTS = 400
APPOINTMENTS = 200
SOURCE = "5d0c3f7e-9a41-4d8e-b7b2-6f1e0a2c4d90"  # the data_source_id every bench resource is written from


def _uuid(rng: random.Random) -> str:
    import uuid

    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def directory(rng: random.Random) -> list[dict]:
    out: list[dict] = []
    for i in range(DIRECTORY):
        out.append({"resourceType": "Practitioner", "id": f"pr-{i}", "name": [{"family": f"Doc{i:03d}", "given": ["Alex"]}],
                    "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": f"{1000000000 + i}"}]})
        out.append({"resourceType": "Location", "id": f"loc-{i}", "name": f"Clinic {i}", "address": {"city": "Boston", "state": "MA"}})
        out.append({"resourceType": "Organization", "id": f"org-{i}", "name": f"Health Org {i}"})
        out.append({"resourceType": "Schedule", "id": f"sch-{i}", "actor": [{"reference": f"Practitioner/pr-{i}", "display": f"Alex Doc{i:03d}"},
                                                                         {"reference": f"Location/loc-{i}"}]})
    for i in range(SLOTS):
        day = 1 + i % 28
        out.append({"resourceType": "Slot", "id": f"slot-{i}", "schedule": {"reference": f"Schedule/sch-{i % DIRECTORY}"},
                    "status": rng.choice(["free", "busy"]), "start": f"2025-02-{day:02d}T{9 + i % 8:02d}:00:00Z",
                    "end": f"2025-02-{day:02d}T{9 + i % 8:02d}:30:00Z", "specialty": [{"text": rng.choice(["Psychiatry", "Cardiology"])}]})
    for i in range(APPOINTMENTS):
        out.append({"resourceType": "Appointment", "id": f"ap-{i}", "status": "booked", "start": f"2025-02-{1 + i % 28:02d}T10:00:00Z",
                    "participant": [{"actor": {"reference": f"Practitioner/pr-{i % DIRECTORY}", "display": f"Alex Doc{i % DIRECTORY:03d}"},
                                     "status": "accepted"}]})
    return out


def build(gw: Any, n_patients: int, obs_per_patient: int, seed: int) -> dict[str, Any]:
    from fhir_platform.resources.service import ResourceService, WriteContext

    ws = gw.call("POST", "/v1/workspaces", token=ADMIN, body={"name": "Bench", "slug": f"bench-search-{n_patients}",
                                                               "ehr_type": "epic", "fhir_store_url": "https://ehr.example.org/fhir"}).body
    key = gw.call("POST", f"/v1/{ws['id']}/api-keys", token=ADMIN, body={"duration_days": 1, "role": "viewer"}).body["api_key"]
    rng = random.Random(seed)
    service = ResourceService()
    ctx = WriteContext(source="bench", data_source_id=SOURCE)  # one source: its scoped lists are the largest
    samples: dict[str, list] = {"pid": [], "mrn": [], "phone": [], "family": []}
    pending: list[tuple[str, str, dict]] = [(r["resourceType"], r["id"], r) for r in directory(rng)]
    t0 = time.perf_counter()
    written = 0

    def flush() -> None:
        nonlocal written
        if pending:
            service.write_many(ws["id"], pending, ctx)
            written += len(pending)
            pending.clear()

    for i in range(n_patients):
        pid = _uuid(rng)
        p = patient(rng, pid)
        if len(samples["pid"]) < 200 and rng.random() < 0.2:
            samples["pid"].append(pid)
            samples["mrn"].append(p["identifier"][1]["value"])
            samples["phone"].append(p["telecom"][0]["value"])
            samples["family"].append(p["name"][0]["family"])
        pending.append(("Patient", pid, p))
        for _ in range(obs_per_patient):
            o = observation(rng, _uuid(rng), f"Patient/{pid}")
            pending.append(("Observation", o["id"], o))
        if len(pending) >= BATCH:
            flush()
        if (i + 1) % 2000 == 0:
            rate = written / (time.perf_counter() - t0)
            print(f"  {i + 1:,}/{n_patients:,} patients, {written:,} resources written ({rate:,.0f}/s)", flush=True)
    flush()
    secs = time.perf_counter() - t0
    print(f"  built: {n_patients:,} patients + {n_patients * obs_per_patient:,} observations + {len(directory(random.Random(0))):,} "
          f"directory resources in {secs:,.0f} s ({written / secs:,.0f} resources/s)", flush=True)
    return {"ws": ws["id"], "key": key, **samples}


def queries(ctx: dict[str, Any]) -> list[tuple[str, str, Callable[[int], dict]]]:
    """(label, path, i -> query params); values vary with i so caches and hot items do not help."""
    pick = lambda name: (lambda i: ctx[name][i % len(ctx[name])])  # noqa: E731
    pid, mrn, phone, family = pick("pid"), pick("mrn"), pick("phone"), pick("family")
    r = "resources"
    return [
        ("Patient name prefix", f"{r}/Patient", lambda i: {"name": family(i)[:3].lower()}),
        ("Patient mrn (token)", f"{r}/Patient", lambda i: {"mrn": mrn(i)}),
        ("Patient phone", f"{r}/Patient", lambda i: {"phone": phone(i)}),
        ("Patient birthdate=year", f"{r}/Patient", lambda i: {"birthdate": str(1940 + i % 60)}),
        ("Patient no filter", f"{r}/Patient", lambda i: {}),
        ("Obs status=final (hot)", f"{r}/Observation", lambda i: {"status": "final"}),
        ("Obs status=final _offset=200", f"{r}/Observation", lambda i: {"status": "final", "_offset": "200"}),
        ("Obs code", f"{r}/Observation", lambda i: {"code": "http://loinc.org|8867-4"}),
        ("Obs patient=", f"{r}/Observation", lambda i: {"patient": f"Patient/{pid(i)}"}),
        ("Obs patient+code", f"{r}/Observation", lambda i: {"patient": pid(i), "code": "8867-4"}),
        ("Obs date=month (range)", f"{r}/Observation", lambda i: {"date": f"{2010 + i % 14}-03"}),
        ("Obs date=ge (open range)", f"{r}/Observation", lambda i: {"date": f"ge{2010 + i % 14}-03-01"}),
        ("Obs date+status+code", f"{r}/Observation", lambda i: {"date": f"{2010 + i % 14}", "status": "final", "code": "8867-4"}),
        ("Obs no filter", f"{r}/Observation", lambda i: {}),
        ("patients -last_event_at", "patients", lambda i: {"sort_by": "-last_event_at"}),
        ("patients +last_event_at", "patients", lambda i: {"sort_by": "+last_event_at"}),
        ("patients -created_at", "patients", lambda i: {"sort_by": "-created_at"}),
        ("patients +created_at", "patients", lambda i: {"sort_by": "+created_at"}),
        ("patients +name", "patients", lambda i: {"sort_by": "+name"}),
        ("patients -name", "patients", lambda i: {"sort_by": "-name"}),
        ("patients q=family", "patients", lambda i: {"q": family(i)}),
        ("patients q=family +name", "patients", lambda i: {"q": family(i), "sort_by": "+name"}),
        ("patients q=2 letters", "patients", lambda i: {"q": family(i)[:2]}),
        ("patients mrn", "patients", lambda i: {"mrn": mrn(i)}),
        ("patients phone", "patients", lambda i: {"phone": phone(i)}),
        ("view patients", "views/patients", lambda i: {}),
        ("view patients q", "views/patients", lambda i: {"q": family(i)}),
        ("view patients data_source_id", "views/patients", lambda i: {"data_source_id": SOURCE}),
        ("view patients q+data_source", "views/patients", lambda i: {"q": family(i), "data_source_id": SOURCE}),
        ("view practitioners", "views/practitioners", lambda i: {}),
        ("view locations", "views/locations", lambda i: {}),
        ("view organizations", "views/organizations", lambda i: {}),
        ("view orgs data_source_id", "views/organizations", lambda i: {"data_source_id": SOURCE}),
        ("view orgs q=2 words", "views/organizations", lambda i: {"q": f"health org {i % DIRECTORY}"}),
        ("view appointments", "views/appointments", lambda i: {}),
        ("view slots", "views/slots", lambda i: {}),
        ("view slots date+status", "views/slots", lambda i: {"date": f"2025-02-{1 + i % 20:02d}", "status": "free"}),
        ("view slots provider", "views/slots", lambda i: {"provider": f"doc{i % DIRECTORY:03d}"}),
    ]


def measure(gw: Any, ctx: dict[str, Any], repeat: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for label, path, params in queries(ctx):
        times, calls, failed, totals = [], [], [], []
        for i in range(repeat):
            query = params(i)
            with counting() as c:
                t0 = time.perf_counter()
                reply = gw.call("GET", f"/v1/{ctx['ws']}/fhir/{path}", token=ctx["key"], query=query or None)
                times.append(time.perf_counter() - t0)
            if reply.status != 200:  # reported, not fatal: a 400 "too broad" is a finding
                failed.append(f"{reply.status} {reply.body.get('error')}")
            calls.append(dynamodb(c))
            if isinstance(reply.body, dict) and isinstance(reply.body.get("total"), int):
                totals.append(reply.body["total"])
        times.sort()
        out[label] = {
            "p50": statistics.median(times) * 1000,
            "p95": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))] * 1000,
            "calls": statistics.mean(calls),
            "max": max(calls),
            "matches": statistics.mean(totals) if totals else None,
            "failed": f"{len(failed)}/{repeat} {failed[0]}" if failed else "",
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,20000", help="patients per workspace")
    parser.add_argument("--obs", type=int, default=3, help="observations per patient")
    parser.add_argument("--repeat", type=int, default=20, help="requests per query and size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    mock = setup()
    try:
        from tests.support.gateway import Gateway

        gw = Gateway()
        results = {}
        for n in sizes:
            print(f"\n== building a workspace of {n:,} patients ({args.obs} observations each) ==", flush=True)
            ctx = build(gw, n, args.obs, seed=n)
            print(f"== measuring ({args.repeat} requests per query) ==", flush=True)
            results[n] = measure(gw, ctx, args.repeat)
    finally:
        mock.stop()
    head = f"{'query':<30}" + "".join(f"{f'{n:,} p50/p95 ms':>22}{'ddb calls':>11}{'total':>9}" for n in sizes)
    print("\n== search latency (in-process moto), DynamoDB calls per request (mean, incl. 2 auth/gate GetItems) "
          "and the mean `total` the responses reported ==")
    print(head)
    for label in results[sizes[0]]:
        row = f"{label:<30}"
        for n in sizes:
            r = results[n][label]
            calls = f"{r['calls']:.1f}" + (f" (≤{r['max']})" if r["max"] != round(r["calls"]) else "")
            matches = "" if r["matches"] is None else f"{r['matches']:,.0f}"
            row += f"{r['p50']:>12.1f} /{r['p95']:>8.1f}{calls:>11}{matches:>9}"
        failures = [f"{n:,}: {results[n][label]['failed']}" for n in sizes if results[n][label]["failed"]]
        print(row + (f"   failed {'; '.join(failures)}" if failures else ""))


if __name__ == "__main__":
    main()
