"""Integration fixtures: moto in-process with the template's table, bucket, queue and secret."""

from __future__ import annotations

import uuid
from typing import Any, Iterator

import boto3
import pytest
from moto import mock_aws

from tests.support.gateway import Gateway
from tests.support.template import create_table

ADMIN_KEY = "fpadm_integration-test-admin-key"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "TABLE_NAME": "fhir-data",
        "IMPORTS_BUCKET": "fhir-platform-imports-test",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "FhirPlatform",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        from fhir_platform import aws as aws_clients
        from fhir_platform.api import deps

        aws_clients.reset()
        for getter in (deps.workspaces, deps.resources, deps.api_keys, deps.data_sources, deps.sync):
            getter.cache_clear()
        create_table(boto3.client("dynamodb"), "DataTable", env["TABLE_NAME"])
        boto3.client("s3").create_bucket(Bucket=env["IMPORTS_BUCKET"])
        queue = boto3.client("sqs").create_queue(QueueName="imports")["QueueUrl"]
        sync_queue = boto3.client("sqs").create_queue(QueueName="sync")["QueueUrl"]
        monkeypatch.setenv("SYNC_QUEUE_URL", sync_queue)
        secret = boto3.client("secretsmanager").create_secret(Name="admin-key", SecretString=ADMIN_KEY)["ARN"]
        monkeypatch.setenv("IMPORT_QUEUE_URL", queue)
        monkeypatch.setenv("ADMIN_KEY_SECRET_ARN", secret)
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
        yield {**env, "IMPORT_QUEUE_URL": queue, "SYNC_QUEUE_URL": sync_queue, "ADMIN_KEY_SECRET_ARN": secret}
        aws_clients.reset()


@pytest.fixture
def gateway(aws: dict[str, str]) -> Gateway:
    return Gateway()


def new_workspace(gateway: Gateway, *, fhir: bool = True, slug: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Clinic", "slug": slug or f"clinic-{uuid.uuid4().hex[:8]}"}
    if fhir:
        body |= {"ehr_type": "epic", "fhir_store_url": "https://ehr.example.org/fhir/R4"}
    reply = gateway.call("POST", "/v1/workspaces", token=ADMIN_KEY, body=body)
    assert reply.status == 201, reply.body
    return reply.body


def new_key(gateway: Gateway, workspace_id: str, role: str = "admin", **extra: Any) -> str:
    reply = gateway.call(
        "POST", f"/v1/{workspace_id}/api-keys", token=ADMIN_KEY, body={"name": role, "duration_days": 30, "role": role, **extra}
    )
    assert reply.status == 201, reply.body
    return reply.body["api_key"]


@pytest.fixture
def workspace(gateway: Gateway) -> dict[str, Any]:
    ws = new_workspace(gateway)
    return {**ws, "key": new_key(gateway, ws["id"])}
