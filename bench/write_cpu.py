"""Write-path CPU benchmark: CPU time per resource of the real write path, without the AWS backend.

DynamoDB is replaced by a fake behind botocore's ``before-send`` event (:class:`FakeDynamoDB`), so
botocore still validates, serialises and signs every request exactly as it would for AWS; only the
HTTP round trip and the server are gone. The fake answers what the import and API write paths send
(writes succeed, reads return the ``CURRENT``, touch, entity and blocking items written before); its own
CPU (parsing request bodies) is measured and subtracted.

Prints, in one run (CPU = ``time.process_time``):

1. every Synthea fixture through ``ImportService.import_bundle`` (validation, reference rewriting,
   ``ResourceService.write_many``): CPU per resource, resources/s per core, and the same for
   ``json.loads`` of the files alone and ``fhir.resources`` validation of the same resources alone,
   with the ratios; DynamoDB calls per resource. The call counts are asserted equal to a moto run of
   the same import (``--skip-moto``: to :data:`MOTO_CALLS`, the moto run's recorded figures);
2. one single-resource API write (``ResourceService.upsert`` of a new Patient, then of a new
   Observation of one of those Patients): CPU per write, writes/s per core, calls per write, ratio to validation alone.

    .venv/bin/python bench/write_cpu.py [--skip-moto] [--repeat 3] [--unfrozen] [--profile out.txt]

The measured process is in the state of a production function's: before measuring, it runs the
init of the functions it measures — ``functions/import_worker/app.py`` (section 1: the import
worker's ``ImportService``, whose ``import_bundle`` it calls) and ``functions/fhir_r4_update/app.py``
(section 2: ``PUT``, ``ResourceService.upsert``) — by importing those very modules, each of which
wraps its imports and set-up in ``fhir_platform.coldstart.init()`` (the garbage collector paused,
then ``gc.freeze()``: later collections never re-scan what the init built). Only the fake backend's
hook on botocore is installed first (before any client exists, as it must be). ``--unfrozen``
measures as this bench did before the functions froze their init (platform modules imported on
first use, nothing frozen): the figures of the earlier passes in docs/write-path.md.

``--repeat`` runs that many rounds — the fake import (fresh workspace each), then validation alone and
``json.loads`` alone of the same resources — and reports the best of each, their ratio, and each
round's own ratio (paired: a busy moment of the shared machine slows both sides of it);
``--profile FILE`` writes a cProfile listing (cumulative and own time) of one fake import run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench is a script folder, run from anywhere

from bench.aws_calls import counting  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures" / "synthea"
# the moto run of section 1 (bench/imports.py counts the same), recorded 2026-11-30; used with --skip-moto.
# Before index version 5 it was 481 + 3,985 (issue 14 quoted 3,555 transactions, before the timeline
# and vitals items); fewer index items pack more resources per transaction. 481 + 3,879 before the world
# model's resolution, the _sort items and the type-history item were merged (651 + 8,198 Query + 4,803
# then); directory keys read by presence item since (world-cost): 825 + 418 Query + 4,845. Since the
# write-calls pass (docs/write-path.md): packing, TypeIndex GSI, batches of 500, shared reads, Patient
# key presence items in a created workspace.
MOTO_CALLS = {"dynamodb:BatchGetItem": 403, "dynamodb:Query": 35, "dynamodb:TransactWriteItems": 3959}


# ---- the fake backend --------------------------------------------------------------------------


class _Raw(io.BytesIO):
    """The raw stream botocore reads a response body from."""

    def stream(self, **_: Any) -> Any:
        yield self.getvalue()


class FakeDynamoDB:
    """Answers DynamoDB requests in ``before-send`` (after botocore validated, serialised and
    signed them), like one table that never refuses: ``TransactWriteItems`` / ``PutItem`` succeed
    and keep their ``Put`` items of the kinds the write path reads back (``CURRENT``, touch items;
    ``Delete``s remove; ``Update``s — counter shards — are not kept),
    ``BatchGetItem`` / ``GetItem`` return the kept items (so a later batch finds the Patient and
    touch items an earlier one wrote, and re-imported shared resources are skipped as in moto),
    ``Query`` answers ``PK =`` (and ``begins_with(SK, …)``) over the kept entity and blocking
    families (``#E#``, ``#BK#``, ``#BKP#``: links, aliases, META, ``NOT#``, blocking members), so
    resolution sees what it wrote as in moto; other Queries find nothing. Conditions are not evaluated. Counts operations and its own CPU time
    (parsing the request bodies), which the report subtracts from the path's."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        # kept as JSON text: thousands of live dicts here would make every garbage collection of
        # the measured process slower than it is in a Lambda environment
        self.items: dict[tuple[str, str], str] = {}
        # PK -> SKs ever put (Query's view), as tuples of strings: the collector untracks those, where
        # a list per partition (~20,000 of them by the end of an import) would be re-scanned by every
        # full collection of the measured process, as no Lambda process holds the table
        self.partitions: dict[str, tuple[str, ...]] = {}
        self.cpu = 0.0
        self.families: Counter[str] = Counter()  # transaction operations by item family (family_of)
        self.transaction_ops = 0

    def clear(self) -> None:
        self.items.clear()
        self.partitions.clear()

    def __call__(self, request: Any, **_: Any) -> Any:
        t0 = time.process_time()
        try:
            return self._answer(request)
        finally:
            self.cpu += time.process_time() - t0

    def _answer(self, request: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        target = request.headers["X-Amz-Target"]
        operation = (target.decode() if isinstance(target, bytes) else target).rsplit(".", 1)[1]
        self.calls[operation] += 1
        params = json.loads(request.body)
        body: dict[str, Any] = {}
        if operation == "TransactWriteItems":
            self.transaction_ops += len(params["TransactItems"])
            for op in params["TransactItems"]:
                ((_, op_body),) = op.items()
                self.families[family_of(op_body.get("Item") or op_body["Key"])] += 1
                if "Put" in op:
                    self._put(op["Put"]["Item"])
                elif "Delete" in op:
                    self.items.pop(self._key(op["Delete"]["Key"]), None)
        elif operation == "PutItem":
            self._put(params["Item"])
        elif operation == "BatchGetItem":
            body = {"Responses": {}, "UnprocessedKeys": {}}
            for name, request_ in params["RequestItems"].items():
                found = [self.items.get(self._key(k)) for k in request_["Keys"]]
                body["Responses"][name] = [json.loads(i) for i in found if i is not None]
        elif operation == "GetItem":
            item = self.items.get(self._key(params["Key"]))
            body = {"Item": json.loads(item)} if item is not None else {}
        elif operation == "Query":
            found_items = self._query(params)
            body = {"Items": found_items, "Count": len(found_items), "ScannedCount": len(found_items)}
        elif operation == "Scan":
            body = {"Items": [], "Count": 0, "ScannedCount": 0}
        elif operation not in ("UpdateItem", "DeleteItem"):
            raise NotImplementedError(f"the fake DynamoDB does not answer {operation}")
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0", "Content-Length": str(len(data)), "x-amzn-RequestId": "fake"}
        return AWSResponse(request.url, 200, headers, _Raw(data))

    @staticmethod
    def _key(key: dict[str, Any]) -> tuple[str, str]:
        return key["PK"]["S"], key["SK"]["S"]

    def _put(self, item: dict[str, Any]) -> None:
        key = self._key(item)
        if key[1] in self.KEPT or any(f in key[0] for f in self.KEPT_PK):
            if key not in self.items:
                self.partitions[key[0]] = self.partitions.get(key[0], ()) + (key[1],)
            self.items[key] = json.dumps(item)

    def _query(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The key conditions the write path sends on the kept partitions (``PK = :v``, optionally
        ``begins_with(SK, :v)``), in SK order, up to ``Limit``; anything else (indexes, counter
        shards) finds nothing, as the kept items do not include them."""
        if "IndexName" in params:
            return []
        expr = params["KeyConditionExpression"]
        for alias, name in (params.get("ExpressionAttributeNames") or {}).items():
            expr = expr.replace(alias, name)
        values = params.get("ExpressionAttributeValues") or {}
        m = re.search(r"PK = (:\w+)", expr)
        if not m:
            return []
        pk = values[m.group(1)]["S"]
        prefix_m = re.search(r"begins_with\(SK, (:\w+)\)", expr)
        prefix = values[prefix_m.group(1)]["S"] if prefix_m else ""
        if not prefix_m and "SK" in expr.replace("PK", ""):
            raise NotImplementedError(f"the fake DynamoDB does not answer the key condition {expr!r}")
        sks = sorted(sk for sk in self.partitions.get(pk, ()) if sk.startswith(prefix) and (pk, sk) in self.items)
        if params.get("ScanIndexForward") is False:
            sks.reverse()
        sks = sks[: params.get("Limit") or len(sks)]
        return [json.loads(self.items[(pk, sk)]) for sk in sks]

    KEPT = ("CURRENT", "LAST_EVENT", "WORLD#PATIENT_KEYS")  # what the write paths read back (events and index items are not)
    # the entity and blocking families: resolution reads them back (links, aliases, META, NOT#,
    # blocking members and directory keys in use)
    KEPT_PK = ("#E#", "#BK#", "#BKP#")


def family_of(item: dict[str, Any]) -> str:
    """The item family of a transaction operation's item or key (wire form), for the per-family
    item count: resource items, type history, search index families grouped by purpose, entity
    items, counters."""
    pk, sk = item["PK"]["S"], item["SK"]["S"]
    if sk == "CURRENT":
        return "CURRENT"
    if sk.startswith("V#") and "#R#" in pk:
        return "event"
    if "#TH#" in pk:
        return "type history"
    if pk.endswith("#STATS"):
        return "counter update"
    if "#BKP#" in pk:
        return "entity: directory key presence"
    if "#BK#" in pk:
        return "entity: blocking member"
    if "#E#" in pk or "#CAND" in pk:
        return "entity: LINK/EV/META/candidates"
    if "#IX#" in pk:
        rest = pk.split("#IX#", 1)[1]
        rtype, _, rest = rest.partition("#")
        if rtype == "@patient":
            return "index: patient touch" if sk == "LAST_EVENT" else "index: patient facts"
        if rtype.startswith("@timeline") or rtype.startswith("@vitals"):
            return "index: timeline/vitals"
        family = rest.split("#", 1)[0]
        if family == "sort._id":
            return "index: sort._id"
        if family.startswith("sort.last_event_at") or family in ("sort.name", "sort.created_at"):
            return "index: patient list sorts"
        if family.startswith("sort."):
            return "index: sort.{field}"
        if family in ("_lastUpdated",) or family.startswith("src."):
            return "index: _lastUpdated / src"
        if family == "q":
            return "index: q words"
        if family == "patient+code":
            return "index: patient+code"
        return "index: search parameters"
    return "other"


def load_function(name: str) -> Any:
    """Run ``functions/{name}/app.py`` as Lambda runs a function's init: import the module (its
    ``coldstart.init()`` block pauses the collector, builds the function's objects, then freezes
    everything that exists). Returns the module (its ``service``, ``app``, ...)."""
    spec = importlib.util.spec_from_file_location(f"bench_function_{name}", ROOT / "functions" / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def install_fake() -> FakeDynamoDB:
    """Register the fake on every DynamoDB client created from now on (boto3 clients, and the
    clients behind boto3 resources), and point the platform at a table name and region. Needs no
    platform module: called before the functions' inits (:func:`load_function`)."""
    from botocore.client import ClientCreator

    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", TABLE_NAME="bench-data",
        IMPORTS_BUCKET="bench-imports", POWERTOOLS_TRACE_DISABLED="1", POWERTOOLS_LOG_LEVEL="ERROR", POWERTOOLS_METRICS_NAMESPACE="bench",
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    fake = FakeDynamoDB()
    original = ClientCreator.create_client

    def create_client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        client = original(self, service_name, *args, **kwargs)
        if service_name == "dynamodb":
            client.meta.events.register_first("before-send.dynamodb", fake)
        return client

    ClientCreator.create_client = create_client  # type: ignore[method-assign]
    if "fhir_platform.aws" in sys.modules:  # clients made before (none in a fresh process) are forgotten
        sys.modules["fhir_platform.aws"].reset()
    return fake


# ---- the workload ------------------------------------------------------------------------------


def load_fixtures() -> list[tuple[str, bytes]]:
    files = sorted(FIXTURES.rglob("*.json"))
    if not files:
        sys.exit(f"no Synthea fixtures under {FIXTURES}")
    return [(str(p.relative_to(FIXTURES)), p.read_bytes()) for p in files]


def pin_settings_cache() -> None:
    """The world model's settings (thresholds, parameters: one BatchGetItem) are cached per
    execution environment for 60 s of wall time, so a slower run (moto) re-reads them more often:
    both runs keep them for the whole import, so their call counts compare (≈ 1 call a minute)."""
    from fhir_platform.world import resolution

    resolution.SETTINGS_TTL_SECONDS = float("inf")


def create_workspace(ws: str) -> None:
    """The workspace's items, as the API creates them (off the clock, calls not counted): imports
    write into a real workspace (its ``WORLD#PATIENT_KEYS`` item, docs/entities.md, included)."""
    from fhir_platform.storage.workspaces import WorkspaceRepository

    WorkspaceRepository().create({"id": ws, "slug": ws, "name": ws, "created_at": "2026-01-01T00:00:00.000Z"})


def import_all(
    texts: list[tuple[str, bytes]], ws: str, fake: FakeDynamoDB | None = None, service: Any = None
) -> tuple[int, float, Counter[str]]:
    """Import every fixture, one bundle at a time as a request would (each parsed just before, off
    the clock), through ``service`` (the import worker's, or a new ``ImportService``). Returns
    (resources, CPU s of the platform's code — the fake's own CPU subtracted —, calls). Metrics
    lines are swallowed."""
    from fhir_platform.imports import ImportOptions
    from fhir_platform.imports.service import ImportService

    service = service or ImportService()
    options = ImportOptions(source_system="synthea")
    create_workspace(ws)
    if fake:  # the per-family item count is the import's
        fake.families.clear()
        fake.transaction_ops = 0
    total, cpu = 0, 0.0
    fake_before = fake.cpu if fake else 0.0
    with counting() as calls, contextlib.redirect_stdout(io.StringIO()):
        for _, text in texts:
            bundle = json.loads(text)
            total += len(bundle["entry"])
            t0 = time.process_time()
            summary = service.import_bundle(ws, bundle, options)
            cpu += time.process_time() - t0
            assert not summary.get("errors"), summary.get("errors")
            del bundle, summary
    return total, cpu - ((fake.cpu - fake_before) if fake else 0.0), calls


def json_loads_cpu(texts: list[tuple[str, bytes]]) -> float:
    t0 = time.process_time()
    for _, t in texts:
        json.loads(t)
    return time.process_time() - t0


def validation_cpu(texts: list[tuple[str, bytes]]) -> tuple[int, float]:
    from fhir_platform.fhir.validation import validate_resource

    resources = [e["resource"] for _, t in texts for e in json.loads(t)["entry"]]
    for r in resources[:200]:  # warm: model modules imported
        validate_resource(r)
    t0 = time.process_time()
    for r in resources:
        validate_resource(r)
    return len(resources), time.process_time() - t0


def dynamodb_calls(c: Counter[str]) -> dict[str, int]:
    return {k: n for k, n in sorted(c.items()) if k.startswith("dynamodb:")}


def moto_calls() -> dict[str, int]:
    """The same import over moto in-process, in a child process (moto's gigabytes of items would
    slow every garbage collection of this one): its DynamoDB call counts."""
    child = subprocess.run([sys.executable, __file__, "--moto-only"], capture_output=True, text=True, check=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


def _moto_only(texts: list[tuple[str, bytes]]) -> None:
    from bench.local_aws import start_moto

    mock = start_moto()
    pin_settings_cache()
    try:
        _, _, calls = import_all(texts, "bench-synthea")
    finally:
        mock.stop()
    print(json.dumps(dynamodb_calls(calls)))


# ---- single-resource API writes ----------------------------------------------------------------


def _patient(i: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "http://hospital.example/mrn", "value": f"MRN{i:08d}"}],
        "name": [{"use": "official", "family": "Quigley", "given": ["Annabel", "Mae"]}],
        "telecom": [{"system": "phone", "value": "555-588-7087", "use": "home"}],
        "gender": "female",
        "birthDate": "1971-03-04",
        "address": [{"line": ["12 Oak St"], "city": "Boston", "state": "MA", "postalCode": "02118", "country": "US"}],
    }


def _observation(i: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}], "text": "Heart rate"},
        "subject": {"reference": f"Patient/p-{i}"},
        "effectiveDateTime": "2024-05-01T10:00:00Z",
        "issued": "2024-05-01T10:00:00.123Z",
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
    }


