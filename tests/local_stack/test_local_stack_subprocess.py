"""``python -m local_stack`` as a subprocess (through ``local_stack.testing``), with its own moto and
with a preset ``AWS_ENDPOINT_URL``; and how start-up failures are reported."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from moto.server import ThreadedMotoServer

from local_stack.stack import LocalStack, StackConfig
from local_stack.testing import LocalStackFailed, running_local_stack
from tests.local_stack.support import RECORDER_TABLE, TEMPLATE, aws_client

ADMIN_KEY = "fpadm_subprocess_test_key"


def test_subprocess_with_its_own_moto() -> None:
    with running_local_stack(admin_key=ADMIN_KEY, template=TEMPLATE) as stack:
        assert requests.get(f"{stack.base_url}/health", timeout=10).status_code == 200
        assert stack.workspace_id and stack.workspace_id.startswith("ws_")
        assert stack.api_key and stack.api_key.startswith("fpk_")
        echo = requests.get(
            f"{stack.base_url}/v1/{stack.workspace_id}/echo/x",
            headers={"Authorization": f"Bearer {stack.api_key}"},
            timeout=10,
        )
        assert echo.status_code == 200
        assert echo.json()["event"]["pathParameters"]["workspace_id"] == stack.workspace_id
        secrets = aws_client("secretsmanager", stack.endpoint_url)
        assert secrets.get_secret_value(SecretId="fhir-platform-local/admin-key")["SecretString"] == ADMIN_KEY
        output = stack.output()
        assert "Local stack ready" in output and stack.api_key in output and "curl -X POST" in output
        assert ADMIN_KEY not in output, "a key supplied by the caller is not printed"
        process = stack.process
    assert process.returncode == 0, "SIGTERM stops the stack cleanly"


@pytest.fixture
def external_moto() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_subprocess_with_a_preset_aws_endpoint(external_moto: str) -> None:
    with running_local_stack(admin_key=ADMIN_KEY, template=TEMPLATE, endpoint_url=external_moto, demo=False) as stack:
        assert stack.endpoint_url == external_moto
        assert stack.workspace_id is None and stack.api_key is None
        assert RECORDER_TABLE in aws_client("dynamodb", external_moto).list_tables()["TableNames"]
        assert requests.get(f"{stack.base_url}/health", timeout=10).status_code == 200
    # a second run against the same endpoint finds everything in place (creation is idempotent)
    with running_local_stack(admin_key=ADMIN_KEY, template=TEMPLATE, endpoint_url=external_moto, demo=False) as again:
        assert requests.get(f"{again.base_url}/health", timeout=10).status_code == 200


def _write_template(directory: Path, health_code: str, with_workspaces: bool = False) -> Path:
    (directory / "functions" / "health").mkdir(parents=True)
    (directory / "functions" / "health" / "app.py").write_text(health_code)
    (directory / "template.yaml").write_text(
        textwrap.dedent(
            """
            Transform: AWS::Serverless-2016-10-31
            Resources:
              HttpApi:
                Type: AWS::Serverless::HttpApi
              HealthFunction:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: functions/health/
                  Handler: app.handler
                  Events:
                    Health:
                      Type: HttpApi
                      Properties: {ApiId: !Ref HttpApi, Path: /health, Method: GET}
            """
        )
    )
    return directory / "template.yaml"


HEALTHY = "def handler(event, context):\n    return {'status': 'ok'}\n"


def test_a_handler_that_fails_to_import_stops_the_start_with_its_error(tmp_path: Path) -> None:
    template = _write_template(tmp_path, "import no_such_module_for_local_stack_tests\n")
    with pytest.raises(LocalStackFailed) as failure, running_local_stack(template=template, timeout=30):
        pass
    message = str(failure.value)
    assert "exited with 1" in message
    assert "HealthFunction" in message and "no_such_module_for_local_stack_tests" in message


def test_demo_failure_is_reported_with_the_status_and_the_stack_keeps_serving(tmp_path: Path) -> None:
    template = _write_template(tmp_path, HEALTHY)
    with LocalStack(StackConfig(template=template, port=0, admin_key="fpadm_x", demo=True)) as stack:
        assert stack.demo_error == "POST /v1/workspaces: HTTP 404: Not Found"
        assert stack.workspace_id is None
        health = requests.get(f"{stack.base_url}/health", timeout=10)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
