"""DynamoDB calls per request do not grow with history length or workspace size (no scans)."""

from __future__ import annotations

from bench.aws_calls import counting
from tests.support.gateway import Gateway

PATIENT = {"resourceType": "Patient", "name": [{"family": "Cost"}]}


def ddb_calls(fn) -> dict[str, int]:
    with counting() as c:
        reply = fn()
    assert reply.status == 200, reply.body
    calls = {k: v for k, v in c.items() if k.startswith("dynamodb:")}
    assert "dynamodb:Scan" not in calls
    return calls


def test_history_page_cost_is_independent_of_history_length(gateway: Gateway, workspace: dict) -> None:
    url = f"/v1/{workspace['id']}/fhir/resources/Patient/long"
    for i in range(60):
        gateway.call("PUT", url, token=workspace["key"], body={"data": {**PATIENT, "name": [{"family": f"Cost{i}"}]}})
    newest = ddb_calls(lambda: gateway.call("GET", f"{url}/history", token=workspace["key"], query={"limit": "10"}))
    deep = ddb_calls(lambda: gateway.call("GET", f"{url}/history", token=workspace["key"], query={"limit": "10", "offset": "45"}))
    assert newest == deep and sum(newest.values()) <= 5  # authorizer + FHIR gate + current + one Query + the entries' entity aliases (one BatchGetItem)


def test_request_cost_is_independent_of_workspace_size(gateway: Gateway, workspace: dict) -> None:
    base = f"/v1/{workspace['id']}/fhir/resources/Patient"
    gateway.call("PUT", f"{base}/probe", token=workspace["key"], body={"data": PATIENT})
    probes = {
        "read": lambda: gateway.call("GET", f"{base}/probe", token=workspace["key"]),
        "history": lambda: gateway.call("GET", f"{base}/probe/history", token=workspace["key"]),
        "status": lambda: gateway.call("GET", f"/v1/{workspace['id']}/fhir/status", token=workspace["key"]),
        "update": lambda: gateway.call("PUT", f"{base}/probe", token=workspace["key"], body={"data": {**PATIENT, "gender": "other"}}),
    }
    small = {name: ddb_calls(probe) for name, probe in probes.items()}
    for i in range(150):
        gateway.call("PUT", f"{base}/bulk-{i}", token=workspace["key"], body={"data": {**PATIENT, "id": f"bulk-{i}"}})
    probes["update"] = lambda: gateway.call("PUT", f"{base}/probe", token=workspace["key"], body={"data": {**PATIENT, "gender": "female"}})
    large = {name: ddb_calls(probe) for name, probe in probes.items()}
    assert small == large


def test_search_page_cost_is_independent_of_workspace_and_match_count(gateway: Gateway, workspace: dict) -> None:
    """Lists scoped by data_source_id, and name searches whose matches grow with the workspace."""
    ws, key = workspace["id"], workspace["key"]
    source = "6b1f0c3e-2f6a-4f4e-8a53-0c6f3a9d2b10"
    base = f"/v1/{ws}/fhir/resources"

    def put(rtype: str, rid: str, data: dict) -> None:
        reply = gateway.call("PUT", f"{base}/{rtype}/{rid}", token=key, body={"data": data, "data_source_id": source})
        assert reply.status in (200, 201), reply.body

    def grow(start: int, n: int) -> None:
        for i in range(start, start + n):
            put("Patient", f"sp-{i}", {"resourceType": "Patient", "name": [{"family": "Scale", "given": [f"G{i}"]}]})
            put("Organization", f"so-{i}", {"resourceType": "Organization", "name": f"Scale Org {i}"})

    get = lambda path, **q: (lambda: gateway.call("GET", f"/v1/{ws}/fhir/{path}", token=key, query=q))  # noqa: E731
    probes = {
        "patients q, by name": get("patients", q="scale", sort_by="name"),
        "patients q, by created_at": get("patients", q="scale", sort_by="-created_at"),
        "view patients by source": get("views/patients", data_source_id=source),
        "view organizations by source": get("views/organizations", data_source_id=source),
        "view organizations q + source": get("views/organizations", q="scale org", data_source_id=source),
        "Patient name search": get("resources/Patient", name="scale"),
    }
    grow(0, 25)
    small = {name: ddb_calls(probe) for name, probe in probes.items()}
    grow(25, 125)  # 6× the workspace, and 6× the matches of every probe
    large = {name: ddb_calls(probe) for name, probe in probes.items()}
    assert small == large


def test_sync_failures_and_data_source_reads_cost_the_same_at_10_and_300_failures(gateway: Gateway, workspace: dict) -> None:
    from fhir_platform.storage.sync import SyncRepository

    ws = workspace["id"]
    source = {"name": "ehr", "source_type": "fhir_store", "connection_config": {"base_url": "https://ehr.example.org/fhir/R4"}}
    ds = gateway.call("POST", f"/v1/{ws}/data-sources", token=workspace["key"], body=source).body["id"]
    sync = SyncRepository()

    def fail(first: int, last: int) -> None:
        for i in range(first, last):
            rt = "Patient" if i % 2 else "Observation"
            sync.record_failure(ws, ds, "inbound", rt, f"r{i}", "invalid", f"2026-01-01T00:00:{i % 60:02d}.000Z")

    probes = {
        "all": lambda: gateway.call("GET", f"/v1/{ws}/fhir/sync-failures", token=workspace["key"], query={"limit": "20"}),
        "type": lambda: gateway.call("GET", f"/v1/{ws}/fhir/sync-failures", token=workspace["key"], query={"fhir_resource_type": "Patient"}),
        "id": lambda: gateway.call("GET", f"/v1/{ws}/fhir/sync-failures", token=workspace["key"], query={"fhir_resource_id": "r3"}),
        "status": lambda: gateway.call("GET", f"/v1/{ws}/data-sources/{ds}/status", token=workspace["key"]),
        "history": lambda: gateway.call("GET", f"/v1/{ws}/data-sources/{ds}/sync-history", token=workspace["key"], query={"days": "90"}),
        "list": lambda: gateway.call("GET", f"/v1/{ws}/data-sources", token=workspace["key"]),
    }
    fail(0, 10)
    small = {name: ddb_calls(probe) for name, probe in probes.items()}
    fail(10, 300)
    large = {name: ddb_calls(probe) for name, probe in probes.items()}
    assert small == large
    totals = probes["type"]().body
    assert totals["total"] == 150 and len(totals["failures"]) == 50 and totals["has_more"] is True
