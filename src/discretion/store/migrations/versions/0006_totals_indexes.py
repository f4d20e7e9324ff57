"""Running totals read routed cases through an index per record.

A pack's `totals` and `cumulative` authority count pending and approved cases on the same
order, case, customer or actor in every decision's transaction; without these indexes each read
scanned the whole approval queue.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_PER = ("order_id", "case_id", "customer_id", "actor_id")


def upgrade() -> None:
    """One index per record a total is kept for, with the time it counts from."""
    for column in _PER:
        op.create_index(f"ix_approvals_{column[:-3]}", "approvals", [column, "opened_us"])


def downgrade() -> None:
    """The indexes go; totals scan the queue again."""
    for column in _PER:
        op.drop_index(f"ix_approvals_{column[:-3]}", table_name="approvals")
