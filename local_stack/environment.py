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
handler's own imports cost.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
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


def _protocol_streams() -> tuple[IO[bytes], IO[bytes]]:
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)  # print() and C-level writes to stdout go to the log stream
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


def main() -> int:
    # Ctrl-C in a terminal reaches the whole process group: the stack stops gracefully and ends this
    # process by closing its input, after the invocation it may be running.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, replies = _protocol_streams()
    line = requests.readline()
    if not line:
        return 0
    try:
        handler = _load(json.loads(line))
    except BaseException as exc:  # noqa: BLE001 - reported to the runtime, which stops the start
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


def _traceback(exc: BaseException) -> str:
    """The handler's traceback (its own frames and messages; the event itself is never printed)."""
    return "".join(traceback.format_exception(exc)).rstrip()


if __name__ == "__main__":
    sys.exit(main())
