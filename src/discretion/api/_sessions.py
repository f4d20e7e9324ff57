"""Signed-in sessions of the approver web UI, with their CSRF tokens.

Signing in exchanges an approver's bearer token for a session: a random cookie value (only its
SHA-256 is stored) that is `HttpOnly` and `SameSite=Strict`, and a CSRF token that every form of
the session carries and the server compares in constant time. A session ends when it expires,
when its approver signs out, or when the bearer token it was opened with is revoked.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from discretion.api._auth import Identity, identity_of, token_digest
from discretion.store import SqlStore

__all__ = ["Session", "Sessions", "same_secret"]


def same_secret(given: str | None, expected: str) -> bool:
    """Compare a submitted secret with the expected one in constant time."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A signed-in approver."""

    identity: Identity
    """Who signed in, from the token they signed in with."""
    csrf: str
    """The token every form of this session must carry."""


class Sessions:
    """Opens, finds and ends UI sessions in the store."""

    def __init__(self, store: SqlStore, *, clock: Callable[[], datetime], ttl: timedelta) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl

    @property
    def ttl(self) -> timedelta:
        """How long a session lasts."""
        return self._ttl

    def open(self, identity: Identity) -> tuple[str, Session]:
        """Open a session; return the cookie value (shown only now) and the session."""
        cookie = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = self._clock()
        with self._store.transaction() as tx:
            tx.identities.add_session(
                digest=token_digest(cookie),
                token_id=identity.token_id,
                csrf=csrf,
                created_at=now,
                expires_at=now + self._ttl,
            )
        return cookie, Session(identity=identity, csrf=csrf)

    def find(self, cookie: str | None) -> Session | None:
        """The live session of a cookie value, if any."""
        if not cookie or len(cookie) > 100:
            return None
        row = self._store.identities.find_session(token_digest(cookie), now=self._clock())
        if row is None:
            return None
        return Session(identity=identity_of(row.token), csrf=row.csrf)

    def close(self, cookie: str | None) -> None:
        """End the session of a cookie value."""
        if not cookie:
            return
        with self._store.transaction() as tx:
            tx.identities.remove_session(token_digest(cookie), at=self._clock())
