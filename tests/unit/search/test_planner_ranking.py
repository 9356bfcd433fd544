"""Few-valued tokens (status, gender, …) drive a search only when nothing more selective can."""

from fhir_platform.search.indexing import plan
from fhir_platform.search.query import parse_search

from .search_testdata import WS


def driver(rtype: str, params: dict) -> str:
    return plan(WS, parse_search(rtype, params)).driver.param.name


def test_codes_and_date_windows_drive_before_statuses():
    assert driver("Observation", {"status": "final", "code": "8867-4"}) == "code"
    assert driver("Observation", {"status": "final", "date": "2010"}) == "date"
    assert driver("Patient", {"gender": "female", "birthdate": "1980"}) == "birthdate"
    assert driver("Condition", {"clinical-status": "active", "category": "problem-list-item", "code": "44054006"}) == "code"
    assert driver("Observation", {"status": "final"}) == "status"  # alone, it still drives
    assert driver("Observation", {"status": "final", "date": "ge2020"}) == "status"  # an open range is wider
