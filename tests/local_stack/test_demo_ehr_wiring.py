"""make dev's demo EHR wiring, without starting anything: no Node → one line and no demo EHR;
with it, the EHR is registered as the demo workspace's data source and the banner says where."""

from __future__ import annotations

from typing import Any

import pytest

from local_stack import bootstrap, demo_ehr
from local_stack.__main__ import banner
from local_stack.stack import LocalStack, StackConfig


def stack_with_demo_workspace() -> LocalStack:
    stack = LocalStack(StackConfig(demo=True))
    stack.base_url, stack.endpoint_url = "http://127.0.0.1:3000", "http://127.0.0.1:5000"
    stack.workspace_id, stack.api_key = "ws-1", "fhp_key"
    return stack


def test_without_node_the_stack_says_so_in_one_line_and_runs_without_the_demo_ehr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo_ehr.shutil, "which", lambda name: None)
    monkeypatch.setattr(demo_ehr, "_INSTALL_STAMP", "no-such-stamp")  # as on a machine where npm ci never ran
    stack = stack_with_demo_workspace()
    stack._start_demo_ehr()
    assert stack.ehr is None and stack.data_source_id is None
    text = banner(stack)
    lines = [line for line in text.splitlines() if "demo EHR" in line]
    assert lines == ["  (no demo EHR: node is not on PATH: the demo EHR needs Node.js 20 or newer)"]


def test_with_node_the_demo_ehr_is_registered_and_announced(monkeypatch: pytest.MonkeyPatch) -> None:
    started: dict[str, Any] = {}

    class FakeEhr:  # stands in for the Node process only; the registration call is the real code's
        base_url = "http://127.0.0.1:4010/fhir/R4"

        @classmethod
        def start(cls, seed: list[Any]) -> "FakeEhr":
            started["seed"] = seed
            return cls()

        def stop(self) -> None:
            started["stopped"] = True

    monkeypatch.setattr(demo_ehr, "ensure_node_modules", lambda root=None: None)
    monkeypatch.setattr(demo_ehr, "DemoEhr", FakeEhr)
    calls: list[tuple[str, Any]] = []

    def post(base_url: str, path: str, key: str, body: Any, timeout: float) -> Any:
        calls.append((path, body))
        return {"id": "ds-1"}

    monkeypatch.setattr(bootstrap, "_post", post)
    stack = stack_with_demo_workspace()
    stack._start_demo_ehr()
    assert started["seed"], "seeded with Synthea bundles (or generated patients)"
    assert stack.data_source_id == "ds-1"
    (create_path, body), (sync_path, _) = calls
    assert create_path == "/v1/ws-1/data-sources" and sync_path == "/v1/ws-1/data-sources/ds-1/sync"
    assert body["sync_strategy"] == "scheduled" and body["connection_config"]["base_url"] == FakeEhr.base_url
    text = banner(stack)
    assert FakeEhr.base_url in text and "ds-1" in text
    stack.stop()
    assert started["stopped"]


def test_generated_demo_bundle_is_a_valid_transaction() -> None:
    from fhir_platform.fhir.validation import validate_resource

    bundle = bootstrap.generated_demo_bundle(5)
    assert bundle["type"] == "transaction" and len(bundle["entry"]) == 10
    for entry in bundle["entry"]:
        validate_resource(entry["resource"])
