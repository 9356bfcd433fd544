"""Run ``python -m local_stack`` as a subprocess for end-to-end tests.

    from local_stack.testing import running_local_stack

    with running_local_stack(admin_key="fpadm_test") as stack:
        requests.get(f"{stack.base_url}/health")
        headers = {"Authorization": f"Bearer {stack.api_key}"}
        ...

The subprocess gets a free port and a temporary state file; the helper waits (``timeout``, 60 s by
default) until ``GET /health`` answers 200 and the state file exists, then yields a ``RunningStack``
(``base_url``, ``admin_key``, ``workspace_id``, ``api_key``, ``endpoint_url``, ``demo_error``). On a
start failure or timeout it raises with the subprocess's output (its stderr holds the logs and the
tracebacks). On exit it sends SIGTERM and waits for a clean stop (SIGKILL after 15 s).

``endpoint_url=None`` starts moto inside the subprocess (``AWS_ENDPOINT_URL`` is removed from the
child's environment); pass an endpoint to use an AWS endpoint you run yourself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_stack.stack import PROJECT_ROOT


class LocalStackFailed(RuntimeError):
    pass


@dataclass
class RunningStack:
    base_url: str
    admin_key: str
    workspace_id: str | None
    api_key: str | None
    endpoint_url: str
    demo_error: str | None
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        """Everything the subprocess printed so far (banner on stdout, logs on stderr)."""
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_local_stack(
    admin_key: str = "fpadm_test_admin_key",
    template: str | os.PathLike[str] | None = None,
    endpoint_url: str | None = None,
    demo: bool = True,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[RunningStack]:
    with tempfile.TemporaryDirectory(prefix="local-stack-") as tmp:
        state_file = Path(tmp) / "state.json"
        log_path = Path(tmp) / "output.log"
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        child_env.update(env or {})
        child_env["FHIR_PLATFORM_ADMIN_KEY"] = admin_key
        child_env["PYTHONUNBUFFERED"] = "1"
        if endpoint_url:
            child_env["AWS_ENDPOINT_URL"] = endpoint_url
        command = [sys.executable, "-m", "local_stack", "--port", "0", "--state-file", str(state_file)]
        if template is not None:
            command += ["--template", str(template)]
        if not demo:
            command.append("--no-demo")
        command += extra_args or []
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=child_env, stdout=log_file, stderr=subprocess.STDOUT
            )
        try:
            state = _wait_until_ready(process, state_file, log_path, timeout)
            stack = RunningStack(
                base_url=state["base_url"],
                admin_key=admin_key,
                workspace_id=state.get("workspace_id"),
                api_key=state.get("api_key"),
                endpoint_url=state["endpoint_url"],
                demo_error=state.get("demo_error"),
                process=process,
                log_path=log_path,
            )
            if demo and stack.demo_error:
                raise LocalStackFailed(f"demo workspace not created: {stack.demo_error}\n{_tail(log_path)}")
            yield stack
        finally:
            _stop(process)


def _wait_until_ready(process: subprocess.Popen[bytes], state_file: Path, log_path: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalStackFailed(f"local stack exited with {process.returncode} before it was ready:\n{_tail(log_path)}")
        if state_file.exists():
            state = json.loads(state_file.read_text())
            if _health(state["base_url"]) == 200:
                return state
        time.sleep(0.1)
    raise LocalStackFailed(f"local stack not ready after {timeout:.0f} s:\n{_tail(log_path)}")


def _health(base_url: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=5) as response:  # noqa: S310 - local URL
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(log_path: Path, limit: int = 20000) -> str:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return text[-limit:]
