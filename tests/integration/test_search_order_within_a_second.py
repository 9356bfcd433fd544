"""Orders hold within one second: every list ordered by an instant (the patient list by
``created_at`` and ``last_event_at``, FHIR search by ``_lastUpdated``) follows the milliseconds,
not the resource ids, and ``_lastUpdated`` bounds with milliseconds include/exclude exactly.

All writes happen inside one second (the service's clock, 10 ms apart). The ids are chosen so that
id order is not creation order: with second-precision keys every list below came back in id order.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.test_search_http import Api, observation, patient
from tests.support.contract import assert_matches
from tests.support.gateway import Gateway

START = datetime(2025, 1, 1, tzinfo=UTC)
CREATED = ["p-e", "p-b", "p-d", "p-a", "p-c"]  # creation order: .000, .010, .020, .030, .040
TOUCHED = ["p-c", "p-a", "p-e", "p-d", "p-b"]  # then one Observation each, in this order: .050 … .090


def at(ms: int) -> str:
    return (START + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture
def ms_clock() -> Iterator[None]:
    """Every write 10 ms after the previous one, all within 2025-01-01T00:00:00Z's second."""
    from fhir_platform.api import deps

    ticks = iter(range(0, 1000, 10))
    deps.resources().clock = lambda: at(next(ticks))
    yield


@pytest.fixture
def same_second(gateway: Gateway, workspace: dict, ms_clock: Any) -> Api:
    api = Api(gateway, workspace)
    for pid in CREATED:
        api.put(patient(pid, "Sameday", pid[-1].upper()))
    for i, pid in enumerate(TOUCHED):
        api.put(observation(f"o-{i}", pid))
    return api


def patient_ids(api: Api, **query: Any) -> list[str]:
    body = api.ok("patients", limit=100, **query)
    assert_matches("PatientSearchResponse", body)
    by_name = {f"{pid[-1].upper()} Sameday": pid for pid in CREATED}
    return [by_name[p["name"]] for p in body["patients"]]


@pytest.mark.parametrize("q", [None, "sameday"])  # the unfiltered walk and the filtered (q) match set
def test_patient_list_orders_by_created_at_to_the_millisecond(same_second: Api, q: str | None) -> None:
    extra = {"q": q} if q else {}
    assert patient_ids(same_second, sort_by="+created_at", **extra) == CREATED
    assert patient_ids(same_second, sort_by="created_at", **extra) == CREATED
    assert patient_ids(same_second, sort_by="-created_at", **extra) == CREATED[::-1]
    page = same_second.ok("patients", sort_by="+created_at", limit=2, offset=2, **extra)
    assert page["total"] == 5 and page["next_offset"] == 4  # paging walks the same order


@pytest.mark.parametrize("q", [None, "sameday"])
def test_patient_list_orders_by_last_event_at_to_the_millisecond(same_second: Api, q: str | None) -> None:
    extra = {"q": q} if q else {}
    newest = same_second.ok("patients", sort_by="-last_event_at", limit=100, **extra)
    assert patient_ids(same_second, sort_by="-last_event_at", **extra) == TOUCHED[::-1]
    assert patient_ids(same_second, sort_by="+last_event_at", **extra) == TOUCHED
    assert patient_ids(same_second, **extra) == TOUCHED[::-1]  # the default is -last_event_at
    assert [p["last_event_at"] for p in newest["patients"]] == [at(90), at(80), at(70), at(60), at(50)]


def test_patients_view_orders_by_last_event_at_to_the_millisecond(same_second: Api) -> None:
    body = same_second.ok("views/patients")
    assert_matches("FhirPatientListResponse", body)
    assert [r["canonical_id"] for r in body["patients"]] == [f"Patient/{pid}" for pid in TOUCHED[::-1]]
    assert [r["last_event_at"] for r in body["patients"]] == [at(90), at(80), at(70), at(60), at(50)]


def test_fhir_search_orders_by_last_updated_to_the_millisecond(same_second: Api) -> None:
    assert same_second.search("Patient") == CREATED[::-1]  # no criteria: the type list, newest first
    assert same_second.search("Patient", _lastUpdated="ge2025-01-01") == CREATED  # a date range: oldest first
    assert same_second.search("Observation") == [f"o-{i}" for i in range(4, -1, -1)]


BOUNDS = [
    # the third Patient was written at .020: bounds with milliseconds cut between writes of one second
    (f"ge{at(20)}", ["p-d", "p-a", "p-c"]),
    (f"gt{at(20)}", ["p-a", "p-c"]),
    (f"le{at(20)}", ["p-e", "p-b", "p-d"]),
    (f"lt{at(20)}", ["p-e", "p-b"]),
    (f"eq{at(20)}", ["p-d"]),
    (f"ne{at(20)}", ["p-c", "p-a", "p-b", "p-e"]),  # no index range: the type list, newest first
    (f"sa{at(20)}", ["p-a", "p-c"]),
    (f"eb{at(20)}", ["p-e", "p-b"]),
    ("ge2025-01-01T00:00:00.015Z", ["p-d", "p-a", "p-c"]),  # between two writes
    ("ge2025-01-01T03:00:00.020+03:00", ["p-d", "p-a", "p-c"]),  # the same instant in another zone
    ("ge2025-01-01T00:00:00.02Z", ["p-d", "p-a", "p-c"]),  # 10 ms precision: [.020, .030)
    ("gt2025-01-01T00:00:00.02Z", ["p-a", "p-c"]),
    # coarser bounds are ranges too: every write is inside this second, this day, this year
    ("ge2025-01-01T00:00:00Z", CREATED),
    ("eq2025-01-01T00:00:00Z", CREATED),
    ("gt2025-01-01T00:00:00Z", []),
    ("lt2025-01-01T00:00:00Z", []),
    ("le2025-01-01", CREATED),
    ("lt2025-01-01T00:00:01Z", CREATED),
    ("ge2025", CREATED),
    ("gt2024-12-31T23:59:59.999Z", CREATED),
    ("le2024-12-31T23:59:59.999Z", []),
]


def test_last_updated_bounds_at_sub_second_precision(same_second: Api) -> None:
    for bound, expected in BOUNDS:  # one workspace for every case (each costs 10 writes)
        assert same_second.search("Patient", _lastUpdated=bound, _count=100) == expected, bound
