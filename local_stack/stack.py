"""The local stack: moto + the template's resources + its functions behind a local HTTP API.

``LocalStack.start()`` runs these steps in order and is "ready" at the end of step 7:

1. Load ``template.yaml`` (``template``).
2. AWS endpoint: ``AWS_ENDPOINT_URL`` when given (nothing is started); otherwise moto's server in
   this process on a free port of 127.0.0.1, with ``moto_speedups`` applied.
3. Register function names/ARNs, then create the tables, buckets, queues, secrets and parameters
   (``aws_resources``), idempotently.
4. Store the admin key in ``AdminKeySecret`` (``bootstrap``).
5. Put the handlers' shared environment in ``os.environ`` (``lambda_runtime.runtime_environment``)
   and import every handler once (Linux: in the zygote the environments are forked from; elsewhere
   in this process); any import failure stops the start. Invocations run in each function's
   execution environments (processes started on demand, ``lambda_runtime``).
6. Serve the routes on ``host:port`` (``http_gateway``), plus the admin routes below.
7. Start the S3/SQS/schedule/stream pollers (``events``) and wait until they have their starting
   points (so an object uploaded right after start is delivered).
8. Create the demo workspace through the API (unless disabled); with Node.js, start the demo EHR
   (``demo_ehr``: a real FHIR R4 server seeded with a few Synthea patients), register it as the
   workspace's scheduled data source and trigger a first sync (unless ``demo_ehr`` is off); write
   the state file.

``stop()`` undoes all of it: server, pollers, execution environments, moto, handler modules,
``os.environ``, state file.

Admin routes (local only, not part of the template API):
  ``POST /_local/schedules/<FunctionLogicalId>`` runs that function's schedule(s) now, synchronously
  (``?event=<EventName>`` picks one); 200 ``{"invoked": [...]}``, 502 if the function failed.
  ``GET /_local/routes`` lists the routes; ``GET /_local/status`` the endpoints, event sources and
  each function's running execution environments.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
from botocore.config import Config

from local_stack import bootstrap, moto_speedups
from local_stack.aws_resources import LocalResource, ResourceFactory
from local_stack.events import AsyncInvoker, EventSources, build_event_sources, wait_until_ready
from local_stack.http_gateway import GatewayServer, HttpGateway, Request, Response, build_gateway
from local_stack.lambda_runtime import (
    DEFAULT_CONCURRENCY,
    FAKE_CREDENTIALS,
    SCRUBBED_PREFIXES,
    FunctionError,
    LambdaFunction,
    ZygoteLauncher,
    function_specs,
    register_function_refs,
    runtime_environment,
    start_zygote,
)
from local_stack.template import load_template

log = logging.getLogger("local_stack")

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class StackError(Exception):
    """The stack cannot start; the message says why."""


@dataclass
class StackConfig:
    template: Path = PROJECT_ROOT / "template.yaml"
    host: str = "127.0.0.1"
    port: int = 3000
    endpoint_url: str | None = None  # None: run moto in this process
    region: str | None = None
    admin_key: str | None = None  # None: FHIR_PLATFORM_ADMIN_KEY, else generated
    demo: bool = True
    demo_ehr: bool = True  # with the demo workspace: start the demo EHR and sync from it (needs Node.js)
    state_file: Path | None = None
    schedule_scale: float = 1.0
    concurrency: int = DEFAULT_CONCURRENCY  # execution environments per function at most
    parameters: dict[str, str] = field(default_factory=dict)


class _Clients:
    """boto3 clients for the local endpoint, created on first use."""

    def __init__(self, endpoint_url: str, region: str) -> None:
        self._session = boto3.session.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=region,
        )
        self._endpoint_url = endpoint_url
        self._config = Config(retries={"max_attempts": 2, "mode": "standard"}, read_timeout=30)
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self._session.client(service, endpoint_url=self._endpoint_url, config=self._config)
            return self._clients[service]


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self.endpoint_url: str | None = None
        self.base_url: str | None = None
        self.admin_key: str | None = None
        self.admin_key_generated = False
        self.workspace_id: str | None = None
        self.api_key: str | None = None
        self.demo_error: str | None = None
        self.ehr: Any = None  # the demo EHR (local_stack.demo_ehr.DemoEhr) when running
        self.ehr_note: str | None = None  # why there is no demo EHR
        self.data_source_id: str | None = None
        self.functions: dict[str, LambdaFunction] = {}
        self.resources: dict[str, LocalResource] = {}
        self.gateway: HttpGateway | None = None
        self.sources = EventSources()
        self._moto: Any = None
        self._server: GatewayServer | None = None
        self._server_thread: threading.Thread | None = None
        self._invoker: AsyncInvoker | None = None
        self._zygote: ZygoteLauncher | None = None
        self._saved_env: dict[str, str | None] = {}
        self._wrote_state = False

    # --- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        started = time.monotonic()
        config = self.config
        template, resolver = load_template(config.template, config.parameters, config.region)
        region = resolver.region
        log.info("template %s: %d resources", template.path, len(template.all_resources))

        if config.endpoint_url:
            self.endpoint_url = config.endpoint_url
            log.info("AWS endpoint %s (given; moto speed-ups apply only to a moto this process runs)", self.endpoint_url)
        else:
            self.endpoint_url = self._start_moto()
        self._set_environment(
            {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
            | FAKE_CREDENTIALS
            | {"AWS_ENDPOINT_URL": self.endpoint_url, "AWS_REGION": region, "AWS_DEFAULT_REGION": region}
        )
        clients = _Clients(self.endpoint_url, region)

        register_function_refs(template, resolver)
        factory = ResourceFactory(template, resolver, clients)
        self.resources = factory.create_all()

        if config.admin_key:
            self.admin_key, self.admin_key_generated = config.admin_key, False
        else:
            self.admin_key, self.admin_key_generated = bootstrap.admin_key_from_env()
        secret = self.resources.get(bootstrap.ADMIN_SECRET_LOGICAL_ID)
        if secret is not None:
            bootstrap.store_admin_key(clients.secretsmanager, secret.arn, self.admin_key)
        else:
            log.warning("the template has no %s secret: the admin key is not stored", bootstrap.ADMIN_SECRET_LOGICAL_ID)

        specs = function_specs(template, resolver)
        self._set_environment(runtime_environment(specs, self.endpoint_url, region, dict(os.environ)))
        self.functions = {spec.logical_id: LambdaFunction(spec, config.concurrency) for spec in specs}
        failures = []
        try:
            self._zygote = start_zygote(list(self.functions.values()), dict(os.environ) | {"PYTHONUNBUFFERED": "1"})
        except FunctionError as exc:
            raise StackError(str(exc)) from exc
        if self._zygote is not None:
            for logical_id, failure in self._zygote.failures.items():
                log.error("%s: import failed\n%s", logical_id, failure["traceback"])
                failures.append(f"{logical_id} ({failure['error']})")
        for function in self.functions.values():
            if self._zygote is not None and function.logical_id in self._zygote.failures:
                continue
            try:
                function.load(self._zygote)
            except Exception as exc:  # noqa: BLE001 - collect every broken handler, then stop
                log.exception("%s: import failed", function.logical_id)
                failures.append(f"{function.logical_id} ({type(exc).__name__}: {exc})")
        if failures:
            raise StackError("handlers failed to import: " + "; ".join(failures))
        log.info("%d functions loaded", len(self.functions))

        self.gateway = build_gateway(template, resolver, self.functions)
        self.gateway.admin = self._admin
        self._server = GatewayServer(config.host, config.port, self.gateway)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self._server_thread = threading.Thread(target=self._server.serve_forever, name="http-gateway", daemon=True)
        self._server_thread.start()
        log.info("%d routes on %s", len(self.gateway.routes), self.base_url)

        self._invoker = AsyncInvoker(self.stop_event)
        self.sources = build_event_sources(
            self.functions, self.resources, resolver, clients, self._invoker, config.schedule_scale, self.stop_event
        )
        for thread in self.sources.threads:
            thread.start()
        threading.Thread(target=self._reap_idle_environments, name="environment-reaper", daemon=True).start()
        if not wait_until_ready(self.sources.threads, timeout=30):
            raise StackError("event pollers did not start within 30 s")
        for line in self.sources.describe():
            log.info("event source %s", line)
        log.info("ready in %.1f s", time.monotonic() - started)

        if config.demo:
            try:
                demo = bootstrap.create_demo_workspace(self.base_url, self.admin_key)
                self.workspace_id, self.api_key = demo.id, demo.api_key
            except bootstrap.DemoError as exc:
                self.demo_error = str(exc)
                log.error("demo workspace not created: %s", exc)
        if config.demo and config.demo_ehr and self.workspace_id:
            self._start_demo_ehr()
        if config.state_file is not None:
            self._write_state(config.state_file)

    def _start_demo_ehr(self) -> None:
        """The demo EHR, registered as the demo workspace's data source, first sync started.
        Without Node.js (or its packages) the stack runs without it and says so in one line."""
        import tempfile

        from local_stack import demo_ehr

        try:
            demo_ehr.ensure_node_modules(PROJECT_ROOT)
            seeds = bootstrap.demo_seed_files()
            if not seeds:  # no shared fixtures beside the project: a few generated patients
                self._demo_seed_dir = tempfile.TemporaryDirectory(prefix="demo-ehr-seed-")
                seed = Path(self._demo_seed_dir.name) / "patients.json"
                seed.write_text(json.dumps(bootstrap.generated_demo_bundle()))
                seeds = [seed]
            self.ehr = demo_ehr.DemoEhr.start(seed=seeds)
        except demo_ehr.NodeUnavailable as exc:
            self.ehr_note = f"no demo EHR: {exc}"
            log.warning("%s", self.ehr_note)
            return
        except (demo_ehr.DemoEhrFailed, OSError, subprocess.SubprocessError) as exc:
            self.ehr_note = f"demo EHR did not start: {exc}"
            log.error("%s", self.ehr_note)
            return
        try:
            self.data_source_id = bootstrap.register_demo_ehr(self.base_url, self.api_key, self.workspace_id, self.ehr.base_url)
        except bootstrap.DemoError as exc:
            self.ehr_note = f"demo EHR not registered: {exc}"
            log.error("%s", self.ehr_note)

    def stop(self) -> None:
        self.stop_event.set()
        if self.ehr is not None:
            self.ehr.stop()
            self.ehr = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._invoker is not None:
            self._invoker.shutdown()
        for thread in self.sources.threads:
            if thread.is_alive():
                thread.join(timeout=5)
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="unload") as pool:  # before moto
            list(pool.map(lambda function: function.unload(), self.functions.values()))
        if self._zygote is not None:
            self._zygote.stop()
            self._zygote = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        self._restore_environment()
        if self._wrote_state and self.config.state_file is not None:
            self.config.state_file.unlink(missing_ok=True)
            self._wrote_state = False

    def wait(self) -> None:
        """Block until ``stop_event`` is set (by a signal handler)."""
        while not self.stop_event.wait(0.5):
            pass

    # --- pieces ---------------------------------------------------------------------------------------

    def _reap_idle_environments(self) -> None:
        while not self.stop_event.wait(60):
            for function in list(self.functions.values()):
                pool = function.pool
                if pool is not None:
                    pool.reap()

    def _start_moto(self) -> str:
        from moto.server import ThreadedMotoServer

        if moto_speedups.apply():
            log.info("moto speed-ups applied (partition-local Query, per-item transaction undo)")
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        log.info("moto on http://%s:%d", host, port)
        return f"http://{host}:{port}"

    def _set_environment(self, env: dict[str, str]) -> None:
        for key in set(os.environ) | set(env):
            if key not in self._saved_env:
                self._saved_env[key] = os.environ.get(key)
        for key in list(os.environ):
            if key not in env:
                del os.environ[key]
        os.environ.update(env)

    def _restore_environment(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()

    def _write_state(self, path: Path) -> None:
        state = {
            "base_url": self.base_url,
            "endpoint_url": self.endpoint_url,
            "workspace_id": self.workspace_id,
            "api_key": self.api_key,
            "demo_error": self.demo_error,
            "ehr_base_url": self.ehr.base_url if self.ehr is not None else None,
            "data_source_id": self.data_source_id,
            "ehr_note": self.ehr_note,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)
        self._wrote_state = True

    # --- admin routes ------------------------------------------------------------------------------

    def _admin(self, request: Request) -> Response | None:
        path = request.path.rstrip("/")
        if request.method == "GET" and path == "/_local/routes":
            assert self.gateway is not None
            return Response.json(200, {"routes": self.gateway.describe()})
        if request.method == "GET" and path == "/_local/status":
            return Response.json(
                200,
                {
                    "base_url": self.base_url,
                    "endpoint_url": self.endpoint_url,
                    "functions": sorted(self.functions),
                    "environments": {
                        name: function.pool.environment_ids() if function.pool is not None else []
                        for name, function in sorted(self.functions.items())
                    },
                    "event_sources": self.sources.describe(),
                },
            )
        prefix = "/_local/schedules/"
        if request.method == "POST" and path.startswith(prefix):
            logical_id = path[len(prefix) :]
            wanted = parse_qs(request.raw_query).get("event", [None])[0]
            schedules = [s for s in self.sources.schedules.get(logical_id, []) if wanted in (None, s.event_name)]
            if not schedules:
                return Response.message(404, f"no schedule for {logical_id}")
            invoked = []
            for schedule in schedules:
                try:
                    schedule.fire_now()
                except FunctionError:
                    return Response.json(502, {"message": "function failed", "event": schedule.event_name})
                invoked.append(f"{logical_id}.{schedule.event_name}")
            return Response.json(200, {"invoked": invoked})
        return None

