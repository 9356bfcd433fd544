"""lambda_runtime's execution environments without a stack: one process per environment, warm
reuse, the concurrency bound, and what happens when a handler crashes or returns non-JSON."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from local_stack.lambda_runtime import (
    FunctionError,
    FunctionSpec,
    FunctionThrottled,
    LambdaContext,
    LambdaFunction,
    SpawnLauncher,
    start_zygote,
)

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


def _spec(code_dir: Path, logical_id: str = "CounterFunction") -> FunctionSpec:
    return FunctionSpec(
        logical_id=logical_id,
        name=f"local-{logical_id}",
        arn=f"arn:aws:lambda:us-east-1:123456789012:function:local-{logical_id}",
        code_dir=code_dir,
        handler="app.handler",
        timeout=10,
        memory=128,
        environment={},
    )


LAUNCHERS = ["spawn", pytest.param("zygote", marks=pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only"))]


@pytest.fixture(params=LAUNCHERS)
def function(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LambdaFunction]:
    (tmp_path / "app.py").write_text(HANDLER)
    loaded = LambdaFunction(_spec(tmp_path), concurrency=1)
    zygote = start_zygote([loaded], dict(os.environ)) if request.param == "zygote" else None
    if request.param == "zygote":
        assert zygote is not None and zygote.failures == {}
    loaded.load(zygote)
    try:
        yield loaded
    finally:
        loaded.unload()
        if zygote is not None:
            zygote.stop()


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
    broken = LambdaFunction(_spec(tmp_path, "Broken"))
    broken.load()
    assert isinstance(broken.launcher, SpawnLauncher)
    broken.launcher.environment["LOCAL_STACK_TEST_BREAK"] = "1"  # only the environments' processes see it
    try:
        with pytest.raises(FunctionError, match="ImportModuleError.*broken at import"):
            broken.invoke({})
    finally:
        broken.unload()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_the_zygote_reports_every_handler_that_fails_to_import(tmp_path: Path) -> None:
    (tmp_path / "good").mkdir()
    (tmp_path / "good" / "app.py").write_text(HANDLER)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "app.py").write_text("import no_such_module_for_zygote_tests\n")
    functions = [LambdaFunction(_spec(tmp_path / "good", "Good")), LambdaFunction(_spec(tmp_path / "bad", "Bad"))]
    zygote = start_zygote(functions, dict(os.environ))
    assert zygote is not None
    try:
        assert list(zygote.failures) == ["Bad"]
        assert "no_such_module_for_zygote_tests" in zygote.failures["Bad"]["error"]
        good = functions[0]
        good.load(zygote)
        try:
            first, second = good.invoke({}), good.invoke({})
            assert first["pid"] == second["pid"] != os.getpid() and second["invocations"] == 2
        finally:
            good.unload()
    finally:
        zygote.stop()


def test_environments_of_one_function_are_separate_processes_with_their_own_module_state(function: LambdaFunction) -> None:
    pool = function.pool
    assert pool is not None
    pool.size = 2
    first = pool.acquire()
    second = pool.acquire()  # the first is busy: a second environment starts
    try:
        assert first.id != second.id
        replies = [e.invoke({}, LambdaContext(function.spec))["result"] for e in (first, first, second)]
    finally:
        pool.release(first, reusable=True)
        pool.release(second, reusable=True)
    assert replies[0]["pid"] == replies[1]["pid"] != replies[2]["pid"]
    assert [r["invocations"] for r in replies] == [1, 2, 1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_no_zygote_when_an_import_leaves_a_thread_running(tmp_path: Path) -> None:
    """fork would copy only the forking thread, so such handlers get spawned environments."""
    (tmp_path / "app.py").write_text("import threading\nthreading.Thread(target=threading.Event().wait, daemon=True).start()\n" + HANDLER)
    function = LambdaFunction(_spec(tmp_path))
    assert start_zygote([function], dict(os.environ)) is None


def test_waiting_invocations_are_served_in_arrival_order(function: LambdaFunction) -> None:
    """Past the concurrency, callers queue: a caller arriving later never overtakes one waiting."""
    pool = function.pool
    assert pool is not None
    busy = pool.acquire()
    served: list[str] = []
    lock = threading.Lock()

    def caller(name: str) -> None:
        environment = pool.acquire(wait=60)
        with lock:
            served.append(name)
        pool.release(environment, reusable=True)

    first = threading.Thread(target=caller, args=("first",))
    first.start()
    wait_until(lambda: len(pool._queue) == 1)  # noqa: SLF001 - the first caller is in line
    second = threading.Thread(target=caller, args=("second",))
    second.start()
    wait_until(lambda: len(pool._queue) == 2)  # noqa: SLF001
    pool.release(busy, reusable=True)
    first.join(timeout=30)
    second.join(timeout=30)
    assert served == ["first", "second"]


def wait_until(probe: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
def test_environments_are_spawned_if_the_zygote_dies(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(HANDLER)
    function = LambdaFunction(_spec(tmp_path), concurrency=2)
    zygote = start_zygote([function], dict(os.environ))
    assert zygote is not None
    function.load(zygote)
    try:
        zygote._process.kill()  # noqa: SLF001
        zygote._process.wait()  # noqa: SLF001
        assert function.invoke({})["invocations"] == 1
    finally:
        function.unload()
        zygote.stop()
