"""Stores: where decisions, budget reservations and the lineage are kept.

`SqlStore` is the one store: SQLite by default, PostgreSQL by URL. Only it ever satisfied the
`Store` and `StoreTransaction` Protocols this package used to define, so the code is typed with
`SqlStore` and `SqlTransaction`, whose table families (`store.approvals`, `tx.executions`, ...)
are the access API the rest of discretion uses.
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

__all__ = [
    "ApprovalRow",
    "BudgetUse",
    "CheckpointWriter",
    "DecisionRecord",
    "DuplicateKey",
    "ExecutionRow",
    "GrantCell",
    "GrantTotals",
    "HistoryEntry",
    "LikeCase",
    "NewPrecedent",
    "PrecedentRow",
    "QueueDepth",
    "SessionRow",
    "SqlStore",
    "SqlTransaction",
    "TokenRow",
]
