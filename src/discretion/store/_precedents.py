"""Citable precedent's tables: `precedents` and the key sets their scopes are found by.

A precedent is found by the digest of its exact scope values (`match_hash`) for each key set in
use (`precedent_keysets`), never by scanning them all. `discretion.precedent` decides which scope
values are exact and checks the rest; this module keeps the rows and the index.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, insert, or_, select, update

from discretion.lineage import digest
from discretion.store import _dialect
from discretion.store._schema import from_us, precedent_keysets, precedents, to_us

if TYPE_CHECKING:
    from discretion.store._bindings import Bindings
    from discretion.store._sql import SqlStore, SqlTransaction

__all__ = ["NewPrecedent", "PrecedentReads", "PrecedentRow", "PrecedentWrites"]

ScopeFacts = Mapping[str, str | int | bool]
"""Exact scope values by fact name: what the match digest covers."""

_FOUND_PER_KEYSET = 20
"""The most candidates read per key set: the newest first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PrecedentRow:
    """A precedent as its table keeps it: the body set once, and what changes after."""

    id: str
    """The precedent's id."""
    source_decision_id: str
    """The decision whose granted exception it makes citable."""
    action: str
    """The action it covers."""
    uses: int
    """Citations taken."""
    revoked_at: datetime | None
    """When it was revoked, if it was."""
    body: str
    """The precedent as canonical JSON (`discretion.precedent.Precedent`, without `uses` and
    `revoked_at`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NewPrecedent:
    """What `SqlTransaction.precedents.add` writes."""

    id: str
    """The precedent's id."""
    source_decision_id: str
    """The decision it is set from."""
    action: str
    """The action it covers."""
    reason: str
    """The exception reason it covers."""
    exact_scope: ScopeFacts
    """The scope values it is found by: a case matches only if its facts equal these."""
    bound_minor: int | None
    """The fixed bound in minor units; None when only a ratio bounds it."""
    learnable: bool
    """False for a one-off, which is never found."""
    citations: int
    """How many times it may be cited."""
    expires_at: datetime
    """When it stops being found."""
    created_at: datetime
    """When it was set."""
    body: str
    """The precedent as canonical JSON."""


def match_hash(action: str, reason: str, values: Mapping[str, Any]) -> str:
    """The digest a precedent of `action` and `reason` with these exact scope values is found by."""
    return digest({"action": action, "reason": reason, "scope": dict(values)})


_COLUMNS = (
    precedents.c.id,
    precedents.c.source_decision_id,
    precedents.c.action,
    precedents.c.uses,
    precedents.c.revoked_us,
    precedents.c.body,
)


def _row(row: Any) -> PrecedentRow:
    precedent_id, source, action, uses, revoked_us, body = row
    return PrecedentRow(
        id=precedent_id,
        source_decision_id=source,
        action=action,
        uses=int(uses),
        revoked_at=from_us(int(revoked_us)) if revoked_us is not None else None,
        body=body,
    )


# Built once: constructing these clauses per decision cost more than running them.
_KEYSETS = select(precedent_keysets.c.match_keys).where(
    precedent_keysets.c.action == bindparam("action"),
    precedent_keysets.c.reason == bindparam("reason"),
)
_LIVE_MATCHES = (
    select(*_COLUMNS)
    .where(
        precedents.c.match_hash == bindparam("hash"),
        precedents.c.expires_us > bindparam("now"),
        or_(precedents.c.bound_minor.is_(None), precedents.c.bound_minor >= bindparam("amount")),
        precedents.c.revoked_us.is_(None),
        precedents.c.learnable == 1,
        precedents.c.uses < precedents.c.citations,
    )
    .order_by(precedents.c.expires_us)
    .limit(_FOUND_PER_KEYSET)
)
_CONSUME = (
    update(precedents)
    .where(
        precedents.c.id == bindparam("precedent"),
        precedents.c.uses < precedents.c.citations,
        precedents.c.revoked_us.is_(None),
        precedents.c.expires_us > bindparam("now"),
    )
    .values(uses=precedents.c.uses + 1)
)


def _check(bindings: Bindings, connection: Connection, ids: Iterable[str]) -> None:
    """Check these precedents' rows against the ledger records that set their state."""
    wanted = sorted(set(ids))
    if wanted:
        rows = connection.execute(select(precedents).where(precedents.c.id.in_(wanted))).all()
        bindings.check(connection, "precedents", [row._mapping for row in rows])


def _load(
    bindings: Bindings, connection: Connection, ids: Iterable[str]
) -> dict[str, PrecedentRow]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    _check(bindings, connection, wanted)
    rows = connection.execute(select(*_COLUMNS).where(precedents.c.id.in_(wanted))).all()
    return {row.id: _row(row) for row in rows}


