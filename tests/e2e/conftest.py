"""End-to-end fixtures: one local stack (``python -m local_stack``) per test worker, over real HTTP."""

from __future__ import annotations

import uuid
from typing import Any, Iterator

import pytest
import requests

from local_stack.demo_ehr import DemoEhr
from local_stack.testing import RunningStack, running_local_stack
from tests.support.demo_ehr import emptied, started_demo_ehr

ADMIN_KEY = "fpadm_e2e_" + uuid.uuid4().hex


@pytest.fixture(scope="session")
def stack() -> Iterator[RunningStack]:
    with running_local_stack(admin_key=ADMIN_KEY, timeout=90) as running:
        yield running


class Client:
    def __init__(self, base_url: str, key: str | None) -> None:
        self.base_url, self.key = base_url, key
        self.http = requests.Session()

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        h = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        h.update(headers or {})
        return self.http.request(method, self.base_url + path, headers=h, timeout=30, **kwargs)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PUT", path, **kw)


@pytest.fixture(scope="session")
def admin(stack: RunningStack) -> Client:
    return Client(stack.base_url, stack.admin_key)


def make_workspace(admin: Client, fhir: bool = True) -> tuple[str, Client]:
    body: dict[str, Any] = {"name": "E2E Clinic", "slug": f"e2e-{uuid.uuid4().hex[:10]}"}
    if fhir:
        body |= {"ehr_type": "athenahealth", "fhir_store_url": "https://ehr.example.org/fhir"}
    ws = admin.post("/v1/workspaces", json=body)
    assert ws.status_code == 201, ws.text
    ws_id = ws.json()["id"]
    key = admin.post(f"/v1/{ws_id}/api-keys", json={"name": "e2e", "duration_days": 1, "role": "admin"})
    assert key.status_code == 201, key.text
    return ws_id, Client(admin.base_url, key.json()["api_key"])


@pytest.fixture(scope="module")
def ehr_server() -> Iterator[DemoEhr]:
    """The demo EHR (a FHIR R4 server run by Node), one per test module that asks for it."""
    with started_demo_ehr() as server:
        yield server


@pytest.fixture
def ehr(ehr_server: DemoEhr) -> Iterator[DemoEhr]:
    """The demo EHR, empty and open, for one test."""
    yield emptied(ehr_server)
    ehr_server.clear_faults()
