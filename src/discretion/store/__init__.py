"""Stores: where decisions, budget reservations and the lineage are kept.

`Store` is the seam the guard uses; `SqlStore` is the implementation we ship, on SQLite by
default and PostgreSQL by URL.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from discretion.decision import Decision
from discretion.store._approvals import ApprovalRow
from discretion.store._checkpoints import CheckpointWriter
from discretion.store._executions import ExecutionRow
from discretion.store._identities import SessionRow, TokenRow
from discretion.store._precedents import NewPrecedent, PrecedentRow
from discretion.store._reports import BudgetUse, GrantCell, GrantTotals, LikeCase, QueueDepth
from discretion.store._sql import DuplicateKey, HistoryEntry, SqlStore, SqlTransaction

__all__ = [
    "ApprovalRow",
    "BudgetUse",
    "CheckpointWriter",
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
    "Store",
    "StoreTransaction",
    "TokenRow",
]


class StoreTransaction(Protocol):
    """The writes of one decision, under the locks of what it touches."""

    def budget_used(self, budget_id: str, key: str, since: datetime, /) -> int:
        """Minor units reserved against (budget, key) after `since`."""
        ...

    def append(self, decision: Decision, /, *, body: dict[str, Any]) -> Decision:
        """Record the decision with its reservations and lineage record; return it hashed.

        Raises:
            DuplicateKey: its idempotency key is on record already; roll back and read it.
        """
        ...

    def record(
        self,
        kind: str,
        subject_id: str,
        body: dict[str, Any],
        /,
        *,
        at: datetime,
        chain: str | None = None,
    ) -> str:
        """Append a lineage record about what happened to `subject_id`; return its hash.

        `chain` names the decision whose partition the record joins (`subject_id` by default).
        """
        ...


class Store(Protocol):
    """Keeps decisions durable before they are answered (invariant 4)."""

    def find_decision(self, idempotency_key: str, /) -> Decision | None:
        """The decision recorded under this key, if any."""
        ...

    def transaction(self) -> AbstractContextManager[StoreTransaction]:
        """A write transaction; it commits when the block exits without error."""
        ...