def api_writes(n: int, fake: FakeDynamoDB, unfrozen: bool = False) -> list[tuple[str, float, float, dict[str, float]]]:
    """(label, CPU s per write, CPU s per validation alone, calls per write) for one upsert, through
    the ``ResourceService`` the ``PUT`` route uses (``api.deps.resources()``, one per execution
    environment; ``unfrozen``: a new one, as before)."""
    from fhir_platform.fhir.validation import validate_resource
    from fhir_platform.resources.service import ResourceService, WriteContext

    if unfrozen:
        service = ResourceService()
    else:
        from fhir_platform.api.deps import resources

        service = resources()
    out = []
    ws = f"bench-api-{uuid.uuid4()}"  # the Observations are of the Patients written first
    for label, make in (("Patient", _patient), ("Observation", _observation)):
        with contextlib.redirect_stdout(io.StringIO()):
            for i in range(20):  # warm
                service.upsert(ws, label, f"warm-{i}", make(i), WriteContext())
        bodies = [make(i) for i in range(n)]
        fake_before = fake.cpu
        with counting() as calls, contextlib.redirect_stdout(io.StringIO()):
            t0 = time.process_time()
            for i, body in enumerate(bodies):
                service.upsert(ws, label, f"{label[0].lower()}-{i}", body, WriteContext())
            cpu = time.process_time() - t0 - (fake.cpu - fake_before)
        t0 = time.process_time()
        for body in bodies:
            validate_resource(body, expected_type=label)
        vcpu = time.process_time() - t0
        out.append((label, cpu / n, vcpu / n, {k: v / n for k, v in dynamodb_calls(calls).items()}))
    return out


