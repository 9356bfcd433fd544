"""NDJSON reading: line numbers, errors per line, caps, bounded line length, real files."""

from __future__ import annotations

import io
import json
import random

import pytest

from fhir_platform.errors import InvalidInput
from fhir_platform.imports import ImportIssue, ImportSummary, LineCapExceeded, PreparedEntry, check_line_cap, prepare_ndjson
from fhir_platform.imports.ndjson import LineError, iter_lines, iter_ndjson

from .conftest import NDJSON_PATHLING, NDJSON_SMART

PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}


def line(obj) -> str:
    return json.dumps(obj)


def test_line_numbers_blank_lines_crlf_and_bom() -> None:
    body = "\ufeff" + line(PATIENT) + "\r\n\r\n   \n" + line({**PATIENT, "id": "p2"}) + "\n\n" + line({**PATIENT, "id": "p3"})
    got = list(iter_ndjson(body.encode()))
    assert [(n, d["id"]) for n, d in got] == [(1, "p1"), (4, "p2"), (6, "p3")]


def test_per_line_errors_carry_line_numbers() -> None:
    body = "\n".join([
        line(PATIENT),                                             # 1 ok
        '{"resourceType": "Patient", "id": ',                      # 2 truncated JSON
        "[1, 2]",                                                  # 3 not an object
        line({"resourceType": "Patient", "id": "p4", "birthDate": "yesterday"}),  # 4 invalid FHIR
        line({"resourceType": "Bundle", "id": "b", "type": "collection"}),        # 5 unsupported
        line({"id": "x"}),                                         # 6 no resourceType
        line({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
              "subject": {"reference": "urn:uuid:6c1d2e3f-0000-4000-8000-000000000000"}}),  # 7 unresolved
        "",                                                        # 8 blank
        line({"resourceType": "Patient", "id": "bad id!"}),        # 9 bad id
        line({"resourceType": "Patient", "gender": "male"}),       # 10 ok, id assigned
        b"\xff\xfe{}".decode("latin-1"),                           # 11 (latin-1 text → bytes below)
    ])
    data = body.encode("utf-8").replace("ÿþ{}".encode("utf-8"), b"\xff\xfe{}")
    items = list(prepare_ndjson(data))
    by_loc = {i.location: i for i in items}
    assert list(by_loc) == [f"line {n}" for n in (1, 2, 3, 4, 5, 6, 7, 9, 10, 11)]
    assert isinstance(by_loc["line 1"], PreparedEntry)
    assert by_loc["line 2"].reason.startswith("invalid JSON")
    assert "object" in by_loc["line 3"].reason
    assert by_loc["line 4"].kind == "error" and "birthDate" in by_loc["line 4"].reason
    assert "yesterday" not in by_loc["line 4"].reason
    assert by_loc["line 5"].kind == "unsupported" and by_loc["line 5"].resource_type == "Bundle"
    assert by_loc["line 6"].kind == "unsupported" and by_loc["line 6"].reason == "resourceType is missing"
    assert by_loc["line 7"].kind == "error" and "subject.reference" in by_loc["line 7"].reason
    assert "id must be" in by_loc["line 9"].reason
    assert isinstance(by_loc["line 10"], PreparedEntry) and by_loc["line 10"].data["id"] == by_loc["line 10"].resource_id
    assert isinstance(by_loc["line 11"], ImportIssue)

    s = ImportSummary("error")
    s.add_issues(i for i in items if isinstance(i, ImportIssue))
    assert s.error_count == 8 and s.unsupported_resource_count == 2
    assert [e.split(" ")[1].rstrip(":") for e in s.errors] == ["2", "3", "4", "5", "6", "7", "9", "11"]


def test_content_ids_are_deterministic_across_runs() -> None:
    body = (line({"resourceType": "Patient", "gender": "male"}) + "\n") * 3
    a = [e.resource_id for e in prepare_ndjson(body)]
    b = [e.resource_id for e in prepare_ndjson(body)]
    assert a == b and len(set(a)) == 3


