"""The executions table: the exactly-once ledger of tool calls and the outbox of approved ones.

`discretion.execution` decides what a claim means; this module only reads and writes the rows.
The claim, the locked read, the restart and the finish are compiled once per dialect and run on
the transaction's driver cursor: building Core statements per call cost ~0.1 ms each, most of a
call's overhead.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, insert, select, update

from discretion.store import _dialect
from discretion.store._schema import decisions, executions, from_us, to_us

if TYPE_CHECKING:
    from discretion.store._bindings import Bindings
    from discretion.store._sql import SqlStore, SqlTransaction

__all__ = ["ExecutionReads", "ExecutionRow", "ExecutionWrites", "statements"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionRow:
    """One governed tool call as the executions table keeps it."""

    key: str
    """The idempotency key: one row per key."""
    decision_id: str
    """The decision that allowed the call."""
    tool: str
    """The tool's name."""
    arguments: str
    """The arguments as canonical JSON."""
    arguments_digest: str
    """The digest of the tool and its arguments: a key reused for another call differs here."""
    status: str
    """An `ExecutionStatus` value."""
    attempts: int
    """How many times it was claimed to run."""
    result: str | None = None
    """The tool's result as JSON, once it succeeded."""
    error: str | None = None
    """What the tool raised, when the last attempt failed."""
    queued_at: datetime | None = None
    """When it was queued after an approval."""
    started_at: datetime | None = None
    """When the last attempt started."""
    finished_at: datetime | None = None
    """When the last attempt ended."""
    ledger_hash: str | None = None
    """The hash of the ledger record that set the row's current state."""


def _moment(us: int | None) -> datetime | None:
    return from_us(us) if us is not None else None


def _us(moment: datetime | None) -> int | None:
    return to_us(moment) if moment is not None else None


def _row(values: Sequence[Any]) -> ExecutionRow:
    """A row read in the table's column order (a driver tuple or a SQLAlchemy row)."""
    key, decision_id, tool, arguments, digest, status, attempts, result, error, *rest = values
    queued, started, finished, ledger_hash = rest
    return ExecutionRow(
        key=key,
        decision_id=decision_id,
        tool=tool,
        arguments=arguments,
        arguments_digest=digest,
        status=status,
        attempts=int(attempts),
        result=result,
        error=error,
        queued_at=_moment(queued),
        started_at=_moment(started),
        finished_at=_moment(finished),
        ledger_hash=ledger_hash,
    )


def _values(row: ExecutionRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "decision_id": row.decision_id,
        "tool": row.tool,
        "arguments": row.arguments,
        "arguments_digest": row.arguments_digest,
        "status": row.status,
        "attempts": row.attempts,
        "result": row.result,
        "error": row.error,
        "queued_us": _us(row.queued_at),
        "started_us": _us(row.started_at),
        "finished_us": _us(row.finished_at),
        "ledger_hash": row.ledger_hash,
    }


_COLUMNS = tuple(c.name for c in executions.columns)
_KEY = executions.c.key == bindparam("b_key")


def statements(dialect_name: str) -> dict[str, Any]:
    """The hot-path statements of executions, for `Statements`."""
    return {
        # Both dialects say ON CONFLICT DO NOTHING: a key already claimed inserts no row.
        "execution.claim": _dialect.insert_ignore(executions, dialect_name, index_elements=["key"]),
        # Locked (PostgreSQL) so that two claims of one key restart it once.
        "execution.read": _dialect.locking(select(*executions.columns).where(_KEY)),
        "execution.restart": update(executions)
        .where(_KEY)
        .values(
            status=bindparam("b_status"),
            attempts=bindparam("b_attempts"),
            started_us=bindparam("b_started"),
            finished_us=bindparam("b_finished"),
            error=bindparam("b_error"),
        ),
        "execution.finish": update(executions)
        .where(_KEY)
        .values(
            status=bindparam("b_status"),
            result=bindparam("b_result"),
            error=bindparam("b_error"),
            finished_us=bindparam("b_finished"),
        ),
    }


