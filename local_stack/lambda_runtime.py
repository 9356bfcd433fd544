"""Load the template's functions and invoke them the way Lambda does, in execution environments.

Data flow: ``function_specs()`` reads every ``AWS::Serverless::Function`` (Properties merged with
``Globals.Function``): code directory (``CodeUri``), ``Handler`` (``app.handler`` → ``app.py``,
attribute ``handler``), timeout, memory, and ``Environment.Variables`` resolved to local values.
``runtime_environment()`` builds the one set of variables all handlers share:
the union of every function's variables (the same name with two values is an error), plus the
local AWS settings (endpoint, fake credentials, region) and Powertools switches that make sense
locally (no X-Ray daemon: tracing off; metrics off unless the caller's environment says otherwise).
The stack sets it in ``os.environ`` before ``LambdaFunction.load()`` imports any handler module.

Each handler module is loaded by file path under its own module name
(``local_stack.functions.<LogicalId>.app``), so the many ``app.py`` files never collide and no
``sys.path`` entry is added. Each is imported once at start so that a broken handler stops the start
with its traceback: on Linux by the zygote (``ZygoteLauncher``), elsewhere by ``LambdaFunction.load()``
in this process.

Invocations run as in Lambda, in execution environments: an ``ExecutionEnvironment`` is a process
that imported the handler (same module name) and runs one invocation at a time — forked from the
zygote (``ZygoteLauncher``), or a new ``python -m local_stack.environment`` (``SpawnLauncher``). Everything a handler keeps between invocations — module globals, the layer's
``functools.cache``d services and boto3 clients/resources, Powertools' class-level
``BaseRouter.current_event`` and Logger keys — belongs to one environment and is never touched by two
invocations at once. Each function has an ``EnvironmentPool``: the warmest idle environment is reused,
a new one is started (a cold start, logged) when all are busy, up to the function's concurrency
(``--concurrency``, default 4, lower with ``ReservedConcurrentExecutions``; 0 throttles every
invocation); past it, invocations wait in arrival order (the HTTP gateway waits at most 30 s, then
503). Different functions, HTTP requests and event pollers therefore run side by side. ``invoke()``
sends a JSON round-trip of the event (what Lambda would deliver) and the context's fields; the
environment returns the JSON result (a result that is not JSON fails as ``Runtime.MarshalError``).
A process that dies mid-invocation fails it (``Runtime.ExitError``) and is replaced next time.
Environments idle for 10 minutes are stopped; ``unload()`` stops them all.
"""

from __future__ import annotations

import collections
import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from local_stack.template import ACCOUNT_ID, STACK_NAME, Resolver, Template, TemplateError

log = logging.getLogger("local_stack")