class PrecedentReads:
    """`SqlStore.precedents`: reads of precedent, each on a connection of its own."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def load(self, ids: Iterable[str]) -> dict[str, PrecedentRow]:
        """The precedents with these ids that exist, by id."""
        with self._store._reading("precedents") as connection:
            return _load(self._store.bindings, connection, ids)

    def list(
        self,
        *,
        action: str | None = None,
        reason: str | None = None,
        live_at: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[PrecedentRow]:
        """Precedents newest first; with `live_at`, only those not revoked, expired or used up."""
        query = select(*_COLUMNS).order_by(precedents.c.created_us.desc()).limit(limit)
        if action is not None:
            query = query.where(precedents.c.action == action)
        if reason is not None:
            query = query.where(precedents.c.reason == reason)
        if live_at is not None:
            query = query.where(
                precedents.c.revoked_us.is_(None),
                precedents.c.expires_us > to_us(live_at),
                precedents.c.uses < precedents.c.citations,
            )
        with self._store._reading("precedents") as connection:
            rows = connection.execute(query).all()
            _check(self._store.bindings, connection, [row.id for row in rows])
            return [_row(row) for row in rows]

    def find(
        self, *, action: str, reason: str, facts: ScopeFacts, now: datetime, amount_minor: int
    ) -> builtins.list[PrecedentRow]:
        """Live, learnable precedents whose exact scope equals the case's `facts`.

        For each key set in use by `action` and `reason`, the case's values of those keys are
        looked up by digest; a key set naming a fact the case lacks finds nothing. Those whose
        fixed bound is below `amount_minor` are left unread; at most 20 per key set, soonest
        expiring first.
        """
        with self._store._reading("precedents") as connection:
            keysets = connection.execute(_KEYSETS, {"action": action, "reason": reason}).all()
            found: builtins.list[PrecedentRow] = []
            for (match_keys,) in keysets:
                keys = [k for k in match_keys.split(",") if k]
                if any(k not in facts for k in keys):
                    continue
                match = {
                    "hash": match_hash(action, reason, {k: facts[k] for k in keys}),
                    "now": to_us(now),
                    "amount": amount_minor,
                }
                found.extend(_row(row) for row in connection.execute(_LIVE_MATCHES, match))
        return found


class PrecedentWrites:
    """`SqlTransaction.precedents`: precedent inside the caller's transaction."""

    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    def load(self, ids: Iterable[str]) -> dict[str, PrecedentRow]:
        """The precedents with these ids that exist, as this transaction sees them.

        Read in the transaction: on SQLite a second connection would wait for its own lock.
        """
        return _load(self._tx.bindings, self._tx._connection, ids)

    def fallen(self, ids: Iterable[str]) -> tuple[str, str] | None:
        """The first of `ids` that no longer stands and why, or None when every one stands.

        Why: "cannot be found", or "was revoked at ..." with the revocation's reason. What a
        case relying on them checks before it is approved, and before its call runs.
        """
        wanted = list(dict.fromkeys(ids))
        rows = self.load(wanted) if wanted else {}
        for precedent_id in wanted:
            row = rows.get(precedent_id)
            if row is None:
                return precedent_id, "cannot be found"
            if row.revoked_at is not None:
                reason = json.loads(row.body).get("revoked_reason")
                why = f": {reason}" if reason else ""
                return precedent_id, f"was revoked at {row.revoked_at.isoformat()}{why}"
        return None

    def set_from(self, decision_id: str) -> str | None:
        """The id of the precedent set from `decision_id`, if one was."""
        row = self._tx._connection.execute(
            select(precedents.c.id).where(precedents.c.source_decision_id == decision_id)
        ).first()
        return str(row[0]) if row is not None else None

    def add(self, new: NewPrecedent) -> None:
        """Insert a precedent, and its key set if it is the first of its kind."""
        connection = self._tx._connection
        match_keys = ",".join(sorted(new.exact_scope))
        connection.execute(
            insert(precedents).values(
                id=new.id,
                source_decision_id=new.source_decision_id,
                action=new.action,
                reason=new.reason,
                match_keys=match_keys,
                match_hash=match_hash(new.action, new.reason, new.exact_scope),
                bound_minor=new.bound_minor,
                learnable=int(new.learnable),
                citations=new.citations,
                uses=0,
                expires_us=to_us(new.expires_at),
                created_us=to_us(new.created_at),
                revoked_us=None,
                body=new.body,
            )
        )
        self._tx.touch("precedents", new.id)
        # Another decision's precedent may bring the same key set at the same moment.
        connection.execute(
            _dialect.insert_ignore(precedent_keysets, connection.dialect.name).values(
                action=new.action, reason=new.reason, match_keys=match_keys
            )
        )

    def consume(self, precedent_id: str, *, now: datetime) -> bool:
        """Take one citation; False when none is left, or it was revoked or expired.

        The conditional update is atomic: two decisions cannot both take the last citation.
        """
        connection = self._tx._connection
        # A precedent only its row vouches for (forged, or its limits edited) is never cited.
        _check(self._tx.bindings, connection, [precedent_id])
        result = connection.execute(_CONSUME, {"precedent": precedent_id, "now": to_us(now)})
        if result.rowcount != 1:
            return False
        source = connection.execute(
            select(precedents.c.source_decision_id).where(precedents.c.id == precedent_id)
        ).scalar_one()
        self._tx.touch("precedents", precedent_id)
        # Its own record (about the precedent, on its chain) binds the row's new count.
        self._tx.record(
            "precedent.cited",
            precedent_id,
            {"precedent_id": precedent_id, "at": now},
            at=now,
            chain=source,
        )
        return True

    def claim(self, precedent_id: str) -> PrecedentRow | None:
        """The precedent with this id, locked until the commit (PostgreSQL)."""
        connection = self._tx._connection
        row = connection.execute(
            _dialect.locking(select(*_COLUMNS).where(precedents.c.id == precedent_id))
        ).first()
        if row is None:
            return None
        _check(self._tx.bindings, connection, [precedent_id])
        return _row(row)

    def revoke(self, precedent_id: str, *, at: datetime, body: str) -> None:
        """Mark a precedent revoked at `at`, with its body rewritten (who revoked it and why)."""
        self._tx._connection.execute(
            update(precedents)
            .where(precedents.c.id == precedent_id)
            .values(revoked_us=to_us(at), body=body)
        )
        self._tx.touch("precedents", precedent_id)
