"""Reservations lose the index by decision, which no query reads.

Budget sums read a key's recent reservations through `ix_reservations_window`; no statement
selects reservations by their decision (the audit reads them all, in order). Every decision
with a budget still wrote a page of `ix_reservations_decision` per commit, about one in
nineteen of the pages a decision's commit writes to SQLite's WAL.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """The index goes; nothing reads through it."""
    op.drop_index("ix_reservations_decision", table_name="reservations")


def downgrade() -> None:
    """The index as 0001 made it."""
    op.create_index("ix_reservations_decision", "reservations", ["decision_id"])