def test_overlong_lines_are_reported_without_being_held() -> None:
    big = line({**PATIENT, "id": "big", "text": {"status": "generated", "div": "<div>" + "x" * 5000 + "</div>"}})
    body = (line(PATIENT) + "\n" + big + "\n" + line({**PATIENT, "id": "p3"}) + "\n").encode()
    got = list(iter_ndjson(io.BytesIO(body), max_line_bytes=1000, block_size=64))
    assert got[0][0] == 1 and got[2] == (3, {**PATIENT, "id": "p3"})
    assert isinstance(got[1][1], LineError) and got[1][0] == 2 and "longer than 1000" in got[1][1].reason
    # an overlong last line without a newline is reported as well
    tail = list(iter_ndjson(io.BytesIO(body + big.encode()), max_line_bytes=1000, block_size=64))
    assert tail[-1][0] == 4 and isinstance(tail[-1][1], LineError)


@pytest.mark.parametrize("block_size", [1, 2, 7, 64, 4096])
def test_iter_lines_matches_split_for_any_block_size(block_size: int) -> None:
    rng = random.Random(block_size)
    lines = ["".join(rng.choice("ab{}\"é\u2028 ") for _ in range(rng.randint(0, 40))) for _ in range(200)]
    data = "\n".join(lines).encode("utf-8")
    got = [l.decode("utf-8") for _, l in iter_lines(io.BytesIO(data), block_size=block_size)]
    assert got == data.decode("utf-8").split("\n")  # \u2028 inside a line does not split it


def test_text_streams_are_refused() -> None:
    with pytest.raises(TypeError):
        list(iter_lines(io.StringIO("{}")))


def test_line_cap() -> None:
    body = "\n".join(line({**PATIENT, "id": f"p{i}"}) for i in range(5)) + "\n\n\n"
    assert check_line_cap(body, cap=5) == 5  # blank lines do not count
    with pytest.raises(LineCapExceeded) as exc:
        check_line_cap(body + line(PATIENT), cap=5)
    assert isinstance(exc.value, InvalidInput) and "line cap" in exc.value.message


def test_default_line_cap_is_10000() -> None:
    body = b'{"resourceType":"Patient"}\n' * 10_000
    assert check_line_cap(body) == 10_000
    with pytest.raises(LineCapExceeded):
        check_line_cap(body + b"{}\n")


# ---- real files -------------------------------------------------------------------------------

SMART_COUNTS = {
    "AllergyIntolerance.000.ndjson": 11, "Condition.000.ndjson": 555, "Device.000.ndjson": 16,
    "DocumentReference.000.ndjson": 1215, "Encounter.000.ndjson": 1215, "Immunization.000.ndjson": 161,
    "Location.000.ndjson": 44, "MedicationRequest.000.ndjson": 1745, "Organization.000.ndjson": 43,
    "Patient.000.ndjson": 13, "Practitioner.000.ndjson": 43, "PractitionerRole.000.ndjson": 43,
    "Procedure.000.ndjson": 2056,
}


def test_smart_bulk_files_line_counts_and_types() -> None:
    for name, count in SMART_COUNTS.items():
        with open(NDJSON_SMART / name, "rb") as f:
            items = list(prepare_ndjson(f, validate=False))
        assert len(items) == count, name
        assert all(isinstance(i, PreparedEntry) for i in items), name
        assert {i.resource_type for i in items} == {name.split(".")[0]}
        assert [i.location for i in items] == [f"line {n}" for n in range(1, count + 1)]


def test_pathling_files_validate_cleanly() -> None:
    total = 0
    for path in sorted(NDJSON_PATHLING.glob("*.ndjson")):
        with open(path, "rb") as f:
            items = list(prepare_ndjson(f))
        issues = [i for i in items if isinstance(i, ImportIssue)]
        assert issues == [], (path.name, [i.message() for i in issues[:3]])
        total += len(items)
    assert total == 2789  # the README's per-file line counts summed


def test_bulk_export_log_is_not_fhir() -> None:
    items = list(prepare_ndjson((NDJSON_SMART / "log.ndjson").read_bytes()))
    assert len(items) == 4
    assert all(isinstance(i, ImportIssue) and i.kind == "unsupported" for i in items)
