"""Streaming splitter: formats, chunk bounds, parity with the sync path, determinism, failures,
bounded memory on large inputs, and the worker-side chunk reader."""

from __future__ import annotations

import collections
import gzip
import io
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from fhir_platform.imports import ChunkMessage, ImportIssue, ImportSummary, PreparedEntry, write_all, decode_locations, encode_locations, prepare_bundle, prepare_chunk
from fhir_platform.imports.common import iter_references
from fhir_platform.imports.splitter import SplitResult, split_import_object

from .conftest import HL7, NDJSON_PATHLING, NDJSON_SMART, SYNTHEA, load, synthea_patient_bundles

FLETCHER = SYNTHEA / "smart-on-fhir_generated-sample-data" / "Fletcher_Hyatt_fe0562b5-f517-4951-8366-32fdab088930.json"


class Sink:
    """Collects emitted chunks; counts how often the object was opened."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.opens = 0
        self.chunks: list[tuple[int, bytes, int, str]] = []

    def open(self) -> io.BytesIO:
        self.opens += 1
        return io.BytesIO(self.data)

    def emit(self, index: int, data: bytes, count: int, locations: str) -> None:
        self.chunks.append((index, data, count, locations))

    def split(self, key: str = "", **kw: Any) -> SplitResult:
        return split_import_object(self.open, self.emit, key=key, **kw)

    def resources(self) -> list[dict[str, Any]]:
        return [json.loads(l) for _, data, _, _ in self.chunks for l in data.splitlines()]

    def locations(self) -> list[str]:
        return [loc for *_, spec in self.chunks for loc in decode_locations(spec)]


def test_locations_encoding_round_trip() -> None:
    assert encode_locations("entry", [0, 1, 2, 5, 7, 8]) == "entry:0-2,5,7-8"
    assert decode_locations("entry:0-2,5,7-8") == ["entry[0]", "entry[1]", "entry[2]", "entry[5]", "entry[7]", "entry[8]"]
    assert decode_locations(encode_locations("line", [3])) == ["line 3"]
    assert encode_locations("line", []) == "line:"


def test_chunk_message_round_trip_and_size() -> None:
    msg = ChunkMessage("ws", "job", 3, "bucket", "import-chunks/ws/job/000003.ndjson", 200,
                       encode_locations("entry", range(0, 400, 2)), options={"dedup": True})
    body = msg.to_json()
    assert len(body.encode()) < 256 * 1024
    assert ChunkMessage.from_json(body) == msg
    assert msg.result_id == "job#000003"
    with pytest.raises(ValueError):
        ChunkMessage.from_json(json.dumps({**json.loads(body), "v": 99}))


# ---- NDJSON ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(NDJSON_SMART.glob("[A-Z]*.ndjson")) + sorted(NDJSON_PATHLING.glob("*.ndjson")),
                         ids=lambda p: p.parent.name[:8] + "/" + p.name)
def test_ndjson_fixture_split_counts(path: Path) -> None:
    data = path.read_bytes()
    lines = [l for l in data.split(b"\n") if l.strip()]
    sink = Sink(data)
    r = sink.split(key=f"imports/ws/{path.name}")
    assert r.format == "ndjson" and r.dispatch_allowed and sink.opens == 1
    assert r.resources_seen == r.resources_emitted == len(lines) == sum(c for _, _, c, _ in sink.chunks)
    assert r.chunk_count == len(sink.chunks) == -(-len(lines) // 200)
    assert all(c <= 200 for _, _, c, _ in sink.chunks)
    assert [i for i, *_ in sink.chunks] == list(range(r.chunk_count))
    assert sink.resources() == [json.loads(l) for l in lines]  # ids present: passed through as is
    assert sink.locations() == [f"line {n}" for n in range(1, len(lines) + 1)]


def test_ndjson_errors_and_ids_while_splitting() -> None:
    body = b"\n".join([
        b'{"resourceType":"Patient","id":"a"}',
        b"not json",
        b"",
        b'{"resourceType":"Parameters","id":"p"}',
        b'{"resourceType":"Patient","gender":"male"}',
    ])
    sink = Sink(body)
    r = sink.split(key="x.ndjson", policy="skip")
    assert r.resources_seen == 4 and r.resources_emitted == 2
    assert r.summary.error_count == 1 and r.summary.errors[0].startswith("line 2: invalid JSON")
    assert r.summary.unsupported_resources[0]["location"] == "line 4"
    got = sink.resources()
    assert got[0] == {"resourceType": "Patient", "id": "a"} and got[1]["id"]  # content-derived id
    assert sink.locations() == ["line 1", "line 5"]
    again = Sink(body)
    again.split(key="x.ndjson", policy="skip")
    assert again.chunks == sink.chunks  # deterministic: a retried splitter writes identical chunks


def test_chunk_byte_bound() -> None:
    path = NDJSON_SMART / "DocumentReference.000.ndjson"
    sink = Sink(path.read_bytes())
    r = sink.split(key="d.ndjson", chunk_max_bytes=64 * 1024)
    longest = max(len(l) for l in path.read_bytes().split(b"\n")) + 1
    assert r.chunk_count > 1215 // 200 + 1
    assert all(len(data) <= 64 * 1024 or count == 1 for _, data, count, _ in sink.chunks)
    assert longest < 64 * 1024
    assert r.resources_emitted == 1215


def test_format_detection_and_gzip() -> None:
    nd = (NDJSON_SMART / "Patient.000.ndjson").read_bytes()
    pretty = FLETCHER.read_bytes()
    minified = json.dumps(load(HL7 / "Bundle-lipids.json")).encode()
    for data, fmt, n in [(nd, "ndjson", 13), (pretty, "bundle", 1111), (minified, "bundle", 5)]:
        for blob in (data, gzip.compress(data)):
            sink = Sink(blob)
            r = sink.split(key="upload")  # no suffix: sniffed
            assert (r.format, r.resources_emitted) == (fmt, n)
            assert sink.opens == (1 if fmt == "ndjson" else 2)
    long_first_line = json.dumps({"resourceType": "Patient", "id": "p", "text": {"status": "generated",
                                  "div": "<div>" + "y" * 100_000 + "</div>"}}).encode() + b"\n" + nd
    r = Sink(long_first_line).split(key="upload.bin")
    assert (r.format, r.resources_emitted) == ("ndjson", 14)
    assert Sink(nd).split(key="imports/ws/export.json").format == "ndjson"  # misnamed NDJSON still works


# ---- Bundles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [FLETCHER, *synthea_patient_bundles()[:3],
                                  HL7 / "Bundle-bundle-references.json", HL7 / "Bundle-bundle-transaction.json",
                                  HL7 / "Bundle-3a0707d3-549e-4467-b8b8-5a2ab3800efe.json"], ids=lambda p: p.name[:24])
def test_bundle_split_matches_the_synchronous_path(path: Path) -> None:
    data = path.read_bytes()
    sink = Sink(data)
    r = sink.split(key="b.json", validate=False)
    sync = prepare_bundle(json.loads(data), validate=False)
    assert sink.opens == 2
    assert r.bundle_type == sync.bundle_type
    assert sink.resources() == [e.data for e in sync.entries]
    assert sink.locations() == [e.location for e in sync.entries]
    assert r.resources_seen == len(json.loads(data)["entry"])
    assert r.resources_emitted + len(sync.issues) + len(sync.superseded) == r.resources_seen
    assert r.summary.events_skipped == len(sync.superseded)
    assert [i["location"] for i in r.summary.unsupported_resources] == [i.location for i in sync.unsupported]
    worker = [x for _, data, _, spec in sink.chunks for x in prepare_chunk(data, spec, validate=False)]
    assert [(w.location, w.key, w.conditional_references) for w in worker] == [
        (e.location, e.key, e.conditional_references) for e in sync.entries]


def test_synthea_transaction_split_is_validated_and_resolved() -> None:
    raw = load(FLETCHER)
    sink = Sink(FLETCHER.read_bytes())
    r = sink.split(key="imports/ws/fletcher.json")
    assert r.validated and r.dispatch_allowed and r.bundle_type == "transaction"
    assert r.resources_emitted == r.resources_seen == 1111 and r.chunk_count == 6
    got = sink.resources()
    assert collections.Counter(x["resourceType"] for x in got) == collections.Counter(
        e["resource"]["resourceType"] for e in raw["entry"])
    keys = {f"{x['resourceType']}/{x['id']}" for x in got}
    for res in got:
        for holder, _ in iter_references(res):
            ref = holder["reference"]
            assert ref.startswith("#") or ref in keys


def test_transaction_with_invalid_entry_is_not_dispatched() -> None:
    raw = load(FLETCHER)
    idx = 700
    raw["entry"][idx]["resource"]["birthDate" if raw["entry"][idx]["resource"]["resourceType"] == "Patient" else "meta"] = "bad"
    sink = Sink(json.dumps(raw).encode())
    r = sink.split(key="t.json")
    assert r.transaction_failed and not r.dispatch_allowed
    assert r.summary.error_count == 1 and r.summary.errors[0].startswith(f"entry[{idx}] ")
    assert r.chunk_count <= idx // 200  # emission stopped at the first error
    raw["type"] = "batch"  # the same entry in a batch: the rest goes through, validated by workers
    sink = Sink(json.dumps(raw).encode())
    r = sink.split(key="t.json")
    assert r.dispatch_allowed and not r.validated and r.resources_emitted == 1111
    items = [x for _, data, _, spec in sink.chunks for x in prepare_chunk(data, spec)]
    bad = [x for x in items if isinstance(x, ImportIssue)]
    assert [b.location for b in bad] == [f"entry[{idx}]"]  # the worker names the original position
    assert len([x for x in items if isinstance(x, PreparedEntry)]) == 1110
    # the job = splitter summary + one summary per chunk: every entry counted exactly once
    job = ImportSummary().merge(r.summary)
    for _, data, _, spec in sink.chunks:
        job.merge(write_all(prepare_chunk(data, spec), ImportSummary(), lambda e: ("created", None)))
    assert (job.resources_received, job.events_created, job.error_count) == (1111, 1110, 1)


@pytest.mark.parametrize("data,message", [
    (b'{"resourceType":"Bundle","type":"transaction","entry":[{"resource":', "not valid JSON"),
    (b'{"resourceType":"Bundle","type":"document","entry":[]}', "cannot be imported"),
    (b'{"resourceType":"Bundle","type":"batch","entry":[]}\n{"resourceType":"Patient"}', "not valid JSON"),
    (b'{"type":"batch","entry":[],"resourceType":"Parameters"}', "resourceType must be 'Bundle'"),
    (b'{"resourceType":"Bundle","type":"batch","entry":{"a":1}}', "must be an array"),
])
def test_broken_bundles_are_fatal_without_chunks(data: bytes, message: str) -> None:
    sink = Sink(data)
    r = sink.split(key="broken.json")
    assert r.fatal_error and message in r.fatal_error and not r.dispatch_allowed
    assert sink.chunks == []


def test_bundle_type_after_entries_still_works() -> None:
    raw = load(HL7 / "Bundle-bundle-references.json")
    reordered = {"resourceType": "Bundle", "entry": raw["entry"], "type": raw["type"]}
    a, b = Sink(json.dumps(reordered).encode()), Sink(json.dumps(raw).encode())
    a.split(key="a.json")
    b.split(key="b.json")
    assert a.chunks == b.chunks and a.chunks


def test_redelivered_chunk_prepares_identically() -> None:
    sink = Sink(FLETCHER.read_bytes())
    sink.split(key="f.json", validate=False)
    _, data, count, spec = sink.chunks[2]
    first = list(prepare_chunk(data, spec, validate=False))
    second = list(prepare_chunk(data, spec, validate=False))
    assert [(e.location, e.key, e.data) for e in first] == [(e.location, e.key, e.data) for e in second]
    assert first[0].location == "entry[400]" and len(first) == count == 200


# ---- bounded memory ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_ndjson(tmp_path_factory, gen) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("big") / "gen50.ndjson"
    stats = gen.generate(str(path), seed=11, target_bytes=50 * 1024 * 1024)
    return path, stats


def test_split_50mb_ndjson_with_bounded_memory(big_ndjson) -> None:
    path, stats = big_ndjson
    assert path.stat().st_size >= 50 * 1024 * 1024
    counts = {"chunks": 0, "resources": 0, "max_bytes": 0}

    def emit(index: int, data: bytes, count: int, locations: str) -> None:
        assert index == counts["chunks"]
        counts["chunks"] += 1
        counts["resources"] += count
        counts["max_bytes"] = max(counts["max_bytes"], len(data))

    tracemalloc.start()
    try:
        r = split_import_object(lambda: open(path, "rb"), emit, key="imports/ws/gen50.ndjson")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.resources_seen == r.resources_emitted == counts["resources"] == stats["resources"]
    assert r.chunk_count == counts["chunks"] == -(-stats["resources"] // 200)
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB while splitting a 50 MB file"


_RSS_PROBE = textwrap.dedent("""
    import gc, json, os, resource, sys
    from fhir_platform.imports.splitter import split_import_object
    path, out = sys.argv[1], sys.argv[2]
    tiny = json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0", "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}]}).encode()
    import io
    split_import_object(lambda: io.BytesIO(tiny), lambda *a: None, key="w.json")  # warm up imports
    gc.collect()
    def status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    def reset_peak():  # VmHWM := VmRSS (Linux); ru_maxrss would carry the parent's peak over exec
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return status("VmRSS")
    base = reset_peak()
    def emit(i, data, count, locations):
        with open(os.path.join(out, f"{i:06d}.ndjson"), "wb") as f:
            f.write(data)
        with open(os.path.join(out, f"{i:06d}.loc"), "w") as f:
            f.write(locations)
    r = split_import_object(lambda: open(path, "rb"), emit, key="imports/ws/combined.json")
    split_peak = status("VmHWM") - base
    gc.collect()
    base = reset_peak()
    with open(path, "rb") as f:
        doc = json.load(f)
    load_peak = status("VmHWM") - base
    print(json.dumps({"split_peak": split_peak, "load_peak": load_peak, "seen": r.resources_seen,
                      "emitted": r.resources_emitted, "chunks": r.chunk_count, "validated": r.validated,
                      "dispatch": r.dispatch_allowed, "errors": r.summary.errors[:3]}))
