"""The decision ledger: decisions, budget reservations and the hash-chained lineage.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# The empty chain's head: lineage.GENESIS, written out so this revision never changes with it.
_GENESIS = "0" * 64


def upgrade() -> None:
    """Create the ledger tables and the ledger head."""
    op.create_table(
        "decisions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False, unique=True),
        sa.Column("proposal_digest", sa.String(64), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("customer_id", sa.String(200)),
        sa.Column("case_id", sa.String(200)),
        sa.Column("amount_minor", sa.BigInteger()),
        sa.Column("currency", sa.String(3)),
        sa.Column("required_role", sa.String(100)),
        sa.Column("reason", sa.String(100)),
        sa.Column("policy_version", sa.String(80), nullable=False),
        sa.Column("decided_us", sa.BigInteger(), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    )
    op.create_index("ix_decisions_decided", "decisions", ["decided_us"])
    op.create_index("ix_decisions_customer", "decisions", ["customer_id", "decided_us"])
    op.create_index("ix_decisions_similar", "decisions", ["action", "reason", "decided_us"])
    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("decision_id", sa.String(64), sa.ForeignKey("decisions.id"), nullable=False),
        sa.Column("budget_id", sa.String(100), nullable=False),
        sa.Column("budget_key", sa.String(200), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reserved_us", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_reservations_window", "reservations", ["budget_id", "budget_key", "reserved_us"]
    )
    op.create_index("ix_reservations_decision", "reservations", ["decision_id"])
    op.create_table(
        "ledger",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("recorded_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_ledger_subject", "ledger", ["subject_id"])
    head = op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": _GENESIS}])


def downgrade() -> None:
    """Drop the ledger tables: every decision and its lineage is lost."""
    op.drop_table("ledger_head")
    op.drop_index("ix_ledger_subject", table_name="ledger")
    op.drop_table("ledger")
    op.drop_index("ix_reservations_decision", table_name="reservations")
    op.drop_index("ix_reservations_window", table_name="reservations")
    op.drop_table("reservations")
    op.drop_index("ix_decisions_similar", table_name="decisions")
    op.drop_index("ix_decisions_customer", table_name="decisions")
    op.drop_index("ix_decisions_decided", table_name="decisions")
    op.drop_table("decisions")
