"""A filtered patient list with many matches, sorted by last_event_at, walks the sort family
instead of reading every match's touch item; pages and totals are the same either way."""

from fhir_platform.search import executor
from fhir_platform.search.executor import search_patients
from fhir_platform.search.query import parse_patient_search

from .search_testdata import WS, obs, write


def names(page) -> list[str]:
    return [r["resource"]["id"] for r in page.rows]


def test_walk_and_in_memory_orders_agree(table, monkeypatch):
    for i in range(24):
        family = "Lee" if i % 3 else "Kim"
        write(table, {"resourceType": "Patient", "id": f"p{i:02d}", "name": [{"family": family, "given": [f"G{i}"]}]},
              f"2024-01-01T00:{i:02d}:00Z")
    write(table, obs(1, patient="p01"), "2024-01-02T00:00:00Z")  # p01 becomes the most recent
    pages = {}
    for threshold in (1000, 4):  # 2 * BATCH_GET_MAX: in memory / walking the sort family
        monkeypatch.setattr(executor, "BATCH_GET_MAX", threshold // 2)
        got = []
        for offset in (0, 5, 10, 15):
            page = search_patients(table, WS, parse_patient_search({"q": "lee", "limit": "5", "offset": str(offset)}))
            assert page.total == 16
            got.append((names(page), page.has_more, page.next_offset))
        asc = search_patients(table, WS, parse_patient_search({"q": "lee", "sort_by": "+last_event_at", "limit": "3"}))
        pages[threshold] = (got, names(asc))
    assert pages[1000] == pages[4]
    got, asc = pages[4]
    assert got[0][0][0] == "p01" and got[0][0][1:] == ["p23", "p22", "p20", "p19"]
    assert got[-1] == (["p02"], False, None) and asc == ["p02", "p04", "p05"]
