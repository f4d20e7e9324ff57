"""Limits on what a request may cost: body size, JSON nesting, and failed sign-ins.

`RequestLimits` is ASGI middleware: a body over `max_body_bytes` is answered 413 before any
route reads it, and a JSON body nested deeper than `max_json_depth` is answered 422 before it
is parsed (Python's parser recurses, so a deep enough document would exhaust the stack).
`SignInThrottle` counts failed sign-ins per client address over a window, on the app's clock.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from datetime import datetime, timedelta

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from discretion.types import Clock

__all__ = ["RequestLimits", "SignInThrottle"]

_MAX_CLIENTS = 10_000
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def json_depth(body: bytes) -> int:
    """How deeply a JSON text nests, without parsing it (brackets inside strings ignored)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b"", body)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class RequestLimits:
    """Refuses oversized and over-nested request bodies with a `Problem`.

    Args:
        app: the ASGI app to protect.
        max_body_bytes: the largest body accepted; larger ones get 413 `too_large`.
        max_json_depth: the deepest JSON nesting accepted; deeper gets 422 `invalid_input`.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_json_depth: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body (up to the limit) first, then hand it to the app unchanged."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(send, 413, "too_large", self._too_large())
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away: let the app see it as it would have.
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._refuse(send, 413, "too_large", self._too_large())
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if b"json" in headers.get(b"content-type", b"").lower() and (
            json_depth(body) > self.max_json_depth
        ):
            await self._refuse(
                send,
                422,
                "invalid_input",
                f"the JSON body nests deeper than {self.max_json_depth} levels; send flat JSON",
            )
            return
        await self.app(scope, _replay([{"type": "http.request", "body": body}], receive), send)

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_body_bytes} bytes; send less"

    @staticmethod
    async def _refuse(send: Send, status: int, error: str, message: str) -> None:
        body = json.dumps({"error": error, "message": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], then: Receive) -> Receive:
    """Hands the app the messages already read, then the server's own `receive`.

    After the body, the server's `receive` waits until the client really goes away. Answering
    `http.disconnect` at once instead would tell a streaming response (a static file, say) that
    nobody is listening, and it would stop after its headers.
    """
    pending = deque(messages)

    async def receive() -> Message:
        if pending:
            return pending.popleft()
        return await then()

    return receive


class SignInThrottle:
    """Allows `max_failures` failed sign-ins per client address per `window`.

    Kept in memory, per process: behind several processes each counts its own attempts.
    Tokens have 256 bits of entropy, so the throttle is there to make guessing loud and slow,
    not to make it impossible.
    """

    def __init__(self, clock: Clock, *, max_failures: int = 5, window: timedelta) -> None:
        self._clock = clock
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: datetime) -> deque[datetime]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, client: str) -> timedelta | None:
        """How long `client` must wait before trying again; None when it may try now."""
        now = self._clock()
        with self._lock:
            failures = self._recent(client, now)
            if len(failures) < self.max_failures:
                return None
            return failures[0] + self.window - now

    def failed(self, client: str) -> None:
        """Count a failed sign-in from `client`."""
        now = self._clock()
        with self._lock:
            if len(self._failures) >= _MAX_CLIENTS:
                # Bound the memory a spray of addresses can take: forget the quiet ones.
                for quiet in [c for c in self._failures if not self._recent(c, now)]:
                    del self._failures[quiet]
            self._recent(client, now).append(now)

    def succeeded(self, client: str) -> None:
        """Forget `client`'s failures."""
        with self._lock:
            self._failures.pop(client, None)
