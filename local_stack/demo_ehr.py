"""Start and drive the demo EHR (``ehr_server/server.mjs``): a real FHIR R4 server on 127.0.0.1.

    from local_stack.demo_ehr import DemoEhr

    with DemoEhr.start(seed=[bundle_path]) as ehr:
        ehr.base_url        # http://127.0.0.1:<port>/fhir/R4
        ehr.token_url       # http://127.0.0.1:<port>/oauth2/token
        ehr.search("Patient", _count=50)
        ehr.faults("429", count=1, retry_after=2)

The server is Medplum's FHIR router over its in-memory repository, run by Node (20 or newer) from
``ehr_server/`` (``npm ci`` there first: ``make install`` does it, or :func:`ensure_node_modules`).
The admin calls here are the server's ``/admin/`` API (see ``ehr_server/README.md``). The process
dies with its parent: it exits when its stdin closes, and :meth:`DemoEhr.stop` also sends SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
READY_PREFIX = "EHR listening on "
_INSTALL_STAMP = ".demo-ehr-installed"


class NodeUnavailable(RuntimeError):
    """``node`` or ``ehr_server/node_modules`` is missing: the demo EHR cannot run here."""


class DemoEhrFailed(RuntimeError):
    """The demo EHR process exited or did not get ready; the message holds its log tail."""


def _server_dir(project_root: Path | None) -> Path:
    return Path(project_root or PROJECT_ROOT) / "ehr_server"


def _node() -> str:
    node = shutil.which("node")
    if not node:
        raise NodeUnavailable("node is not on PATH: the demo EHR needs Node.js 20 or newer")
    return node


def ensure_node_modules(project_root: str | os.PathLike[str] | None = None) -> Path:
    """Run ``npm ci`` in ``ehr_server/`` when ``node_modules`` is missing or older than the lock
    file; returns the ``node_modules`` path. Raises :class:`NodeUnavailable` without node or npm."""
    server_dir = _server_dir(Path(project_root) if project_root else None)
    modules = server_dir / "node_modules"
    stamp = modules / _INSTALL_STAMP
    lock = server_dir / "package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return modules
    _node()
    npm = shutil.which("npm")
    if not npm:
        raise NodeUnavailable("npm is not on PATH: cannot install ehr_server/node_modules")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=server_dir, check=True
    )
    stamp.touch()
    return modules


class DemoEhr:
    """A running demo EHR. Create it with :meth:`start`; use it as a context manager."""

    def __init__(self, process: subprocess.Popen[str], origin: str, log_path: Path, tmp: tempfile.TemporaryDirectory[str]):
        self.process = process
        self.origin = origin
        self.base_url = f"{origin}/fhir/R4"
        self.token_url = f"{origin}/oauth2/token"
        self.log_path = log_path
        self.session = requests.Session()
        #: Sent as ``Authorization: Bearer`` by the FHIR conveniences; set by :meth:`set_static_token`.
        self.bearer_token: str | None = None
        self._tmp = tmp

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        seed: Iterable[str | os.PathLike[str]] = (),
        require_auth: bool = False,
        port: int = 0,
        *,
        token_ttl: int | None = None,
        timeout: float = 60.0,
        project_root: str | os.PathLike[str] | None = None,
    ) -> DemoEhr:
        """Start ``node ehr_server/server.mjs`` and wait for its ready line (``timeout`` seconds).
        ``seed``: Synthea transaction bundles (files or directories) loaded before it is ready."""
        server_dir = _server_dir(Path(project_root) if project_root else None)
        node = _node()
        if not (server_dir / "node_modules" / "@medplum" / "fhir-router").is_dir():
            raise NodeUnavailable(
                f"{server_dir / 'node_modules'} is missing: run `make install` (npm ci in ehr_server/)"
            )
        command = [node, str(server_dir / "server.mjs"), "--port", str(port), "--exit-on-stdin-close"]
        if require_auth:
            command.append("--require-auth")
        if token_ttl is not None:
            command += ["--token-ttl", str(token_ttl)]
        for path in seed:
            command += ["--seed", str(Path(path).resolve())]

        tmp = tempfile.TemporaryDirectory(prefix="demo-ehr-")
        log_path = Path(tmp.name) / "server.log"
        log_file = open(log_path, "w")  # noqa: SIM115 - the child owns it until it exits
        try:
            process = subprocess.Popen(
                command,
                cwd=server_dir,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
                bufsize=1,
            )
        finally:
            log_file.close()
        origin = _wait_ready(process, log_path, timeout)
        if origin is None:
            _terminate(process)
            tail = log_path.read_text(errors="replace")[-4000:]
            tmp.cleanup()
            raise DemoEhrFailed(f"demo EHR did not start within {timeout:.0f} s (exit code {process.returncode}):\n{tail}")
        return cls(process, origin, log_path, tmp)

    def stop(self) -> None:
        """Stop the server (stdin closed, then SIGTERM, then SIGKILL) and remove its log."""
        self.session.close()
        _terminate(self.process)
        self._tmp.cleanup()

    def __enter__(self) -> DemoEhr:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def output(self) -> str:
        """What the server logged so far (stderr: one line per request, no ids or queries)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- admin API ---------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = self.session.request(method, f"{self.origin}/admin/{path}", json=body, timeout=120)
        if response.status_code >= 400:
            raise DemoEhrFailed(f"{method} /admin/{path} answered {response.status_code}: {response.text[:500]}")
        return response.json()

    def register_client(self, client_id: str, jwks: dict[str, Any], scope: str | None = None) -> dict[str, Any]:
        """Register a SMART Backend Services client by its public JWK Set (``{"keys": [...]}``).
        ``scope``: the scopes it may be granted (space-separated); default any ``system/`` scope."""
        body: dict[str, Any] = {"client_id": client_id, "jwks": jwks}
        if scope is not None:
            body["scope"] = scope
        return self._admin("POST", "clients", body)

    def set_static_token(self, token: str | None) -> dict[str, Any]:
        """Accept ``token`` as a bearer token with full access (``None`` removes it). The FHIR
        conveniences below send it from then on."""
        self.bearer_token = token
        return self._admin("POST", "static-token", {"token": token})

    def require_auth(self, enabled: bool = True) -> dict[str, Any]:
        return self._admin("POST", "require-auth", {"enabled": enabled})

    def settings(self, token_ttl: int | None = None, link_origin: Any = ...) -> dict[str, Any]:
        """``token_ttl``: seconds an issued access token lives; ``link_origin``: origin written in
        paging links instead of the request's own (to test a client's same-origin check), ``None``
        to go back to the request's own; left out, it is unchanged."""
        body: dict[str, Any] = {}
        if token_ttl is not None:
            body["token_ttl"] = token_ttl
        if link_origin is not ...:
            body["link_origin"] = link_origin
        return self._admin("POST", "settings", body)

    def faults(
        self,
        mode: str,
        rate: float | None = None,
        count: int | None = None,
        retry_after: float | None = None,
        hang_seconds: float | None = None,
        path_contains: str | None = None,
    ) -> dict[str, Any]:
        """Add a fault rule for non-admin requests: ``mode`` "500", "429" (with ``Retry-After:
        retry_after``), "hang" (``hang_seconds``, then served) or "reset" (connection reset); on
        a ``rate`` (0..1) of requests or the first ``count``; only paths+queries containing
        ``path_contains``. The newest matching rule wins."""
        body = {
            "mode": str(mode),
            "rate": rate,
            "count": count,
            "retry_after": retry_after,
            "hang_seconds": hang_seconds,
            "path_contains": path_contains,
        }
        return self._admin("POST", "faults", {k: v for k, v in body.items() if v is not None})

    def clear_faults(self) -> dict[str, Any]:
        return self._admin("DELETE", "faults")

    def stats(self) -> dict[str, Any]:
        return self._admin("GET", "stats")

    def reset(self) -> dict[str, Any]:
        """Empty the repository (clients, tokens, settings and counters stay)."""
        return self._admin("POST", "reset", {})

    def put_resources(self, resources: Sequence[dict[str, Any]], last_updated: str) -> dict[str, Any]:
        """Store ``resources`` with their own ids and ``meta.lastUpdated = last_updated``."""
        return self._admin("POST", "resources", {"resources": list(resources), "last_updated": last_updated})

    def seed(self, paths: Iterable[str | os.PathLike[str]]) -> dict[str, Any]:
        """Post transaction bundles (files, or directories of them) through the FHIR router."""
        return self._admin("POST", "seed", {"paths": [str(Path(p).resolve()) for p in paths]})

    # -- FHIR conveniences (plain HTTP; raise requests.HTTPError on an error status) ---------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/fhir+json"}
        if self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        return headers

    def search(self, resource_type: str, **params: Any) -> dict[str, Any]:
        response = self.session.get(f"{self.base_url}/{resource_type}", params=params, headers=self._headers(), timeout=60)
        response.raise_for_status()
        return response.json()

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        response = self.session.get(f"{self.base_url}/{resource_type}/{resource_id}", headers=self._headers(), timeout=60)
        response.raise_for_status()
        return response.json()

    def update(self, resource: dict[str, Any], if_match: str | None = None) -> dict[str, Any]:
        """PUT the resource; ``if_match`` is a versionId (sent as ``If-Match: W/"<versionId>"``)."""
        headers = {**self._headers(), "Content-Type": "application/fhir+json"}
        if if_match is not None:
            headers["If-Match"] = f'W/"{if_match}"'
        url = f"{self.base_url}/{resource['resourceType']}/{resource['id']}"
        response = self.session.put(url, json=resource, headers=headers, timeout=60)
        response.raise_for_status()
        return response.json()