""")


def test_split_20mb_bundle_with_bounded_memory(tmp_path: Path) -> None:
    # a ~20 MB transaction made of the largest real Synthea patient bundles (pretty-printed, as shipped)
    picked, size, entries = [], 0, []
    for p in sorted(synthea_patient_bundles(), key=lambda p: p.stat().st_size, reverse=True):
        if size >= 19 * 1024 * 1024:
            break
        picked.append(p)
        size += p.stat().st_size
        entries.extend(load(p)["entry"])
    combined = tmp_path / "combined.json"
    combined.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}, indent=4))
    assert combined.stat().st_size > 18 * 1024 * 1024
    out = tmp_path / "chunks"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(combined), str(out)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONHASHSEED": "0"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["dispatch"] and res["validated"] and res["errors"] == []
    assert res["seen"] == res["emitted"] == len(entries)
    assert res["chunks"] == len(list(out.glob("*.ndjson"))) == -(-len(entries) // 200)
    # streaming: far below what loading the document takes, and small in absolute terms
    assert res["split_peak"] < 32 * 1024 * 1024, res
    assert res["load_peak"] > 2 * res["split_peak"], res

    # the chunks hold exactly the bundle's resources, references rewritten to entries' Type/id
    got = [json.loads(l) for p in sorted(out.glob("*.ndjson")) for l in p.read_bytes().splitlines()]
    assert collections.Counter(r["resourceType"] for r in got) == collections.Counter(
        e["resource"]["resourceType"] for e in entries)
    keys = {f"{r['resourceType']}/{r['id']}" for r in got}
    for r in got:
        for holder, _ in iter_references(r):
            ref = holder["reference"]
            assert ref.startswith("#") or ref in keys or "?identifier=" in ref, ref
    locs = [l for p in sorted(out.glob("*.loc")) for l in decode_locations(p.read_text())]
    assert locs == [f"entry[{i}]" for i in range(len(entries))]
