"""Totals per actor read one actor's recent decisions through an index of their own.

A pack's `totals` kept `per: actor` summed an actor's decisions within a window, but no index
held the actor with the time: the read went through the idempotency key's unique index and
looked at every decision the actor ever made, the old ones included. An agent with 100,000
decisions on record paid about 40 ms a decision on SQLite for a window holding a handful.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """The actor's decisions by time, as the order's, case's and customer's already are."""
    op.create_index("ix_decisions_actor", "decisions", ["actor_id", "decided_us"])


def downgrade() -> None:
    """The index goes; a total per actor reads all of the actor's decisions again."""
    op.drop_index("ix_decisions_actor", table_name="decisions")
