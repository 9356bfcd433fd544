"""Load the template's functions into this process and invoke them the way Lambda does.

Data flow: ``function_specs()`` reads every ``AWS::Serverless::Function`` (Properties merged with
``Globals.Function``): code directory (``CodeUri``), ``Handler`` (``app.handler`` → ``app.py``,
attribute ``handler``), timeout, memory, and ``Environment.Variables`` resolved to local values.
``runtime_environment()`` builds the one environment all handlers share (they run in one process):
the union of every function's variables (the same name with two values is an error), plus the
local AWS settings (endpoint, fake credentials, region) and Powertools switches that make sense
locally (no X-Ray daemon: tracing off; metrics off unless the caller's environment says otherwise).
The stack sets it in ``os.environ`` before ``LambdaFunction.load()`` imports any handler module.

Each handler module is loaded by file path under its own module name
(``local_stack.functions.<LogicalId>.app``), so the many ``app.py`` files never collide and no
``sys.path`` entry is added. ``invoke()`` passes a JSON round-trip of the event (what Lambda would
deliver) and a ``LambdaContext``, and JSON-serialises the result (Lambda fails an invocation whose
result is not JSON). Invocations are serialised process-wide: Lambda runs one event per execution
environment at a time, and here all environments share one interpreter, where Powertools keeps the
current event on a class attribute (``BaseRouter.current_event``); running two handlers at once in
threads would mix up their events.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import threading
import time
import traceback
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

# One invocation at a time in this process (see the module docstring).
invocation_lock = threading.RLock()


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
            )
        )
    return specs


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
    """The attributes and method of Lambda's Python context object."""

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


class LambdaFunction:
    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self.module_name = f"{MODULE_PREFIX}.{spec.logical_id}.{spec.handler.rsplit('.', 1)[0]}"
        self._handler: Any = None
        self._module: ModuleType | None = None

    @property
    def logical_id(self) -> str:
        return self.spec.logical_id

    def load(self) -> None:
        module_path, attribute = self.spec.handler.rsplit(".", 1)
        file = self.spec.code_dir / (module_path.replace(".", "/") + ".py")
        if not file.is_file():
            raise FunctionError(f"{self.logical_id}: handler file not found: {file}")
        spec = importlib.util.spec_from_file_location(self.module_name, file)
        if spec is None or spec.loader is None:
            raise FunctionError(f"{self.logical_id}: cannot load {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[self.module_name] = module  # dataclasses/pydantic look their module up by name
        try:
            with invocation_lock:
                spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(self.module_name, None)
            raise
        handler = getattr(module, attribute, None)
        if not callable(handler):
            sys.modules.pop(self.module_name, None)
            raise FunctionError(f"{self.logical_id}: {file} has no callable {attribute!r}")
        self._module, self._handler = module, handler

    def unload(self) -> None:
        if self._module is not None and sys.modules.get(self.module_name) is self._module:
            del sys.modules[self.module_name]
        self._module = self._handler = None

    def invoke(self, event: Any) -> Any:
        """Run the handler on ``event`` as Lambda would; raises ``FunctionError`` when it fails.

        The traceback goes to stderr; the event and the result are never logged (they may hold PHI).
        """
        if self._handler is None:
            raise FunctionError(f"{self.logical_id} is not loaded")
        payload = json.loads(json.dumps(event))
        context = LambdaContext(self.spec)
        with invocation_lock:
            started = time.monotonic()
            try:
                result = self._handler(payload, context)
            except Exception as exc:
                log.error("%s failed (request %s):\n%s", self.logical_id, context.aws_request_id, _traceback(exc))
                raise FunctionError(f"{type(exc).__name__} in {self.logical_id}") from exc
            finally:
                elapsed = time.monotonic() - started
                if elapsed > self.spec.timeout:
                    log.warning(
                        "%s ran %.1f s, over its Timeout of %d s (Lambda would have stopped it)",
                        self.logical_id,
                        elapsed,
                        self.spec.timeout,
                    )
        try:
            return json.loads(json.dumps(result))
        except (TypeError, ValueError) as exc:
            log.error("%s returned a value that is not JSON-serialisable: %s", self.logical_id, type(exc).__name__)
            raise FunctionError(f"Runtime.MarshalError in {self.logical_id}") from exc


def _traceback(exc: BaseException) -> str:
    """The handler's traceback (its own frames and messages; the event itself is never printed)."""
    return "".join(traceback.format_exception(exc)).rstrip()
