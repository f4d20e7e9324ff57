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

from sqlalchemy import delete, insert, select

from discretion.approvals import Identity
from discretion.approvals._tokens import identity_of, token_digest
from discretion.store import SqlStore
from discretion.store._schema import api_tokens, ui_sessions
from discretion.store._sql import to_us

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
            tx.connection.execute(
                insert(ui_sessions).values(
                    id_hash=token_digest(cookie),
                    token_id=identity.token_id,
                    csrf=csrf,
                    created_us=to_us(now),
                    expires_us=to_us(now + self._ttl),
                )
            )
        return cookie, Session(identity=identity, csrf=csrf)

    def find(self, cookie: str | None) -> Session | None:
        """The live session of a cookie value, if any."""
        if not cookie or len(cookie) > 100:
            return None
        with self._store.reading("sessions") as connection:
            row = connection.execute(
                select(
                    ui_sessions.c.csrf,
                    api_tokens.c.id,
                    api_tokens.c.subject_id,
                    api_tokens.c.role,
                    api_tokens.c.is_ai,
                    api_tokens.c.label,
                )
                .join(api_tokens, api_tokens.c.id == ui_sessions.c.token_id)
                .where(
                    ui_sessions.c.id_hash == token_digest(cookie),
                    ui_sessions.c.expires_us > to_us(self._clock()),
                    api_tokens.c.revoked_us.is_(None),
                )
            ).first()
        if row is None:
            return None
        return Session(identity=identity_of(row), csrf=row.csrf)

    def close(self, cookie: str | None) -> None:
        """End the session of a cookie value."""
        if not cookie:
            return
        with self._store.transaction() as tx:
            tx.connection.execute(
                delete(ui_sessions).where(ui_sessions.c.id_hash == token_digest(cookie))
            )
