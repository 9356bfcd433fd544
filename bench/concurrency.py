"""Concurrent writers of one resource over real HTTP (issue 13): what they get and what history keeps.

Two scenarios against a local stack (started here unless ``--base-url``/``--key`` name one):

- **If-Match**: ``--rounds`` rounds; in each, ``--writers`` PUTs of one Patient, all sent at once
  (a barrier), each with different content and the same ``If-Match`` (the current version). Exactly
  one may win a version; every other must get 412.
- **No If-Match**: ``--writers`` PUTs at once, each with different content. Every write must land
  as its own version (the platform retries a lost race internally; a write that loses every
  internal retry is a 409 the client retries).

A gateway 503 (no execution environment free within 30 s: the request never reached the function)
and the platform's 409 "being written concurrently" are retried by the client, as a client should
(``Retry-After`` when given); the figures count them. Then the resource's whole history is read:
versions must be 1..N with no gap or duplicate, each version's content distinct, and the set of
versions must be exactly the successful writes.

    .venv/bin/python bench/concurrency.py [--writers 50] [--rounds 3]
    .venv/bin/python bench/concurrency.py --base-url http://127.0.0.1:3000 --key <admin key>
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench is a script folder, run from anywhere

REQUEST_TIMEOUT = 120
RETRIED = (409, 503)  # a 409 here is only the "written concurrently, retry" one (checked below)
MAX_CLIENT_RETRIES = 20


@dataclass
class Answer:
    """One writer's final answer, after the client's retries of 503/409."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    retries: Counter = field(default_factory=Counter)  # status -> times retried


