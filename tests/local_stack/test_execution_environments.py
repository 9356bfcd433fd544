"""lambda_runtime's execution environments without a stack: one process per environment, warm
reuse, the concurrency bound, and what happens when a handler crashes or returns non-JSON."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack.lambda_runtime import FunctionError, FunctionSpec, FunctionThrottled, LambdaFunction

HANDLER = textwrap.dedent(
    """
    import os

    invocations = 0  # module state: per execution environment

    def handler(event, context):
        global invocations
        invocations += 1
        if event.get("exit"):
            os._exit(3)
        if event.get("not_json"):
            return {1, 2}
        if event.get("raise"):
            raise ValueError("raised on purpose")
        return {"pid": os.getpid(), "invocations": invocations, "remaining_ms": context.get_remaining_time_in_millis()}
    """
)


@pytest.fixture
def function(tmp_path: Path) -> Iterator[LambdaFunction]:
    (tmp_path / "app.py").write_text(HANDLER)
    spec = FunctionSpec(
        logical_id="CounterFunction",
        name="local-CounterFunction",
        arn="arn:aws:lambda:us-east-1:123456789012:function:local-CounterFunction",
        code_dir=tmp_path,
        handler="app.handler",
        timeout=10,
        memory=128,
        environment={},
    )
    loaded = LambdaFunction(spec, concurrency=1)
    loaded.load()
    try:
        yield loaded
    finally:
        loaded.unload()


def test_an_environment_is_a_process_reused_while_warm(function: LambdaFunction) -> None:
    first = function.invoke({})
    second = function.invoke({})
    assert second["pid"] == first["pid"]
    assert (first["invocations"], second["invocations"]) == (1, 2)  # module state kept between invocations
    assert 0 < first["remaining_ms"] <= 10_000
    assert len(function.pool.environment_ids()) == 1  # type: ignore[union-attr]


def test_past_the_concurrency_an_invocation_waits_then_is_throttled(function: LambdaFunction) -> None:
    pool = function.pool
    assert pool is not None
    busy = pool.acquire()
    try:
        with pytest.raises(FunctionThrottled):
            function.invoke({}, wait=0.2)
    finally:
        pool.release(busy, reusable=True)
    assert function.invoke({})["invocations"] == 1  # the queued-out call never ran in it


def test_a_crashed_environment_fails_its_invocation_and_is_replaced(function: LambdaFunction) -> None:
    before = function.invoke({})
    with pytest.raises(FunctionError, match="Runtime.ExitError"):
        function.invoke({"exit": True})
    after = function.invoke({})
    assert after["pid"] != before["pid"] and after["invocations"] == 1


def test_handler_errors_and_non_json_results_fail_the_invocation_not_the_environment(function: LambdaFunction) -> None:
    before = function.invoke({})
    with pytest.raises(FunctionError, match="ValueError in CounterFunction"):
        function.invoke({"raise": True})
    with pytest.raises(FunctionError, match="Runtime.MarshalError"):
        function.invoke({"not_json": True})
    after = function.invoke({})
    assert after["pid"] == before["pid"] and after["invocations"] == 4


def test_a_handler_that_cannot_start_reports_its_import_error(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("import os\nif os.environ.get('LOCAL_STACK_TEST_BREAK'):\n    raise RuntimeError('broken at import')\ndef handler(e, c):\n    return 1\n")
    spec = FunctionSpec("Broken", "local-Broken", "arn:aws:lambda:us-east-1:1:function:b", tmp_path, "app.handler", 3, 128, {})
    broken = LambdaFunction(spec)
    broken.load()
    broken.process_environment["LOCAL_STACK_TEST_BREAK"] = "1"  # only the environments' processes see it
    try:
        with pytest.raises(FunctionError, match="ImportModuleError.*broken at import"):
            broken.invoke({})
    finally:
        broken.unload()