def _checked(bindings: Bindings, connection: Connection, rows: Sequence[Any]) -> list[ExecutionRow]:
    """Rows as executions, once each agrees with the ledger record that set its state."""
    found = [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
    bindings.check(connection, "executions", found)
    return [_row(row) for row in rows]


def _get(bindings: Bindings, connection: Connection, key: str) -> ExecutionRow | None:
    row = connection.execute(select(executions).where(executions.c.key == key)).first()
    return _checked(bindings, connection, [row])[0] if row is not None else None


class ExecutionReads:
    """`SqlStore.executions`: reads of the executions table, each on a connection of its own."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def get(self, key: str) -> ExecutionRow | None:
        """The execution with this key, if any."""
        with self._store._reading("executions") as connection:
            return _get(self._store.bindings, connection, key)

    def with_status(
        self, status: str, *, limit: int, actor_id: str | None = None
    ) -> builtins.list[ExecutionRow]:
        """Up to `limit` executions in `status` (the outbox: `pending`), oldest queued first.

        With `actor_id`, only the calls of decisions that actor proposed.
        """
        query = select(executions).where(executions.c.status == status)
        if actor_id is not None:
            query = query.join(decisions, decisions.c.id == executions.c.decision_id).where(
                decisions.c.actor_id == actor_id
            )
        with self._store._reading("executions") as connection:
            rows = connection.execute(
                query.order_by(executions.c.queued_us, executions.c.key).limit(limit)
            ).all()
            return _checked(self._store.bindings, connection, rows)

    def for_decision(self, decision_id: str) -> builtins.list[ExecutionRow]:
        """The executions a decision led to, by key."""
        with self._store._reading("executions") as connection:
            rows = connection.execute(
                select(executions)
                .where(executions.c.decision_id == decision_id)
                .order_by(executions.c.key)
            ).all()
            return _checked(self._store.bindings, connection, rows)


class ExecutionWrites:
    """`SqlTransaction.executions`: the executions table inside the caller's transaction."""

    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    def get(self, key: str) -> ExecutionRow | None:
        """The execution with this key, if any, as this transaction sees it (no lock)."""
        return _get(self._tx.bindings, self._tx._connection, key)

    def queue(self, row: ExecutionRow) -> None:
        """Insert a new row (a call queued after an approval).

        Raises:
            StoreError: the key is taken (when the transaction ends); read it first.
        """
        values = _values(row)
        self._tx._connection.execute(insert(executions).values(**values))
        self._tx.touch("executions", row.key, values)

    def claim(
        self,
        *,
        key: str,
        decision_id: str,
        tool: str,
        arguments: str,
        arguments_digest: str,
        status: str,
        started_at: datetime,
    ) -> bool:
        """Insert a first attempt's row unless `key` is taken; return whether it was inserted.

        Plain values, not an `ExecutionRow`: every governed call claims its key, and building
        the record only to take it apart again cost a microsecond or two.
        """
        values = dict.fromkeys(_COLUMNS)
        values.update(
            key=key,
            decision_id=decision_id,
            tool=tool,
            arguments=arguments,
            arguments_digest=arguments_digest,
            status=status,
            attempts=1,
            started_us=to_us(started_at),
        )
        cursor = self._tx._sql["execution.claim"].run(self._tx._cursor, values)
        if cursor.rowcount != 1:
            return False
        self._tx.touch("executions", key, values)
        return True

    def locked(self, key: str) -> ExecutionRow | None:
        """The row with this key, locked until the commit (PostgreSQL)."""
        found = self._tx._sql["execution.read"].run(self._tx._cursor, {"b_key": key}).fetchone()
        if found is None:
            return None
        return _checked(self._tx.bindings, self._tx._connection, [found])[0]

    def restart(self, key: str, *, status: str, attempts: int, started_at: datetime) -> None:
        """Start another attempt: the last one's end and error are cleared."""
        self._tx._sql["execution.restart"].run(
            self._tx._cursor,
            {
                "b_key": key,
                "b_status": status,
                "b_attempts": attempts,
                "b_started": to_us(started_at),
                "b_finished": None,
                "b_error": None,
            },
        )
        self._tx.touch("executions", key)

    def finish(
        self,
        key: str,
        *,
        status: str,
        result: str | None,
        error: str | None,
        finished_at: datetime,
    ) -> None:
        """Record how the attempt ended: its status, the result (JSON) or the error."""
        self._tx._sql["execution.finish"].run(
            self._tx._cursor,
            {
                "b_key": key,
                "b_status": status,
                "b_result": result,
                "b_error": error,
                "b_finished": to_us(finished_at),
            },
        )
        self._tx.touch("executions", key)