def _send(base_url: str, method: str, path: str, headers: dict[str, str], body: bytes | None) -> tuple[int, dict[str, Any], dict[str, str]]:
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else {}), {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def _writer(base_url: str, key: str, path: str, body: dict[str, Any], if_match: str | None, barrier: threading.Barrier) -> Answer:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if if_match:
        headers["If-Match"] = if_match
    payload = json.dumps(body).encode()
    retries: Counter = Counter()
    barrier.wait(timeout=60)
    while True:
        status, answer, answer_headers = _send(base_url, "PUT", path, headers, payload)
        if status in RETRIED and retries.total() < MAX_CLIENT_RETRIES:
            if status == 409 and "concurrently" not in answer.get("message", ""):
                return Answer(status, answer, answer_headers, retries)  # some other conflict: not retried
            retries[status] += 1
            time.sleep(min(float(answer_headers.get("retry-after", "0.2")), 2.0))
            continue
        return Answer(status, answer, answer_headers, retries)


def concurrent_puts(base_url: str, key: str, path: str, bodies: list[dict[str, Any]], if_match: str | None) -> list[Answer]:
    """Every body PUT to ``path`` at once (one thread and connection each, released together)."""
    barrier = threading.Barrier(len(bodies))
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        futures = [pool.submit(_writer, base_url, key, path, body, if_match, barrier) for body in bodies]
        return [f.result(timeout=REQUEST_TIMEOUT * (MAX_CLIENT_RETRIES + 1)) for f in futures]


def patient(tag: str) -> dict[str, Any]:
    """A Patient whose content says which writer sent it (``name[0].given[0]``)."""
    return {"data": {"resourceType": "Patient", "name": [{"family": "Concurrent", "given": [tag]}], "gender": "unknown"}}


def writer_tag(data: dict[str, Any]) -> str:
    return data["name"][0]["given"][0]


def get(base_url: str, key: str, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    return _send(base_url, "GET", path, {"Authorization": f"Bearer {key}"}, None)


def full_history(base_url: str, key: str, path: str) -> list[dict[str, Any]]:
    """Every history entry of the resource at ``path``, newest first (pages of 50)."""
    entries: list[dict[str, Any]] = []
    offset = 0
    while True:
        status, page, _ = get(base_url, key, f"{path}/history?limit=50&offset={offset}")
        assert status == 200, page
        entries += page["entries"]
        if not page["has_more"]:
            return entries
        offset = page["next_offset"]


def history_problems(entries: list[dict[str, Any]]) -> list[str]:
    """What is wrong with a history: gaps, duplicates, a version whose content repeats another's."""
    versions = [int(e["data"]["meta"]["versionId"]) for e in entries]
    problems = []
    if sorted(versions) != list(range(1, len(versions) + 1)):
        problems.append(f"versions are not 1..{len(versions)} exactly once: {sorted(Counter(versions).items())}")
    if versions != sorted(versions, reverse=True):
        problems.append("history is not newest first")
    contents = Counter(json.dumps({k: v for k, v in e["data"].items() if k != "meta"}, sort_keys=True) for e in entries)
    if any(n > 1 for n in contents.values()):
        problems.append(f"{sum(n - 1 for n in contents.values() if n > 1)} versions repeat another version's content")
    return problems


@dataclass
class Figures:
    scenario: str
    writers: int
    statuses: Counter
    retries: Counter
    versions: int
    seconds: float
    problems: list[str]

    def line(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.statuses.items()))
        retries = ", ".join(f"{s}: {n}" for s, n in sorted(self.retries.items())) or "none"
        return (
            f"{self.scenario:<34} writers {self.writers:>4}  answers {{{statuses}}}  client retries {{{retries}}}  "
            f"versions {self.versions:>3}  {self.seconds:6.2f} s  {'OK' if not self.problems else 'FAIL: ' + '; '.join(self.problems)}"
        )


def if_match_rounds(base_url: str, key: str, path: str, writers: int, rounds: int) -> list[Figures]:
    """Create the resource, then ``rounds`` rounds of ``writers`` PUTs with the current version."""
    status, created, _ = _send(base_url, "PUT", path, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, json.dumps(patient("v1")).encode())
    assert status == 201, (status, created)
    winners = {1: "v1"}
    figures = []
    for round_ in range(rounds):
        version = round_ + 1
        started = time.monotonic()
        answers = concurrent_puts(base_url, key, path, [patient(f"r{round_}w{i}") for i in range(writers)], f'W/"{version}"')
        seconds = time.monotonic() - started
        statuses = Counter(a.status for a in answers)
        problems = []
        won = [a for a in answers if a.status == 200]
        if len(won) != 1 or statuses[412] != writers - 1:
            problems.append(f"expected one 200 and {writers - 1} x 412")
        for a in won:
            if a.headers.get("etag") != f'W/"{version + 1}"':
                problems.append(f"winner's ETag {a.headers.get('etag')} is not version {version + 1}")
            winners[version + 1] = writer_tag(a.body["data"])
        entries = full_history(base_url, key, path)
        problems += history_problems(entries)
        kept = {int(e["data"]["meta"]["versionId"]): writer_tag(e["data"]) for e in entries}
        if kept != winners:
            problems.append("history is not exactly the winning writes")
        retries = sum((a.retries for a in answers), Counter())
        figures.append(Figures(f"If-Match W/\"{version}\" (round {round_ + 1})", writers, statuses, retries, len(entries), seconds, problems))
    return figures


def unconditional(base_url: str, key: str, path: str, writers: int) -> Figures:
    """``writers`` PUTs at once, no If-Match, on a new id: each must become its own version."""
    started = time.monotonic()
    answers = concurrent_puts(base_url, key, path, [patient(f"u{i}") for i in range(writers)], None)
    seconds = time.monotonic() - started
    statuses = Counter(a.status for a in answers)
    problems = []
    if statuses[201] != 1 or statuses[200] != writers - 1:
        problems.append(f"expected one 201 and {writers - 1} x 200")
    entries = full_history(base_url, key, path)
    problems += history_problems(entries)
    succeeded = {f"u{i}" for i, a in enumerate(answers) if a.status in (200, 201)}
    versions_of = {writer_tag(e["data"]): int(e["data"]["meta"]["versionId"]) for e in entries}
    if set(versions_of) != succeeded:
        problems.append("history is not exactly one version per successful write")
    reported = {a.headers.get("etag") for a in answers if a.status in (200, 201)}
    if reported != {f'W/"{v}"' for v in versions_of.values()}:
        problems.append("the writers' ETags are not the versions history keeps")
    retries = sum((a.retries for a in answers), Counter())
    return Figures("no If-Match (new resource)", writers, statuses, retries, len(entries), seconds, problems)


def status_counts(base_url: str, key: str, ws: str) -> dict[str, Any]:
    status, body, _ = get(base_url, key, f"/v1/{ws}/fhir/status")
    assert status == 200, body
    return body


def make_workspace(base_url: str, admin_key: str) -> tuple[str, str]:
    headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"}
    body = {"name": "Concurrency", "slug": f"conc-{uuid.uuid4().hex[:10]}", "ehr_type": "athenahealth", "fhir_store_url": "https://ehr.example.org/fhir"}
    status, ws, _ = _send(base_url, "POST", "/v1/workspaces", headers, json.dumps(body).encode())
    assert status == 201, ws
    status, key, _ = _send(base_url, "POST", f"/v1/{ws['id']}/api-keys", headers, json.dumps({"name": "bench", "duration_days": 1, "role": "admin"}).encode())
    assert status == 201, key
    return ws["id"], key["api_key"]


def run(base_url: str, admin_key: str, writers: int, rounds: int) -> tuple[list[Figures], dict[str, Any]]:
    ws, key = make_workspace(base_url, admin_key)
    figures = if_match_rounds(base_url, key, f"/v1/{ws}/fhir/resources/Patient/conc-if-match", writers, rounds)
    figures.append(unconditional(base_url, key, f"/v1/{ws}/fhir/resources/Patient/conc-free", writers))
    return figures, status_counts(base_url, key, ws)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base-url", help="a running local stack (default: start one)")
    parser.add_argument("--key", help="its admin key")
    args = parser.parse_args()
    if args.base_url:
        figures, status = run(args.base_url, args.key, args.writers, args.rounds)
    else:
        from local_stack.testing import running_local_stack

        with running_local_stack(admin_key="fpadm_bench_" + uuid.uuid4().hex, demo=False, timeout=120) as stack:
            figures, status = run(stack.base_url, stack.admin_key, args.writers, args.rounds)
    print(f"== {args.writers} concurrent PUTs of one Patient over HTTP (local stack) ==")
    for figure in figures:
        print(figure.line())
    expected_events = sum(f.versions for f in figures[-2:])  # last If-Match round + the unconditional resource
    counts_ok = status["event_count"] == expected_events and status.get("resource_type_counts") == {"Patient": 2} and status["entity_count"] == 2
    print(
        f"/fhir/status: event_count {status['event_count']} (expected {expected_events}), "
        f"resource_type_counts {status.get('resource_type_counts')} (expected {{'Patient': 2}}), "
        f"entity_count {status['entity_count']} (expected 2): {'OK' if counts_ok else 'FAIL'}"
    )
    if any(f.problems for f in figures) or not counts_ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
