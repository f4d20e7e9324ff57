"""Receivers for webhook tests: a real HTTP server on 127.0.0.1, and an in-process transport."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from conftest import FakeClock
from discretion import Guard, SqlStore
from discretion.webhooks import Deliverer, WebhookEndpoint

SECRET = "whsec-test-0123456789abcdef"
ENV = {"DISCRETION_WEBHOOK_SECRET": SECRET}


@dataclass
class Received:
    """One request a receiver got."""

    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Inbox:
    """What a receiver answers (statuses, in turn; then 200) and what it got."""

    statuses: list[int] = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    on_request: Callable[[Received], None] | None = None

    def answer(self, received: Received) -> int:
        self.got.append(received)
        if self.on_request is not None:
            self.on_request(received)
        return self.statuses.pop(0) if self.statuses else 200

    def events(self, url: str | None = None) -> list[dict[str, Any]]:
        return [r.event for r in self.got if url is None or r.url == url]

    def types(self, url: str | None = None) -> list[str]:
        return [e["type"] for e in self.events(url)]


class RealReceiver:
    """An HTTP server on 127.0.0.1 in a thread, recording every POST."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        inbox = self.inbox

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                url = f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"
                status = inbox.answer(Received(url, dict(self.headers.items()), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def real_receiver() -> Iterator[RealReceiver]:
    receiver = RealReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def client(inbox: Inbox) -> Iterator[httpx.Client]:
    """An HTTP client whose requests reach `inbox` in-process."""

    def handle(request: httpx.Request) -> httpx.Response:
        received = Received(str(request.url), dict(request.headers.items()), request.read())
        return httpx.Response(inbox.answer(received))

    with httpx.Client(transport=httpx.MockTransport(handle)) as c:
        yield c


class Waits:
    """tenacity's sleep, recorded instead of slept."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture
def waits() -> Waits:
    return Waits()


@pytest.fixture
def make_deliverer(
    store: SqlStore, clock: FakeClock, client: httpx.Client, waits: Waits
) -> Callable[..., Deliverer]:
    def make(*specs: str, **kwargs: Any) -> Deliverer:
        kwargs.setdefault("environ", ENV)
        kwargs.setdefault("client", client)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("sleep", waits)
        kwargs.setdefault("owner", "worker-a")
        endpoints = [WebhookEndpoint.parse(spec) for spec in specs or ("https://hooks.test/a",)]
        return Deliverer(store, endpoints, **kwargs)

    return make


@pytest.fixture
def guard(make_guard: Callable[..., Guard]) -> Guard:
    return make_guard()
