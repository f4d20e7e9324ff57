"""The store: the one place discretion talks SQL.

`SqlStore` is the one store: SQLAlchemy Core over one schema, on SQLite by default (a file, WAL)
and PostgreSQL when given a URL. There is no store Protocol to implement, because no second
store could keep the invariants the guard relies on (a decision's reservations and lineage
record commit together; budget keys and ledger partitions are locked while they are read). A
new database goes in as a dialect: a branch of `_dialect.py`, where every difference between
SQLite and PostgreSQL lives (engine set-up, upserts, row locks), run against the store's tests.

Every statement on discretion's tables is in this package. The rest of discretion reaches them
through this access API; reads open a connection of their own, and writes run in the caller's
transaction (`with store.transaction() as tx:`):

- `SqlStore`: `find_decision`, `decision`, `decisions`, `decision_body`, `history`,
  `transaction`, `records`, `export`, `heads`, `count`, `partitions`, `checkpoints`,
  `checkpoint`, `verify`, `bind_rows`, `bindings` (failures by table), `create_schema`, `close`,
  `engine` (for tools and tests).
- `SqlTransaction`: `budget_used`, `totals` (`TotalQuery`s, in one statement), `append` (a
  `DecisionRecord`, and the `ApprovalRow` a route opens), `reserve`, `record`, `touch`, `lock`,
  `decision`, `decision_body`, `has_record`; `SqlStore.totals` reads them without a lock.
- `store.approvals`: `get`, `list`; `tx.approvals`: `claim`, `due`, `settle`, `escalate`.
- `store.executions`: `get`, `with_status`, `for_decision`; `tx.executions`: `get`, `queue`,
  `claim`, `locked`, `restart`, `finish`.
- `store.precedents`: `load`, `list`, `find`; `tx.precedents`: `load`, `set_from`, `add`,
  `consume`, `claim`, `revoke`.
- `store.identities`: `find_token`, `get_token`, `live_tokens`, `find_session`;
  `tx.identities`: `add_token`, `revoke_token`, `add_session`, `remove_session`.
- `store.webhooks` (each call its own short transaction): `enroll`, `get`, `list`, `claim`,
  `pending`, `advance`, `fail`, `release`: webhook delivery state, which is not bound (it holds
  no authority; see docs/ledger.md).
- `store.verdicts` (each call its own short transaction): `cached`, `remember`, `take_call`.
- `store.reports`: `exposure`, `grants_by_day`, `queue`, `budget_use`, `like_cases`,
  `resolutions`.
- `upgrade`: migrate a database to the schema this version ships (Alembic).

Working rows answer to the ledger (`_bindings`): a write to approvals, executions, precedents or
tokens is bound by the next record the transaction appends (a transaction that ends with a row
unbound fails), and every row read to be served or acted on is checked against its record first.

Methods take and return plain values, `Decision`, `Reservation`, `Money`, `LedgerRecord`, and
the frozen records defined here (`ApprovalRow`, `ExecutionRow`, ...); the modules above turn
them into their public models.
"""

from __future__ import annotations

from discretion.store._approvals import ApprovalRow
from discretion.store._checkpoints import CheckpointWriter
from discretion.store._executions import ExecutionRow
from discretion.store._identities import SessionRow, TokenRow
from discretion.store._precedents import NewPrecedent, PrecedentRow
from discretion.store._reports import BudgetUse, GrantCell, GrantTotals, LikeCase, QueueDepth
from discretion.store._sql import (
    DecisionRecord,
    DuplicateKey,
    HistoryEntry,
    SqlStore,
    SqlTransaction,
)
from discretion.store._totals import TotalQuery
from discretion.store._webhooks import CursorRow, PendingRecord

__all__ = [
    "ApprovalRow",
    "BudgetUse",
    "CheckpointWriter",
    "CursorRow",
    "DecisionRecord",
    "DuplicateKey",
    "ExecutionRow",
    "GrantCell",
    "GrantTotals",
    "HistoryEntry",
    "LikeCase",
    "NewPrecedent",
    "PendingRecord",
    "PrecedentRow",
    "QueueDepth",
    "SessionRow",
    "SqlStore",
    "SqlTransaction",
    "TokenRow",
    "TotalQuery",
    "upgrade",
]


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the database at `url` to `revision`; return the revisions before and after.

    Alembic is imported only here, when a migration runs.

    Raises:
        StoreError: the database cannot be reached or a revision failed; what ran of that
            revision is rolled back (PostgreSQL; SQLite commits DDL per batch).
    """
    from discretion.store._migrate import upgrade as migrate

    return migrate(url, revision)
