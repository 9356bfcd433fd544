"""Which resource a type-level ``_history`` entry is about (``connector/inbound.py``)."""

from __future__ import annotations

import pytest

from fhir_platform.connector.inbound import _history_id


@pytest.mark.parametrize(
    "entry, expected",
    [
        ({"request": {"method": "DELETE", "url": "Patient/p1"}}, "p1"),
        ({"request": {"method": "DELETE", "url": "Patient/p1/_history/3"}}, "p1"),
        ({"request": {"method": "DELETE", "url": "/Patient/p1?_cascade=delete"}}, "p1"),
        ({"fullUrl": "https://ehr.example.org/fhir/R4/Patient/p-2", "request": {"method": "DELETE"}}, "p-2"),
        ({"resource": {"resourceType": "Patient", "id": "p3"}, "request": {"method": "PUT", "url": "Patient/other"}}, "p3"),
        ({"request": {"method": "DELETE", "url": "Observation/o1"}}, None),  # another type
        ({"request": {"method": "DELETE", "url": "Patient/bad id!"}}, None),  # not a FHIR id
        ({"request": {"method": "POST", "url": "Patient"}}, None),  # a create names no id
        ("not an entry", None),
    ],
)
def test_history_entry_ids(entry: object, expected: str | None) -> None:
    assert _history_id(entry, "Patient") == expected
