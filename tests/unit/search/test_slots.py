"""Slot view filters (pure) and the executor options the views use (``keep``, ``exact_total``),
plus repeated query parameters."""

import pytest
from fhir_platform.search.executor import SearchTooBroad, search_resources
from fhir_platform.search.query import QueryError, SearchQuery, matches, parse_search, parse_search_pairs
from fhir_platform.search.slots import (
    actor_display_matches,
    parse_slot_filters,
    schedule_criterion,
    slot_matches,
    window_criterion,
)

from .search_testdata import WS, obs, write

SLOT = {
    "resourceType": "Slot",
    "id": "s1",
    "schedule": {"reference": "Schedule/sch-1"},
    "status": "free",
    "start": "2025-03-03T09:00:00Z",
    "end": "2025-03-03T09:30:00Z",
    "serviceType": [{"coding": [{"code": "FU", "display": "Follow-up visit"}]}],
    "specialty": [{"coding": [{"code": "394587001", "display": "Psychiatry"}]}],
}


def test_parse_slot_filters_window_and_validation():
    f = parse_slot_filters(date="2025-03-03", days=7, status="Free, busy", provider="Dr. Woloski")
    assert f.window == ("2025-03-03T00:00:00.000Z", "2025-03-10T00:00:00.000Z")
    assert f.status == ("free", "busy") and f.provider == ("dr", "woloski")
    assert parse_slot_filters().window is None and parse_slot_filters(days=30).window is None  # days only with a date
    assert parse_slot_filters(date="2024-12-30", days=3).window == ("2024-12-30T00:00:00.000Z", "2025-01-02T00:00:00.000Z")
    assert parse_slot_filters(facility_id="Location/loc-1").facility_id == "loc-1"
    for kwargs, param in [
        ({"date": "2025-3-3"}, "date"),
        ({"date": "2025-02-30"}, "date"),
        ({"date": "2025-03-03T10:00"}, "date"),
        ({"days": 0}, "days"),
        ({"days": 91}, "days"),
        ({"status": "free!"}, "status"),
        ({"provider": "--"}, "provider"),
        ({"facility_id": "a b"}, "facility_id"),
    ]:
        with pytest.raises(QueryError) as err:
            parse_slot_filters(**kwargs)
        assert err.value.param == param, kwargs


def test_slot_window_is_start_within_the_days():
    c = window_criterion(parse_slot_filters(date="2025-03-03", days=1))
    assert matches([c], SLOT)
    assert not matches([c], {**SLOT, "start": "2025-03-04T00:00:00Z", "end": "2025-03-04T00:30:00Z"})
    assert not matches([c], {**SLOT, "start": "2025-03-02T23:59:59Z"})
    assert matches([schedule_criterion(["x", "sch-1"])], SLOT) and not matches([schedule_criterion(["x"])], SLOT)


def test_slot_residual_filters_are_word_prefixes():
    f = parse_slot_filters
    assert slot_matches(f(status="FREE"), SLOT) and not slot_matches(f(status="busy"), SLOT)
    assert slot_matches(f(specialty="psych"), SLOT) and not slot_matches(f(specialty="cardio"), SLOT)
    assert slot_matches(f(service_type="follow-up"), SLOT) and slot_matches(f(service_type="FU"), SLOT)
    assert not slot_matches(f(service_type="new patient"), SLOT)
    bare = {k: v for k, v in SLOT.items() if k != "specialty"}
    schedule = {"resourceType": "Schedule", "specialty": [{"text": "Psychiatry"}], "actor": []}
    assert not slot_matches(f(specialty="psych"), bare) and slot_matches(f(specialty="psych"), bare, schedule)


def test_actor_display_matching_only_considers_providers():
    schedule = {
        "actor": [
            {"reference": "Location/l1", "display": "Woloski Wing"},
            {"reference": "PractitionerRole/r1", "display": "Dr. Jane Woloski"},
        ]
    }
    assert actor_display_matches(("jane", "wol"), schedule)
    assert not actor_display_matches(("wing",), schedule)
    assert not actor_display_matches(("tom",), schedule)


def test_repeated_parameters_and():
    q = parse_search_pairs("Observation", [("date", "ge2024-01"), ("date", "lt2024-03"), ("status", "final"), ("_count", "5")])
    assert q.count == 5 and [c.name for c in q.criteria] == ["date", "status", "date"]
    inside = obs(1, when="2024-02-10")
    assert matches(q.criteria, inside) and not matches(q.criteria, obs(2, when="2024-03-10"))
    with pytest.raises(QueryError) as err:
        parse_search_pairs("Observation", [("_count", "5"), ("_count", "6")])
    assert err.value.param == "_count"
    assert parse_search_pairs("Observation", []) == parse_search("Observation", {})


def test_keep_and_exact_total(table, monkeypatch):
    for i in range(30):
        write(table, obs(i, patient=f"p{i % 3}"), f"2024-02-01T10:{i:02d}:00Z")
    q = SearchQuery("Observation", parse_search("Observation", {"status": "final"}).criteria, 5, 0)
    page = search_resources(table, WS, q)
    assert page.total is None and page.has_more
    counted = search_resources(table, WS, q, exact_total=True)
    assert counted.total == 30 and [e["resource"]["id"] for e in counted.entries] == [e["resource"]["id"] for e in page.entries]
    seen: list[int] = []

    def only_p1(entries):
        seen.append(len(entries))
        return [e for e in entries if e["resource"]["subject"]["reference"] == "Patient/p1"]

    kept = search_resources(table, WS, q, keep=only_p1)
    assert len(kept.entries) == 5 and kept.has_more and kept.total is None
    assert all(e["resource"]["subject"]["reference"] == "Patient/p1" for e in kept.entries)
    full = search_resources(table, WS, SearchQuery("Observation", q.criteria, 5, 5), keep=only_p1, exact_total=True)
    assert full.total == 10 and len(full.entries) == 5 and not full.has_more
    unfiltered = search_resources(table, WS, SearchQuery("Observation", (), 5, 0), keep=only_p1, exact_total=True)
    assert unfiltered.total == 10
    from fhir_platform.search import executor

    monkeypatch.setattr(executor, "MAX_EXAMINED", 20)
    monkeypatch.setattr(executor, "BATCH_GET_MAX", 10)
    assert len(search_resources(table, WS, q, keep=only_p1).entries) == 5  # the page fits the budget
    with pytest.raises(SearchTooBroad, match="count"):
        search_resources(table, WS, q, keep=only_p1, exact_total=True)  # counting does not
