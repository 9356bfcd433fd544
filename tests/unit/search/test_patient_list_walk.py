"""Filtered patient lists (``q``/``mrn``/``phone``): the match set is read in full 1 MB pages, so
the DynamoDB calls for a page do not grow with the number of matches; sorted by last_event_at,
many matches walk the sort family instead of reading every match's touch item, and both ways give
the same pages and totals."""

from collections import Counter

from fhir_platform.search import executor
from fhir_platform.search.executor import search_patients
from fhir_platform.search.query import parse_patient_search

from .search_testdata import WS, bulk_load, obs, write


def names(page) -> list[str]:
    return [r["resource"]["id"] for r in page.rows]


def test_walk_and_in_memory_orders_agree(table, monkeypatch):
    for i in range(24):
        family = "Lee" if i % 3 else "Kim"
        write(table, {"resourceType": "Patient", "id": f"p{i:02d}", "name": [{"family": family, "given": [f"G{i}"]}]},
              f"2024-01-01T00:{i:02d}:00Z")
    write(table, obs(1, patient="p01"), "2024-01-02T00:00:00Z")  # p01 becomes the most recent
    pages = {}
    for threshold in (1000, 4):  # touch items read / the sort family walked
        monkeypatch.setattr(executor, "TOUCH_READ_MAX", threshold)
        got = []
        for offset in (0, 5, 10, 15):
            page = search_patients(table, WS, parse_patient_search({"q": "lee", "limit": "5", "offset": str(offset)}))
            assert page.total == 16
            got.append((names(page), page.has_more, page.next_offset))
        asc = search_patients(table, WS, parse_patient_search({"q": "lee", "sort_by": "+last_event_at", "limit": "3"}))
        pages[threshold] = (got, names(asc), Counter(page.calls))
    assert pages[1000][:2] == pages[4][:2]
    got, asc, _ = pages[4]
    assert got[0][0][0] == "p01" and got[0][0][1:] == ["p23", "p22", "p20", "p19"]
    assert got[-1] == (["p02"], False, None) and asc == ["p02", "p04", "p05"]
    # reading 16 touch items is one BatchGetItem more than the page's; walking is Queries instead
    assert pages[1000][2]["BatchGetItem"] == 3 and pages[4][2]["BatchGetItem"] == 2


def _load_patients(table, n: int, family: str, start: int = 0) -> None:
    """``n`` Patients named ``family``, with their index and touch items, stamped ``start``… seconds."""
    patients = [{"resourceType": "Patient", "id": f"{family.lower()}-{i:05d}", "name": [{"family": family, "given": [f"G{i}"]}]}
                for i in range(start, start + n)]
    bulk_load(table, patients, first=start, touch=True)


def _calls(table, params: dict) -> tuple[Counter, int]:
    page = search_patients(table, WS, parse_patient_search(params))
    assert len(page.rows) == int(params.get("limit", 20))
    return Counter(page.calls), page.total


def test_page_cost_does_not_grow_with_the_number_of_matches(table):
    _load_patients(table, 2000, "Other")
    _load_patients(table, 120, "Lee")
    few = {sort: _calls(table, {"q": "lee", "sort_by": sort}) for sort in ("name", "-created_at")}
    _load_patients(table, 1380, "Lee", start=120)  # 12× the matches (~190 per q shard: past a 100-item page)
    many = {sort: _calls(table, {"q": "lee", "sort_by": sort}) for sort in ("name", "-created_at")}
    for sort in few:
        assert few[sort][1] == 120 and many[sort][1] == 1500
        assert few[sort][0] == many[sort][0], sort
        # 8 q shards + identifier + entity partitions, the page's Patients and touch items
        assert many[sort][0] == Counter({"Query": 10, "BatchGetItem": 2})


def test_last_event_sort_cost_is_bounded_past_the_touch_read_limit(table, monkeypatch):
    monkeypatch.setattr(executor, "TOUCH_READ_MAX", 100)
    _load_patients(table, 1500, "Other")
    _load_patients(table, 300, "Lee")
    few, total_few = _calls(table, {"q": "lee", "sort_by": "-last_event_at", "offset": "40"})
    _load_patients(table, 1200, "Lee", start=300)
    many, total_many = _calls(table, {"q": "lee", "sort_by": "-last_event_at", "offset": "40"})
    assert (total_few, total_many) == (300, 1500)
    # the q partitions + one full page per sort-family shard (the walk), the page's items
    assert few == many == Counter({"Query": 18, "BatchGetItem": 2})
    rows = search_patients(table, WS, parse_patient_search({"q": "lee", "sort_by": "-last_event_at", "limit": "3"})).rows
    assert [r["last_event_at"] for r in rows] == sorted((r["last_event_at"] for r in rows), reverse=True)
    assert [r["resource"]["id"] for r in rows] == ["lee-01499", "lee-01498", "lee-01497"]
    # told the workspace is huge, the walk would cost more than the 15 touch reads: it reads those
    search = parse_patient_search({"q": "lee", "sort_by": "-last_event_at", "offset": "40"})
    huge = search_patients(table, WS, search, patient_count=lambda: 50_000_000)
    small = search_patients(table, WS, search, patient_count=lambda: 3000)
    assert Counter(huge.calls) == Counter({"Query": 10, "BatchGetItem": 17})
    assert Counter(small.calls) == many
    assert [r["resource"]["id"] for r in huge.rows] == [r["resource"]["id"] for r in small.rows]