MODULE_PREFIX = "local_stack.functions"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Set by the local stack; a template variable with one of these names is an error (Lambda reserves
# the AWS_* ones too).
RESERVED = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# Removed for the handlers: they would point boto3 at real AWS or at a profile that may not exist.
SCRUBBED_PREFIXES = ("AWS_ENDPOINT_URL_", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")

# A function's execution environments at most (lower with ReservedConcurrentExecutions); past it,
# invocations queue for a free one. LOCAL_LAMBDA_CONCURRENCY / --concurrency change it.
DEFAULT_CONCURRENCY = 4
# An environment idle this long is stopped (Lambda reaps idle environments too).
IDLE_ENVIRONMENT_SECONDS = 600.0
# Handler modules are imported here one at a time (the start-up import check).
_load_lock = threading.Lock()


class FunctionError(Exception):
    """The handler raised, or returned something Lambda could not serialise."""


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    handler: str
    timeout: int
    memory: int
    environment: dict[str, str]
    events: dict[str, Any] = field(default_factory=dict)  # raw (unresolved) Events of the template
    async_retries: int = 2  # EventInvokeConfig.MaximumRetryAttempts
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions


def register_function_refs(template: Template, resolver: Resolver) -> None:
    """Function names and ARNs are known before anything is created; register them first."""
    for logical_id, _ in template.resources_of_type("AWS::Serverless::Function"):
        props = template.function_properties(logical_id)
        name = props.get("FunctionName")
        name = resolver.resolve(name) if name is not None else f"{STACK_NAME}-{logical_id}"
        arn = f"arn:aws:lambda:{resolver.region}:{ACCOUNT_ID}:function:{name}"
        resolver.register(logical_id, name, {"Arn": arn})
    for logical_id, _ in template.resources_of_type("AWS::Serverless::HttpApi"):
        resolver.register(logical_id, _api_id(logical_id), {"ApiEndpoint": "http://127.0.0.1"})


def _api_id(logical_id: str) -> str:
    return ("local" + logical_id.lower())[:10]


def function_specs(template: Template, resolver: Resolver) -> list[FunctionSpec]:
    specs = []
    for logical_id, _ in template.resources_of_type("AWS::Serverless::Function"):
        props = template.function_properties(logical_id)
        if props.get("PackageType") == "Image" or "InlineCode" in props:
            raise TemplateError(f"{logical_id}: only zip functions with a CodeUri directory run locally")
        code_uri = resolver.resolve(props.get("CodeUri"))
        if not isinstance(code_uri, str):
            raise TemplateError(f"{logical_id}: CodeUri must be a local directory, got {code_uri!r}")
        code_dir = (template.directory / code_uri).resolve()
        handler = resolver.resolve(props.get("Handler"))
        if not handler or "." not in handler:
            raise TemplateError(f"{logical_id}: Handler must look like 'app.handler', got {handler!r}")
        variables = resolver.resolve((props.get("Environment") or {}).get("Variables") or {})
        environment = {key: _env_string(value) for key, value in variables.items()}
        specs.append(
            FunctionSpec(
                logical_id=logical_id,
                name=resolver.refs[logical_id],
                arn=resolver.attributes[(logical_id, "Arn")],
                code_dir=code_dir,
                handler=handler,
                timeout=int(resolver.resolve(props.get("Timeout", 3))),
                memory=int(resolver.resolve(props.get("MemorySize", 128))),
                environment=environment,
                events=props.get("Events") or {},
                async_retries=int(resolver.resolve((props.get("EventInvokeConfig") or {}).get("MaximumRetryAttempts", 2))),
                reserved_concurrency=_optional_int(resolver.resolve(props.get("ReservedConcurrentExecutions"))),
            )
        )
    return specs


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _env_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        raise TemplateError(f"environment variable values must be strings, got {value!r}")
    return str(value)


def runtime_environment(specs: list[FunctionSpec], endpoint_url: str, region: str, base: dict[str, str]) -> dict[str, str]:
    """The environment every handler sees: ``base`` (the caller's) + local AWS + the functions' union."""
    union: dict[str, tuple[str, str]] = {}
    conflicts: list[str] = []
    for spec in specs:
        for key, value in spec.environment.items():
            if key in RESERVED:
                conflicts.append(f"{key} is reserved by Lambda (set by {spec.logical_id})")
            elif key in union and union[key][1] != value:
                conflicts.append(f"{key}: {union[key][0]}={union[key][1]!r} but {spec.logical_id}={value!r}")
            else:
                union.setdefault(key, (spec.logical_id, value))
    if conflicts:
        raise TemplateError(
            "handlers share one process locally, so one environment; these variables conflict:\n  " + "\n  ".join(conflicts)
        )
    env = {k: v for k, v in base.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    env.update({key: value for key, (_, value) in union.items()})
    env.update(FAKE_CREDENTIALS)
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            # There is no X-Ray daemon (nor aws-xray-sdk) locally.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    return env


class LambdaContext:
    """The attributes and method of Lambda's Python context object (the runtime's copy; each
    environment builds its own from ``fields()``)."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = spec.memory
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + spec.timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def fields(self) -> dict[str, Any]:
        names = ("function_name", "function_version", "invoked_function_arn", "memory_limit_in_mb", "aws_request_id")
        return {name: getattr(self, name) for name in (*names, "log_group_name", "log_stream_name")} | {
            "remaining_ms": self.get_remaining_time_in_millis()
        }


class FunctionThrottled(FunctionError):
    """Every environment of the function stayed busy for as long as the caller could wait."""


class _Channel:
    """A running environment process as the runtime sees it: where to write, where to read, and the
    process (``poll``/``kill``)."""

    def __init__(self, reader: Any, writer: Any, process: Any, close_input: Any) -> None:
        self.reader, self.writer, self.process, self.close_input = reader, writer, process, close_input


class SpawnLauncher:
    """Each environment a new ``python -m local_stack.environment`` process (any OS)."""

    def __init__(self, environment: dict[str, str]) -> None:
        self.environment = environment

    def launch(self) -> _Channel:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "local_stack.environment"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.environment,
        )
        return _Channel(process.stdout, process.stdin, process, process.stdin.close)  # type: ignore[union-attr]

    def stop(self) -> None:
        pass


class _ForkedProcess:
    """``poll``/``kill``/``wait`` for a process the zygote forked (the kernel reaps it: no exit code)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = -1
            except PermissionError:
                pass
        return self.returncode

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            time.sleep(0.01)
        return self.returncode  # type: ignore[return-value]


class ZygoteLauncher:
    """Linux: one ``python -m local_stack.environment --zygote`` process imports every handler once
    (which is also the start-up import check: ``failures``), then forks each environment on request;
    the child imports its handler module afresh (see ``environment.zygote_main``). A cold start then
    costs milliseconds instead of the libraries' import time."""

    def __init__(self, functions: list[LambdaFunction], environment: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "local_stack.environment", "--zygote", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=environment,
        )
        theirs.close()
        self._control = ours
        self._lock = threading.Lock()
        self._fallback = SpawnLauncher(environment)  # should the zygote die
        self._gone = False
        try:
            ours.send(json.dumps({"functions": [f.init_message() for f in functions]}).encode("utf-8"))
            reply = ours.recv(1 << 22)
        except OSError:
            reply = b""
        if not reply:
            self.stop()
            raise FunctionError("the execution environment zygote exited while importing the handlers")
        answer = json.loads(reply)
        by_module = {f.module_name: f.logical_id for f in functions}
        self.failures: dict[str, dict[str, str]] = {
            by_module.get(module, module): failure for module, failure in answer["failures"].items()
        }
        self.forkable = answer.get("threads") == 1

    def launch(self) -> _Channel:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                socket.send_fds(self._control, [b"fork"], [theirs.fileno()])
                reply = self._control.recv(4096)
        except OSError:
            reply = b""
        finally:
            theirs.close()
        if not reply:
            mine.close()
            if not self._gone:
                self._gone = True
                log.error("the execution environment zygote is gone (exit code %s): spawning environments", self._process.poll())
            return self._fallback.launch()
        pid = json.loads(reply)["pid"]

        def close_input() -> None:
            with contextlib.suppress(OSError):
                mine.shutdown(socket.SHUT_WR)
            mine.close()  # the makefile()s keep the socket open until they are closed too

        return _Channel(mine.makefile("rb"), mine.makefile("wb"), _ForkedProcess(pid), close_input)

    def stop(self) -> None:
        """The zygote exits when its control socket closes (the environments it forked live on until
        the runtime stops them)."""
        with contextlib.suppress(OSError):
            self._control.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def start_zygote(functions: list[LambdaFunction], environment: dict[str, str]) -> ZygoteLauncher | None:
    """A ``ZygoteLauncher`` where fork and SCM_RIGHTS are safe (Linux); None elsewhere."""
    if not sys.platform.startswith("linux") or not hasattr(socket, "send_fds"):
        return None
    zygote = ZygoteLauncher(functions, environment)
    if not zygote.forkable and not zygote.failures:
        log.warning("a handler's import left a thread running: environments are spawned, not forked")
        zygote.stop()
        return None
    return zygote


class ExecutionEnvironment:
    """One execution environment: a process that imported the handler (its own module state, its own
    layer caches and clients, its own Powertools state) and runs one invocation at a time. Started by
    the function's launcher: a fork of the zygote (Linux) or a new ``python -m local_stack.environment``."""

    def __init__(self, function: LambdaFunction, number: int) -> None:
        self.function = function
        self.id = f"{function.logical_id}-{number}-{uuid.uuid4().hex[:8]}"
        self.last_used = time.monotonic()
        self.invocations = 0
        assert function.launcher is not None
        self._channel = function.launcher.launch()
        self._process = self._channel.process
        try:
            reply = self._exchange(function.init_message())
        except FunctionError:
            self.stop()
            raise
        if not reply.get("ready"):
            self.stop()
            log.error("%s: init failed in environment %s:\n%s", function.logical_id, self.id, reply.get("traceback", ""))
            raise FunctionError(f"Runtime.ImportModuleError in {function.logical_id}: {reply.get('error')}")

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def _exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            self._channel.writer.write(json.dumps(message).encode("utf-8") + b"\n")
            self._channel.writer.flush()
            line = self._channel.reader.readline()
        except (OSError, ValueError):  # ValueError: the stream was closed by stop()
            line = b""
        if not line:
            code = self._process.poll()
            raise FunctionError(f"Runtime.ExitError in {self.function.logical_id} (environment {self.id} exited, code {code})")
        return json.loads(line)

    def invoke(self, event: Any, context: LambdaContext) -> dict[str, Any]:
        self.invocations += 1
        try:
            return self._exchange({"event": event, "context": context.fields()})
        finally:
            self.last_used = time.monotonic()

    def stop(self, grace: float = 5.0) -> None:
        """End of input: the process exits after the invocation it may be running; killed after ``grace`` s."""
        with contextlib.suppress(OSError, ValueError):
            self._channel.writer.close()
        with contextlib.suppress(OSError, ValueError):
            self._channel.close_input()
        try:
            self._process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        with contextlib.suppress(OSError, ValueError):
            self._channel.reader.close()


class EnvironmentPool:
    """A function's execution environments: up to ``size`` at once (its concurrency), the warmest idle
    one reused first, a new one started when all are busy, and past ``size`` the caller waits (in
    arrival order) for one to be free. Environments idle longer than ``idle_seconds`` are stopped."""

    def __init__(self, function: LambdaFunction, size: int, idle_seconds: float = IDLE_ENVIRONMENT_SECONDS) -> None:
        self.function = function
        self.size = size
        self.idle_seconds = idle_seconds
        self._condition = threading.Condition()
        self._idle: list[ExecutionEnvironment] = []
        self._busy: set[ExecutionEnvironment] = set()
        self._starting = 0
        self._started = 0
        self._closed = False
        self._queue: collections.deque[object] = collections.deque()  # waiting callers, first come first served

    def acquire(self, wait: float | None = None) -> ExecutionEnvironment:
        """A free environment (a warm one, else a new one while under ``size``), waiting in line for
        at most ``wait`` seconds (None: as long as it takes), else ``FunctionThrottled``."""
        deadline = None if wait is None else time.monotonic() + wait
        ticket = object()
        with self._condition:
            self._queue.append(ticket)
            try:
                while True:
                    if self._closed:
                        raise FunctionError(f"{self.function.logical_id} is not loaded")
                    if self._queue[0] is ticket:
                        self._reap_locked()
                        while self._idle:
                            environment = self._idle.pop()
                            if environment.alive:
                                self._busy.add(environment)
                                return environment
                            environment.stop(grace=0)
                        if len(self._busy) + self._starting < self.size:
                            self._starting += 1
                            self._started += 1
                            number = self._started
                            break
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise FunctionThrottled(f"{self.function.logical_id}: all {self.size} environments busy")
                    self._condition.wait(remaining)
            finally:
                self._queue.remove(ticket)
                self._condition.notify_all()  # the next in line may go now
        try:
            environment = ExecutionEnvironment(self.function, number)  # a cold start, outside the lock
        except BaseException:
            with self._condition:
                self._starting -= 1
                self._condition.notify_all()
            raise
        log.info("%s: cold start of environment %s", self.function.logical_id, environment.id)
        with self._condition:
            self._starting -= 1
            if self._closed:
                environment.stop(grace=0)
                raise FunctionError(f"{self.function.logical_id} is not loaded")
            self._busy.add(environment)
        return environment

    def release(self, environment: ExecutionEnvironment, reusable: bool) -> None:
        with self._condition:
            self._busy.discard(environment)
            keep = reusable and environment.alive and not self._closed
            if keep:
                self._idle.append(environment)
            self._condition.notify_all()
        if not keep:
            environment.stop(grace=1.0)

    def reap(self) -> None:
        """Stop the environments idle longer than ``idle_seconds`` (the stack calls this every minute)."""
        with self._condition:
            self._reap_locked()

    def _reap_locked(self) -> None:
        now = time.monotonic()
        stale = [e for e in self._idle if now - e.last_used > self.idle_seconds]
        for environment in stale:
            self._idle.remove(environment)
            threading.Thread(target=environment.stop, name="environment-stop", daemon=True).start()

    def environment_ids(self) -> list[str]:
        with self._condition:
            return sorted(e.id for e in [*self._idle, *self._busy])

    def close(self) -> None:
        """Stop every environment (a running invocation gets up to 5 s to finish, then its process is
        killed and its caller gets a FunctionError)."""
        with self._condition:
            self._closed = True
            environments = [*self._idle, *self._busy]
            self._idle.clear()
            self._condition.notify_all()
        stoppers = [threading.Thread(target=e.stop, daemon=True) for e in environments]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()


class LambdaFunction:
    """A template function, invoked in its own execution environments (``EnvironmentPool``), which its
    launcher starts (the stack's ``ZygoteLauncher`` on Linux, else a ``SpawnLauncher``)."""

    def __init__(self, spec: FunctionSpec, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.spec = spec
        self.module_name = f"{MODULE_PREFIX}.{spec.logical_id}.{spec.handler.rsplit('.', 1)[0]}"
        self.launcher: SpawnLauncher | ZygoteLauncher | None = None
        self._module: ModuleType | None = None
        reserved = spec.reserved_concurrency
        self.concurrency = concurrency if reserved is None else min(reserved, concurrency)
        self.pool: EnvironmentPool | None = None

    @property
    def logical_id(self) -> str:
        return self.spec.logical_id

    def init_message(self) -> dict[str, Any]:
        attribute = self.spec.handler.rsplit(".", 1)[1]
        return {"module": self.module_name, "file": str(self.handler_file), "attribute": attribute}

    @property
    def handler_file(self) -> Path:
        module_path = self.spec.handler.rsplit(".", 1)[0]
        return self.spec.code_dir / (module_path.replace(".", "/") + ".py")

    def load(self, launcher: SpawnLauncher | ZygoteLauncher | None = None) -> None:
        """Get ready to start execution environments. With a ``launcher`` (the stack's zygote, which
        has imported the handler already) that is all; without, the handler is imported here (its
        errors stop the start) and each environment is a new process with ``os.environ`` as it is
        now (the stack has set it)."""
        file = self.handler_file
        if not file.is_file():
            raise FunctionError(f"{self.logical_id}: handler file not found: {file}")
        if launcher is not None:
            self.launcher = launcher
            self.pool = EnvironmentPool(self, self.concurrency)
            return
        attribute = self.spec.handler.rsplit(".", 1)[1]
        spec = importlib.util.spec_from_file_location(self.module_name, file)
        if spec is None or spec.loader is None:
            raise FunctionError(f"{self.logical_id}: cannot load {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[self.module_name] = module  # dataclasses/pydantic look their module up by name
        try:
            with _load_lock:
                spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(self.module_name, None)
            raise
        if not callable(getattr(module, attribute, None)):
            sys.modules.pop(self.module_name, None)
            raise FunctionError(f"{self.logical_id}: {file} has no callable {attribute!r}")
        self._module = module
        self.launcher = SpawnLauncher(dict(os.environ) | {"PYTHONUNBUFFERED": "1"})
        self.pool = EnvironmentPool(self, self.concurrency)

    def unload(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        self.launcher = None
        if self._module is not None and sys.modules.get(self.module_name) is self._module:
            del sys.modules[self.module_name]
        self._module = None

    def invoke(self, event: Any, wait: float | None = None) -> Any:
        """Run the handler on ``event`` in a free execution environment, as Lambda would; raises
        ``FunctionError`` when it fails, ``FunctionThrottled`` when no environment was free within
        ``wait`` seconds (None: wait as long as it takes).

        The traceback goes to stderr; the event and the result are never logged (they may hold PHI).
        """
        pool = self.pool
        if pool is None:
            raise FunctionError(f"{self.logical_id} is not loaded")
        if self.concurrency <= 0:
            raise FunctionThrottled(f"{self.logical_id}: ReservedConcurrentExecutions is 0")
        payload = json.loads(json.dumps(event))
        environment = pool.acquire(wait)
        context = LambdaContext(self.spec)
        started = time.monotonic()
        reusable = False
        try:
            reply = environment.invoke(payload, context)
            reusable = True
        except FunctionError:
            log.error("%s: environment %s ended during request %s", self.logical_id, environment.id, context.aws_request_id)
            raise
        finally:
            pool.release(environment, reusable)
            elapsed = time.monotonic() - started
            if elapsed > self.spec.timeout:
                log.warning(
                    "%s ran %.1f s, over its Timeout of %d s (Lambda would have stopped it)",
                    self.logical_id,
                    elapsed,
                    self.spec.timeout,
                )
        if not reply.get("ok"):
            error = reply.get("error", "Error")
            if error == "Runtime.MarshalError":
                log.error("%s returned a value that is not JSON-serialisable: %s", self.logical_id, reply.get("traceback", ""))
            else:
                log.error("%s failed (request %s):\n%s", self.logical_id, context.aws_request_id, reply.get("traceback", ""))
            raise FunctionError(f"{error} in {self.logical_id}")
        return reply.get("result")
