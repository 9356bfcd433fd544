"""Concurrent writers of one resource over real HTTP (issue 13), with ``bench/concurrency.py``'s
scenarios: 50 PUTs at once with the same ``If-Match`` give exactly one success per version and 412
for every other; 50 at once without ``If-Match`` each become their own version (a write that loses
every internal retry is a 409 the client retries); history keeps exactly the successful writes as
versions 1..N, and ``/fhir/status`` counts exactly what was written."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.concurrency import concurrent_puts, full_history, history_problems, if_match_rounds, patient, unconditional, writer_tag
from tests.e2e.conftest import Client, make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

WRITERS = 50


def test_fifty_if_match_writers_get_one_success_per_version_and_412_for_the_rest(admin: Client) -> None:
    ws, client = make_workspace(admin)
    path = f"/v1/{ws}/fhir/resources/Patient/race-if-match"
    rounds = if_match_rounds(client.base_url, client.key, path, WRITERS, rounds=2)
    for figures in rounds:
        assert figures.statuses == Counter({200: 1, 412: WRITERS - 1}), figures.line()
        assert not figures.problems, figures.line()
    entries = full_history(client.base_url, client.key, path)
    assert [int(e["data"]["meta"]["versionId"]) for e in entries] == [3, 2, 1]
    assert client.get(path).headers["ETag"] == 'W/"3"'
    status = client.get(f"/v1/{ws}/fhir/status").json()
    assert status["event_count"] == 3 and status["resource_type_counts"] == {"Patient": 1} and status["entity_count"] == 1, status


def test_a_stale_if_match_after_the_race_is_still_412(admin: Client) -> None:
    ws, client = make_workspace(admin)
    path = f"/v1/{ws}/fhir/resources/Patient/race-stale"
    assert client.put(path, json=patient("first")).status_code == 201
    answers = concurrent_puts(client.base_url, client.key, path, [patient(f"w{i}") for i in range(10)], 'W/"1"')
    assert sorted(a.status for a in answers) == [200] + [412] * 9
    late = client.put(path, json=patient("late"), headers={"If-Match": 'W/"1"'})
    assert late.status_code == 412, late.text
    assert [writer_tag(e["data"]) for e in full_history(client.base_url, client.key, path)][-1] == "first"


def test_fifty_unconditional_writers_each_become_one_consecutive_version(admin: Client) -> None:
    ws, client = make_workspace(admin)
    path = f"/v1/{ws}/fhir/resources/Patient/race-free"
    figures = unconditional(client.base_url, client.key, path, WRITERS)
    # the client retried any "written concurrently" 409 (the documented retryable answer): every write landed
    assert figures.statuses == Counter({201: 1, 200: WRITERS - 1}), figures.line()
    assert not figures.problems, figures.line()
    entries = full_history(client.base_url, client.key, path)
    assert not history_problems(entries) and len(entries) == WRITERS
    assert sorted(writer_tag(e["data"]) for e in entries) == sorted(f"u{i}" for i in range(WRITERS))
    status = client.get(f"/v1/{ws}/fhir/status").json()
    assert status["event_count"] == WRITERS and status["resource_type_counts"] == {"Patient": 1} and status["entity_count"] == 1, status
