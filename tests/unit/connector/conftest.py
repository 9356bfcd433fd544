"""A scripted HTTP server on 127.0.0.1 (real sockets, one thread per connection) and a fake clock.

Each test scripts the replies per (method, path) in order; a reply can be a :class:`Reply` or a
function of the :class:`Seen` request that returns one. Every request that reaches the server is
recorded, so a test can also assert that something was *never* requested.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from fhir_platform.connector import auth


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list → JSON; str/bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0  # seconds to stall before answering (read-timeout cases)
    content_type: str = "application/fhir+json"


@dataclass
class Seen:
    method: str
    path: str  # with the query
    headers: dict[str, str]
    body: bytes

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


Script = Reply | Callable[[Seen], Reply]


class Loopback:
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.errors: list[Exception] = []
        self._routes: dict[tuple[str, str], deque[Script]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
                try:
                    reply = owner._next(seen)
                except Exception as exc:  # a script's own assertion: reported by the fixture
                    owner.errors.append(exc)
                    reply = Reply(599, body="script failed", content_type="text/plain")
                if reply.hang and owner._closing.wait(reply.hang):
                    return
                if isinstance(reply.body, dict | list):
                    payload = json.dumps(reply.body).encode()
                elif isinstance(reply.body, str):
                    payload = reply.body.encode()
                else:
                    payload = reply.body or b""
                try:
                    self.send_response(reply.status)
                    if payload:
                        self.send_header("Content-Type", reply.content_type)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout) and closed the socket
                    pass

            do_GET = do_POST = do_PUT = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, method: str, path: str, *replies: Script) -> None:
        with self._lock:
            self._routes[(method, path)].extend(replies)

    def seen(self, route: str | None = None) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if route is None or r.route == route]

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            queue = self._routes.get((seen.method, seen.route))
            script = queue.popleft() if queue else None
        if script is None:
            return Reply(418, {"resourceType": "OperationOutcome", "issue": [{"code": "not-supported"}]})
        return script(seen) if callable(script) else script

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()


class FakeClock:
    """Monotonic and wall clock at once; ``sleep`` records the wait and moves time on."""

    def __init__(self, start: float = 1_900_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def server() -> Iterator[Loopback]:
    loop = Loopback()
    yield loop
    loop.close()
    if loop.errors:  # an assertion inside a scripted reply (e.g. the token endpoint's checks) failed
        raise loop.errors[0]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def fresh_token_cache() -> Iterator[None]:
    auth.clear_token_cache()
    yield
    auth.clear_token_cache()


def bundle(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "self", "url": "http://example.invalid/self"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [{"resource": r} for r in resources],
    }
