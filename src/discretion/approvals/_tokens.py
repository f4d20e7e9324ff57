"""Who is calling: bearer tokens for agents and approvers, kept as SHA-256 digests.

A token is 32 random bytes (`secrets.token_urlsafe`) behind a `dsc_` prefix, shown once when it
is created. The store keeps only its SHA-256: a token has 256 bits of entropy, so a plain digest
cannot be reversed or guessed, and a lookup by digest needs no slow key-derivation function
(that is for low-entropy passwords). A token maps to one subject (an agent or a person) and one
role of the pack; revoking it ends every session signed in with it.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from discretion.errors import ConfigurationError, ProposalError
from discretion.proposal import Actor
from discretion.store import SqlStore
from discretion.store._schema import api_tokens
from discretion.store._sql import _Compiled, to_us

__all__ = ["TOKEN_PREFIX", "Identity", "Tokens", "identity_of", "token_digest"]

TOKEN_PREFIX = "dsc_"
"""Every token starts with this, so a leaked one is easy to recognise and scan for."""


def token_digest(token: str) -> str:
    """The SHA-256 hex digest a token is stored and found under."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """The subject a token stands for."""

    token_id: str
    """The token's public id (`tok_...`), safe to log."""
    subject_id: str
    """The agent's or person's id: the actor id of what they propose and decide."""
    role: str
    """Their role in the pack."""
    is_ai: bool
    """Whether the subject is an AI agent. AI subjects may propose, never approve."""
    label: str = ""
    """A note on what the token is for."""

    def actor(self) -> Actor:
        """The subject as a proposal's or an approval's actor."""
        return Actor(id=self.subject_id, role=self.role, is_ai=self.is_ai)


_LOOKUP = select(
    api_tokens.c.id,
    api_tokens.c.subject_id,
    api_tokens.c.role,
    api_tokens.c.is_ai,
    api_tokens.c.label,
).where(api_tokens.c.token_hash == bindparam("digest"), api_tokens.c.revoked_us.is_(None))


def identity_of(row: Any) -> Identity:
    """The identity of an `api_tokens` row (or any row with its id, subject, role, kind, label)."""
    return Identity(
        token_id=row.id,
        subject_id=row.subject_id,
        role=row.role,
        is_ai=bool(row.is_ai),
        label=row.label,
    )


class Tokens:
    """Creates, checks and revokes bearer tokens in the store.

    Example:
        ```python
        secret, who = Tokens(store, clock=guard.now).create(subject_id="ann", role="tier2")
        ```

    Args:
        store: the store that keeps the tokens' digests.
        clock: the current time as an aware datetime.
    """

    def __init__(self, store: SqlStore, *, clock: Callable[[], datetime]) -> None:
        if not isinstance(store, SqlStore):
            raise ConfigurationError(
                f"tokens are kept in SQL tables, but {type(store).__name__} is not a SqlStore"
            )
        self._store = store
        self._clock = clock
        self._lookup = _Compiled(_LOOKUP, store.engine.dialect)

    def create(
        self, *, subject_id: str, role: str, is_ai: bool = False, label: str = ""
    ) -> tuple[str, Identity]:
        """Create a token for a subject; return the token (shown only now) and its identity.

        Raises:
            ProposalError: an empty subject or role.
        """
        subject_id, role = subject_id.strip(), role.strip()
        if not subject_id or not role:
            raise ProposalError("a token needs a subject id and a role", field="subject_id")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        identity = Identity(
            token_id=f"tok_{secrets.token_hex(8)}",
            subject_id=subject_id,
            role=role,
            is_ai=is_ai,
            label=label,
        )
        with self._store.transaction() as tx:
            tx.connection.execute(
                insert(api_tokens).values(
                    id=identity.token_id,
                    token_hash=token_digest(secret),
                    subject_id=subject_id,
                    role=role,
                    is_ai=int(is_ai),
                    label=label,
                    created_us=to_us(self._clock()),
                )
            )
        return secret, identity

    def authenticate(self, token: str) -> Identity | None:
        """The identity of a live token; None for an unknown or revoked one."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        # Every API request authenticates: the compiled query runs on the driver's cursor,
        # outside any SQLAlchemy transaction, so on SQLite it reads the WAL snapshot instead of
        # queueing behind the write lock a decision holds (measured: 0.6 ms -> 0.05 ms).
        with self._store.reading("api tokens") as connection:
            cursor = connection.connection.cursor()
            try:
                row = self._lookup.run(cursor, {"digest": token_digest(token)}).fetchone()
            finally:
                cursor.close()
        if row is None:
            return None
        token_id, subject_id, role, is_ai, label = row
        return Identity(
            token_id=token_id, subject_id=subject_id, role=role, is_ai=bool(is_ai), label=label
        )

    def get(self, token_id: str) -> Identity | None:
        """A live token's identity by its public id."""
        with self._store.reading("api tokens") as connection:
            row = connection.execute(
                select(api_tokens).where(
                    api_tokens.c.id == token_id, api_tokens.c.revoked_us.is_(None)
                )
            ).first()
        return identity_of(row) if row is not None else None

    def revoke(self, token_id: str) -> bool:
        """Revoke a token by its public id; return whether a live token was revoked."""
        with self._store.transaction() as tx:
            result = tx.connection.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_us.is_(None))
                .values(revoked_us=to_us(self._clock()))
            )
        return result.rowcount == 1

    def list(self) -> builtins.list[Identity]:
        """Every live token's identity, oldest first."""
        with self._store.reading("api tokens") as connection:
            rows = connection.execute(
                select(api_tokens)
                .where(api_tokens.c.revoked_us.is_(None))
                .order_by(api_tokens.c.created_us, api_tokens.c.id)
            ).all()
        return [identity_of(row) for row in rows]
