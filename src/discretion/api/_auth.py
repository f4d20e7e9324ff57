"""Who is calling: bearer tokens for agents and approvers, kept as SHA-256 digests.

A token is 32 random bytes (`secrets.token_urlsafe`) behind a `dsc_` prefix, shown once when it
is created. The store keeps only its SHA-256: a token has 256 bits of entropy, so a plain digest
cannot be reversed or guessed, and a lookup by digest needs no slow key-derivation function
(that is for low-entropy passwords). A token maps to one subject (an agent or a person) and one
role of the pack; revoking it ends every session signed in with it.

Authentication is the HTTP API's concept, so it lives here; the command line makes tokens with
the same `Tokens`. Nothing here needs the server extra.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from discretion.errors import ProposalError
from discretion.proposal import Actor
from discretion.store import SqlStore, TokenRow

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


def identity_of(row: TokenRow) -> Identity:
    """The identity a stored token stands for."""
    return Identity(
        token_id=row.id,
        subject_id=row.subject_id,
        role=row.role,
        is_ai=row.is_ai,
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
        self._store = store
        self._clock = clock

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
        row = TokenRow(
            id=identity.token_id, subject_id=subject_id, role=role, is_ai=is_ai, label=label
        )
        with self._store.transaction() as tx:
            tx.identities.add_token(row, digest=token_digest(secret), created_at=self._clock())
        return secret, identity

    def authenticate(self, token: str) -> Identity | None:
        """The identity of a live token; None for an unknown or revoked one."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        row = self._store.identities.find_token(token_digest(token))
        return identity_of(row) if row is not None else None

    def get(self, token_id: str) -> Identity | None:
        """A live token's identity by its public id."""
        row = self._store.identities.get_token(token_id)
        return identity_of(row) if row is not None else None

    def revoke(self, token_id: str) -> bool:
        """Revoke a token by its public id; return whether a live token was revoked."""
        with self._store.transaction() as tx:
            return tx.identities.revoke_token(token_id, at=self._clock())

    def list(self) -> builtins.list[Identity]:
        """Every live token's identity, oldest first."""
        return [identity_of(row) for row in self._store.identities.live_tokens()]
