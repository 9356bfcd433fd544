"""Powertools metrics (embedded metric format): one EMF log line per invocation, with the counts
the template's alarms and dashboards read, and nothing but names and numbers."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import new_key, new_workspace
from tests.support.gateway import Gateway


def _emf(out: str) -> list[dict]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{") and '"_aws"' in line]
    lines = [line for line in lines if line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "FhirPlatform"]
    # a metric's value is a number or a list of numbers (one per add_metric call): their sum
    return [{k: sum(v) if isinstance(v, list) and k != "_aws" else v for k, v in line.items()} for line in lines]


def test_a_write_request_emits_requests_and_resources_written(gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    ws = new_workspace(gateway)
    key = new_key(gateway, ws["id"])
    capsys.readouterr()
    patient = {"resourceType": "Patient", "name": [{"family": "Metricson", "given": ["Ada"]}], "birthDate": "1980-02-03"}
    reply = gateway.call("POST", f"/v1/{ws['id']}/fhir/resources/Patient", token=key, body={"data": patient})
    assert reply.status == 201
    out = capsys.readouterr().out
    [line] = _emf(out)  # flushed once, by the handler's decorator
    assert line["Requests"] == 1.0 and line["ResourcesWritten"] == 1.0
    assert "Metricson" not in out and "1980-02-03" not in out and key not in out


def test_a_read_request_emits_requests_only(gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    ws = new_workspace(gateway)
    key = new_key(gateway, ws["id"])
    capsys.readouterr()
    assert gateway.call("GET", f"/v1/{ws['id']}/fhir/resources/Patient/nope", token=key).status == 404
    [line] = _emf(capsys.readouterr().out)
    assert line["Requests"] == 1.0 and "ResourcesWritten" not in line and "ServerErrors" not in line
