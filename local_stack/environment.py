"""One Lambda execution environment: a Python process that imports one handler and runs its
invocations one at a time (``python -m local_stack.environment``; started by ``lambda_runtime``).

Protocol, one JSON document per line (UTF-8). The process reads from its standard input a copy the
runtime gave it, and answers on a copy of its standard output; file descriptors 0 and 1 themselves are
re-pointed (``/dev/null``, stderr) so that a handler that reads or prints cannot corrupt the protocol
(what it prints ends up in the stack's log stream, as Lambda sends stdout and stderr to CloudWatch).

1. init: ``{"module": <name>, "file": <path>, "attribute": <attr>}`` → ``{"ready": true}``, or
   ``{"ready": false, "error": "<Type>: <message>", "traceback": "..."}`` and the process exits 1.
2. each invocation: ``{"event": ..., "context": {<LambdaContext fields>, "remaining_ms": N}}`` →
   ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "<Type>", "traceback": "..."}``
   (``Runtime.MarshalError`` when the result is not JSON-serialisable).
3. end of input: the process exits 0 (it ignores SIGINT: the stack decides when it ends). A handler that exits the process (``sys.exit``, a crash)
   ends the environment; the runtime reports ``Runtime.ExitError`` and starts a new one next time.

Only the standard library is imported here before the handler, so a cold start costs what the
handler's own imports cost. On Linux the stack starts environments from a zygote instead
(``zygote_main``): one process that imported every handler's libraries forks each environment,
which then imports its own handler module; the protocol is the same, over a socket.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import IO, Any


class LambdaContext:
    """The attributes and method of Lambda's Python context object, as the runtime sent them."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.function_name = fields["function_name"]
        self.function_version = fields["function_version"]
        self.invoked_function_arn = fields["invoked_function_arn"]
        self.memory_limit_in_mb = fields["memory_limit_in_mb"]
        self.aws_request_id = fields["aws_request_id"]
        self.log_group_name = fields["log_group_name"]
        self.log_stream_name = fields["log_stream_name"]
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline = time.monotonic() + fields["remaining_ms"] / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _redirect_stdio() -> None:
    """fd 0 reads nothing; fd 1 (``print()``, C-level writes) goes to fd 2, the stack's log stream."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)


def _protocol_streams() -> tuple[IO[bytes], IO[bytes]]:
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    _redirect_stdio()
    return requests, replies


def _send(replies: IO[bytes], message: dict[str, Any]) -> None:
    replies.write(json.dumps(message).encode("utf-8") + b"\n")
    replies.flush()


def _load(init: dict[str, Any]) -> Any:
    spec = importlib.util.spec_from_file_location(init["module"], init["file"])
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {init['file']}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[init["module"]] = module  # dataclasses/pydantic look their module up by name
    spec.loader.exec_module(module)
    handler = getattr(module, init["attribute"], None)
    if not callable(handler):
        raise AttributeError(f"{init['file']} has no callable {init['attribute']!r}")
    return handler


def _serve(requests: IO[bytes], replies: IO[bytes]) -> int:
    """The init message, then invocations until end of input."""
    line = requests.readline()
    if not line:
        return 0
    try:
        handler = _load(json.loads(line))
    except BaseException as exc:  # noqa: BLE001 - reported to the runtime
        _send(replies, {"ready": False, "error": f"{type(exc).__name__}: {exc}", "traceback": _traceback(exc)})
        return 1
    _send(replies, {"ready": True})
    for line in requests:
        message = json.loads(line)
        context = LambdaContext(message["context"])
        try:
            result = handler(message["event"], context)
        except Exception as exc:  # noqa: BLE001 - the invocation fails, the environment lives on
            _send(replies, {"ok": False, "error": type(exc).__name__, "traceback": _traceback(exc)})
            continue
        try:
            encoded = json.dumps(result)
        except (TypeError, ValueError) as exc:
            _send(replies, {"ok": False, "error": "Runtime.MarshalError", "traceback": f"{type(exc).__name__}: {exc}"})
            continue
        replies.write(b'{"ok": true, "result": ' + encoded.encode("utf-8") + b"}\n")
        replies.flush()
    return 0


def _exit(code: int) -> None:
    """Leave at once, as Lambda ends an environment: no waiting on threads a library left running."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def main() -> None:
    """One environment in this process (``python -m local_stack.environment``)."""
    # Ctrl-C in a terminal reaches the whole process group: the stack stops gracefully and ends this
    # process by closing its input, after the invocation it may be running.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, replies = _protocol_streams()
    _exit(_serve(requests, replies))


def zygote_main(control_fd: int) -> None:
    """``python -m local_stack.environment --zygote FD`` (Linux): import every handler once, so that the
    libraries they use are loaded, forget the handler modules themselves, then fork one process per
    environment on request. A child starts from the libraries already imported and imports its
    handler module afresh: its module state is its own, and a cold start costs milliseconds.

    Control socket (SOCK_SEQPACKET): first ``{"functions": [<init>...]}`` → ``{"failures": {module:
    {"error", "traceback"}}}``; then each ``fork`` message carries one end of a stream socket (SCM_RIGHTS)
    → ``{"pid": N}``, and the child speaks the environment protocol on that socket."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _redirect_stdio()
    control = socket.socket(fileno=control_fd)
    functions = json.loads(control.recv(1 << 22))["functions"]
    failures: dict[str, dict[str, str]] = {}
    for init in functions:
        try:
            _load(init)
        except BaseException as exc:  # noqa: BLE001 - reported to the stack, which stops the start
            failures[init["module"]] = {"error": f"{type(exc).__name__}: {exc}", "traceback": _traceback(exc)[-8000:]}
        finally:
            sys.modules.pop(init["module"], None)
    # fork copies only the calling thread: if an import left a thread running, the stack spawns instead
    control.send(json.dumps({"failures": failures, "threads": threading.active_count()}).encode("utf-8"))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    gc.collect()
    gc.freeze()  # keep the preloaded objects' pages shared with the children
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 64, 1)
        except OSError:
            break
        if not message:
            break  # the stack closed the control socket
        if not fds:
            continue
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                control.close()
                connection = socket.socket(fileno=fds[0])
                code = _serve(connection.makefile("rb"), connection.makefile("wb"))
            finally:
                _exit(code)
        os.close(fds[0])
        control.send(json.dumps({"pid": pid}).encode("utf-8"))
    _exit(0)


def _traceback(exc: BaseException) -> str:
    """The handler's traceback (its own frames and messages; the event itself is never printed)."""
    return "".join(traceback.format_exception(exc)).rstrip()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--zygote":
        zygote_main(int(sys.argv[2]))
    main()
