"""A served guard with tokens for an agent and a few approvers, for the HTTP tests."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi.testclient import TestClient

from approvals.helpers import MutableFacts
from discretion import Guard, SqlStore
from discretion.api import Tokens

SUBJECTS = {
    "bot": ("bot-1", "ai_agent", True),
    "bot2": ("bot-2", "ai_agent", True),
    "tina": ("tina", "tier1", False),
    "tim": ("tim", "tier1", False),
    "tom": ("tom", "tier2", False),
    "tess": ("tess", "tier2", False),
    "maria": ("maria", "manager", False),
    "ann1": ("ann", "tier1", False),
    "ann2": ("ann", "tier2", False),
}


@dataclass
class Served:
    """The app under test, its guard, and one bearer token per subject."""

    guard: Guard
    store: SqlStore
    facts: MutableFacts
    client: TestClient
    tokens: dict[str, str] = field(default_factory=dict)
    token_ids: dict[str, str] = field(default_factory=dict)

    def issue(self, tokens: Tokens) -> None:
        for name, (subject, role, is_ai) in SUBJECTS.items():
            secret, identity = tokens.create(subject_id=subject, role=role, is_ai=is_ai)
            self.tokens[name] = secret
            self.token_ids[name] = identity.token_id

    def redeploy(self, guard: Guard) -> None:
        """Serve `guard` (another pack over the same store) instead, as a redeploy would."""
        from discretion.api import create_app

        self.guard = guard
        self.client = TestClient(create_app(guard))

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def post(self, path: str, who: str, body: Any) -> Any:
        return self.client.post(path, json=body, headers=self.auth(who))

    def get(self, path: str, who: str) -> Any:
        return self.client.get(path, headers=self.auth(who))


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "no CSRF token in the page"
    return found.group(1)


def sign_in(client: TestClient, token: str) -> Any:
    """Sign in through the form, as a browser would."""
    page = client.get("/ui/sign-in")
    return client.post(
        "/ui/sign-in",
        data={"token": token, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )


@contextmanager
def served_over_http(app: Any) -> Iterator[str]:
    """`app` served by uvicorn on a free localhost port, in a thread; yields its base URL."""
    # Bound before the server starts: the first request waits in the backlog instead of racing
    # the server's start-up, so nothing needs to poll or sleep.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