def _wait_ready(process: subprocess.Popen[str], log_path: Path, timeout: float) -> str | None:
    """Read stdout until the ready line; then keep draining it in a daemon thread."""
    result: dict[str, str] = {}
    ready = threading.Event()

    def reader() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if not ready.is_set() and line.startswith(READY_PREFIX):
                result["origin"] = line[len(READY_PREFIX):].strip()
                ready.set()
        ready.set()  # stdout closed: the process is gone

    threading.Thread(target=reader, name="demo-ehr-stdout", daemon=True).start()
    ready.wait(timeout)
    return result.get("origin")


def _terminate(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        try:
            if process.stdin:
                process.stdin.close()
            process.wait(timeout=5)
        except (subprocess.TimeoutExpired, OSError):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    elif process.stdin:
        process.stdin.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m local_stack.demo_ehr [--port N] [--require-auth] [SEED ...]``: run it until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m local_stack.demo_ehr", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--require-auth", action="store_true")
    parser.add_argument("seed", nargs="*", help="transaction bundles, or directories of them")
    options = parser.parse_args(argv)
    try:
        ensure_node_modules()
        ehr = DemoEhr.start(seed=options.seed, require_auth=options.require_auth, port=options.port)
    except (NodeUnavailable, DemoEhrFailed) as exc:
        print(f"demo EHR: {exc}")
        return 1
    print(f"FHIR base  {ehr.base_url}\ntoken URL  {ehr.token_url}\nadmin API  {ehr.origin}/admin/ (ehr_server/README.md)")
    try:
        ehr.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        ehr.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
