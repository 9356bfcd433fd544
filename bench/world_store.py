"""World-model resolution cost on the stored side. Prints figures (no assertions):

For each size (default 1,000 and 20,000 Patients of the perturbed Synthea-shaped population,
``tests/support/perturb.py``, in its shuffled order), in one moto in-process run:

1. **import with probabilistic resolution** (``write_many`` in batches of 100, as the import worker
   does): Patients/s, DynamoDB calls per Patient (all of them: resource reads, blocking Queries,
   alias reads, transactions, the amortised parameter refresh);
2. **the same records with the deterministic resolver** (each Patient its own entity): Patients/s
   and calls per Patient;
3. **API writes at that size**: 200 more records written one at a time (``upsert``), DynamoDB calls
   per resolved Patient, split by operation;
4. the resulting entities against the truth (pairwise precision / recall / F1 over the imported
   records) and the number of parameter refreshes.

    .venv/bin/python bench/world_store.py [--sizes 1000 20000] [--probe 200]
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.aws_calls import counting, dynamodb  # noqa: E402
from bench.local_aws import start_moto  # noqa: E402

BATCH = 100


def _pairs(groups: dict[str, list[str]]) -> set[tuple[str, str]]:
    return {tuple(sorted(p)) for members in groups.values() for p in itertools.combinations(members, 2)}  # type: ignore[misc]


def run(size: int, probe: int) -> None:
    from fhir_platform.resources.service import ResourceService, WriteContext
    from fhir_platform.storage.entities import EntityStore
    from fhir_platform.world.entities import DeterministicResolver, anchor_entity_id
    from tests.support.perturb import population

    records = population(int(size / 1.5) + probe, seed=size)
    imported, extra = records[:size], records[size : size + probe]
    ctx = WriteContext(source="fhir_import", source_system="bench")

    print(f"\n== {len(imported):,} Patients ({len({r.person for r in imported}):,} people) ==")
    results = {}
    for label, ws in (("probabilistic", f"prob-{size}"), ("deterministic", f"det-{size}")):
        svc = ResourceService()
        if label == "deterministic":
            svc.resolver = DeterministicResolver(lambda w, pid, s=svc: s.store.entity_of(w, "Patient", pid))
        started = time.perf_counter()
        with counting() as calls:
            for start in range(0, len(imported), BATCH):
                svc.write_many(ws, [("Patient", r.record_id, r.patient) for r in imported[start : start + BATCH]], ctx)
        seconds = time.perf_counter() - started
        results[label] = (svc, ws, seconds, calls)
        per = dynamodb(calls) / len(imported)
        split = ", ".join(f"{k.split(':')[1]} {n / len(imported):.2f}" for k, n in sorted(calls.items()) if k.startswith("dynamodb:"))
        print(f"import, {label:13s}: {len(imported) / seconds:7.1f} Patients/s  {per:5.2f} DynamoDB calls/Patient  ({split})")

    svc, ws, _, _ = results["probabilistic"]
    world = svc.resolver._get()
    params_item = EntityStore().world_settings(ws)[1] or {}
    print(f"parameters: estimated from {params_item.get('records', 0):,} records, next refresh at {params_item.get('next_refresh_at', '-')} Patients")

    # accuracy of the stored entities (reads below are not counted)
    anchors = {r.record_id: anchor_entity_id(ws, "Patient", r.record_id) for r in imported}
    current = EntityStore().current_entities(ws, list(anchors.values()))
    found: dict[str, list[str]] = defaultdict(list)
    truth: dict[str, list[str]] = defaultdict(list)
    for r in imported:
        found[current[anchors[r.record_id]]].append(r.record_id)
        truth[r.person].append(r.record_id)
    got, want = _pairs(found), _pairs(truth)
    tp = len(got & want)
    precision, recall = tp / max(len(got), 1), tp / max(len(want), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    print(f"entities: {len(found):,} for {len(truth):,} people; pairwise precision {precision:.4f} recall {recall:.4f} F1 {f1:.4f}")

    # API writes at this size: one record at a time
    per_write: list[int] = []
    ops: Counter[str] = Counter()
    world.settings(ws)  # cached per execution environment; not a per-record cost
    for r in extra:
        with counting() as calls:
            svc.upsert(ws, "Patient", r.record_id, r.patient)
        per_write.append(dynamodb(calls))
        ops.update({k.split(":")[1]: n for k, n in calls.items() if k.startswith("dynamodb:")})
    mean = sum(per_write) / len(per_write)
    print(f"API write of one more Patient: {mean:.2f} DynamoDB calls on average (min {min(per_write)}, max {max(per_write)}); "
          + ", ".join(f"{k} {n / len(per_write):.2f}" for k, n in sorted(ops.items())))
    print(f"candidates compared per resolved Patient: {world.stats.candidates / max(1, len(imported) + len(extra)):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--probe", type=int, default=200)
    args = parser.parse_args()
    start_moto()
    for size in args.sizes:
        run(size, args.probe)


if __name__ == "__main__":
    main()
