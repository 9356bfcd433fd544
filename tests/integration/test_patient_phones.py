"""Patient phones in E.164 (``PatientListItem.phone``, the patients view's rows), and phone search
matching every common way of writing the number — including the E.164 form the lists now show."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_search_http import Api, patient
from tests.support.contract import assert_matches
from tests.support.gateway import Gateway

PHONES = {  # patient id → (telecom value as the EHR wrote it, what the lists show)
    "p-syn": ("555-588-7087", "+15555887087"),  # Synthea: a 555 number, not *valid*, still E.164
    "p-us": ("+1 (617) 253-1000 ext. 12", "+16172531000"),  # the extension is not part of E.164
    "p-uk": ("+44 (0)20 7946 0958", "+442079460958"),
    "p-e164": ("+15550100002", "+15550100002"),
    "p-local": ("555-0199", "555-0199"),  # no area code: not a full number, shown as written
    "p-text": ("ask at the front desk", "ask at the front desk"),
    "p-none": (None, None),
}


@pytest.fixture
def phones(gateway: Gateway, workspace: dict) -> Api:
    api = Api(gateway, workspace)
    for pid, (written, _) in PHONES.items():
        telecom = [{"system": "phone", "value": written}] if written else [{"system": "email", "value": f"{pid}@example.org"}]
        api.put(patient(pid, "Phone", pid.split("-")[1].capitalize(), telecom=telecom))
    return api


def by_name(rows: list[dict]) -> dict[str, Any]:
    return {row["name"]: row["phone"] for row in rows}


def expected() -> dict[str, Any]:
    return {f"{pid.split('-')[1].capitalize()} Phone": shown for pid, (_, shown) in PHONES.items()}


def test_patient_list_shows_phones_in_e164(phones: Api) -> None:
    body = phones.ok("patients", limit=100)
    assert_matches("PatientSearchResponse", body)
    assert by_name(body["patients"]) == expected()


def test_patients_view_shows_phones_in_e164(phones: Api) -> None:
    body = phones.ok("views/patients", limit=100)
    assert_matches("FhirPatientListResponse", body)
    assert by_name(body["patients"]) == expected()
    stored = phones.ok("resources/Patient/p-syn")["data"]["telecom"][0]["value"]
    assert stored == "555-588-7087"  # the resource keeps what the EHR wrote


SEARCHES = [  # (query, patient id)
    ("+15555887087", "p-syn"),  # what the list shows finds the patient
    ("555-588-7087", "p-syn"),
    ("(555) 588-7087", "p-syn"),
    ("555.588.7087", "p-syn"),
    ("5555887087", "p-syn"),
    ("1-555-588-7087", "p-syn"),
    ("+1 555 588 7087", "p-syn"),
    ("+16172531000", "p-us"),
    ("617-253-1000 x12", "p-us"),
    ("+442079460958", "p-uk"),
    ("+44 20 7946 0958", "p-uk"),
    ("011 44 20 7946 0958", "p-uk"),
    ("(555) 010-0002", "p-e164"),
    ("555-0199", "p-local"),
]


def test_phone_search_matches_every_format_and_the_e164_form(phones: Api) -> None:
    for query, pid in SEARCHES:  # one workspace for every case
        listed = phones.ok("patients", phone=query)
        assert [p["phone"] for p in listed["patients"]] == [PHONES[pid][1]] and listed["total"] == 1, query
        assert phones.search("Patient", phone=query) == [pid], query
        if query.startswith("+"):  # q takes phone numbers too
            assert [p["phone"] for p in phones.ok("patients", q=query)["patients"]] == [PHONES[pid][1]], query