# ---- report ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-moto", action="store_true", help="compare call counts with the recorded moto figures")
    parser.add_argument("--repeat", type=int, default=3, help="fake import runs (best is reported)")
    parser.add_argument("--writes", type=int, default=500, help="single-resource writes per type")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile listing of one fake import")
    parser.add_argument(
        "--unfrozen", action="store_true", help="no function init (coldstart.init): the platform imported on first use, nothing frozen (earlier passes' figures)"
    )
    parser.add_argument("--moto-only", action="store_true", help=argparse.SUPPRESS)  # the child of moto_calls()
    args = parser.parse_args()
    texts = load_fixtures()
    if args.moto_only:
        return _moto_only(texts)

    expected = MOTO_CALLS if args.skip_moto else moto_calls()
    fake = install_fake()
    service = None
    if not args.unfrozen:  # the functions' own inits, as Lambda runs them (coldstart.init: frozen)
        service = load_function("import_worker").service
        load_function("fhir_r4_update")
    pin_settings_cache()

    # each round: one import, then validation alone and json.loads alone of the same resources, so
    # a busy moment of the shared machine weighs on both sides of that round's ratio
    runs, valid_runs, loads_runs = [], [], []
    for _ in range(max(1, args.repeat)):
        fake.clear()
        fake.families.clear()
        fake.transaction_ops = 0
        fake_before = fake.cpu
        total, cpu, calls = import_all(texts, f"bench-{uuid.uuid4()}", fake, service)
        runs.append(cpu)
        fake_cpu = fake.cpu - fake_before
        got = dynamodb_calls(calls)
        nvalid, vcpu = validation_cpu(texts)
        assert nvalid == total
        valid_runs.append(vcpu)
        loads_runs.append(json_loads_cpu(texts))
    cpu, vcpu, loads = min(runs), min(valid_runs), min(loads_runs)
    paired = sorted(v / c for c, v in zip(runs, valid_runs))

    per = cpu / total
    state = "platform imported on first use, nothing frozen (--unfrozen)" if args.unfrozen else "after the functions' init (coldstart.init: frozen)"
    print(f"== 1. Synthea import over the fake DynamoDB: {len(texts)} files, {total} resources (best of {len(runs)}; {state}) ==")
    print(f"  {'':<34}{'CPU µs/resource':>16}{'resources/s/core':>18}{'path ÷ this':>13}")
    print(f"  {'write path (import_bundle)':<34}{per * 1e6:16.0f}{1 / per:18.0f}{'':>13}")
    print(f"  {'fhir.resources validation alone':<34}{vcpu / total * 1e6:16.0f}{total / vcpu:18.0f}{per / (vcpu / total):12.1f}x")
    print(f"  {'json.loads alone':<34}{loads / total * 1e6:16.0f}{total / loads:18.0f}{per / (loads / total):12.1f}x")
    print(f"  speed ratio to validation: {(1 / per) / (total / vcpu):.3f} best of each (issue 14 asks ≥ 0.25); per round {', '.join(f'{r:.3f}' for r in paired)}, median {paired[len(paired) // 2]:.3f}")
    print(f"  runs: import {', '.join(f'{total / c:.0f}/s' for c in runs)}; validation {', '.join(f'{total / v:.0f}/s' for v in valid_runs)}")
    print(f"  DynamoDB calls: fake {got}, moto {expected}{'  (recorded)' if args.skip_moto else ''}")
    print(f"  DynamoDB calls per resource: {sum(got.values()) / total:.4f}   (the fake's own CPU, subtracted above: {fake_cpu / total * 1e6:.0f} µs/resource)")
    twi = got.get("dynamodb:TransactWriteItems", 0)
    print(f"  transaction items: {fake.transaction_ops} in {twi} TransactWriteItems ({fake.transaction_ops / max(1, twi):.1f} per call), {fake.transaction_ops / total:.2f} per resource; by family:")
    for name, n in sorted(fake.families.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<40}{n / total:8.2f}  ({n})")
    print(f"\n== 2. One single-resource API write (ResourceService.upsert, new id) over the fake DynamoDB, {args.writes} each ==")
    print(f"  {'':<14}{'CPU µs/write':>14}{'writes/s/core':>15}{'validation µs':>15}{'path ÷ valid.':>15}  calls per write")
    for label, per_write, per_valid, calls_per in api_writes(args.writes, fake, args.unfrozen):
        print(f"  {label:<14}{per_write * 1e6:14.0f}{1 / per_write:15.0f}{per_valid * 1e6:15.0f}{per_write / per_valid:14.1f}x  {calls_per}")

    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        import_all(texts, f"bench-{uuid.uuid4()}", fake, service)
        profiler.disable()
        with open(args.profile, "w") as fh:
            stats = pstats.Stats(profiler, stream=fh)
            stats.sort_stats("cumulative").print_stats(60)
            stats.sort_stats("tottime").print_stats(60)
        print(f"\nprofile written to {args.profile}")
    del fake
    assert got == expected, f"the fake run's calls {got} differ from the moto run's {expected}"


if __name__ == "__main__":
    main()
