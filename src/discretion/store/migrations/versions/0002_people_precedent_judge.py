"""What happens around decisions: executions, precedent, approvals, tokens, sessions, judge.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the tables of executions, precedent, approvals, tokens, sessions and the judge."""
    op.create_table(
        "executions",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("decision_id", sa.String(64), sa.ForeignKey("decisions.id"), nullable=False),
        sa.Column("tool", sa.String(200), nullable=False),
        sa.Column("arguments", sa.Text(), nullable=False),
        sa.Column("arguments_digest", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("queued_us", sa.BigInteger()),
        sa.Column("started_us", sa.BigInteger()),
        sa.Column("finished_us", sa.BigInteger()),
    )
    op.create_index("ix_executions_status", "executions", ["status", "queued_us"])
    op.create_index("ix_executions_decision", "executions", ["decision_id"])
    op.create_table(
        "precedents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "source_decision_id", sa.String(64), sa.ForeignKey("decisions.id"), nullable=False
        ),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("match_keys", sa.Text(), nullable=False),
        sa.Column("match_hash", sa.String(64), nullable=False),
        sa.Column("bound_minor", sa.BigInteger()),
        sa.Column("learnable", sa.Integer(), nullable=False),
        sa.Column("citations", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked_us", sa.BigInteger()),
        sa.Column("body", sa.Text(), nullable=False),
    )
    op.create_index("ix_precedents_match", "precedents", ["match_hash", "expires_us"])
    op.create_index("ix_precedents_source", "precedents", ["source_decision_id"])
    op.create_table(
        "precedent_keysets",
        sa.Column("action", sa.String(100), primary_key=True),
        sa.Column("reason", sa.String(100), primary_key=True),
        sa.Column("match_keys", sa.Text(), primary_key=True),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(64), sa.ForeignKey("decisions.id"), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(100)),
        sa.Column("required_role", sa.String(100), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("actor_role", sa.String(100), nullable=False),
        sa.Column("customer_id", sa.String(200)),
        sa.Column("case_id", sa.String(200)),
        sa.Column("amount_minor", sa.BigInteger()),
        sa.Column("currency", sa.String(3)),
        sa.Column("approved_minor", sa.BigInteger()),
        sa.Column("tool", sa.String(200)),
        sa.Column("proposal", sa.Text(), nullable=False),
        sa.Column("policy_version", sa.String(80), nullable=False),
        sa.Column("opened_us", sa.BigInteger(), nullable=False),
        sa.Column("due_us", sa.BigInteger(), nullable=False),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("decided_us", sa.BigInteger()),
        sa.Column("decided_by", sa.String(200)),
        sa.Column("decided_role", sa.String(100)),
        sa.Column("note", sa.Text()),
    )
    op.create_index("ix_approvals_queue", "approvals", ["status", "due_us"])
    op.create_index("ix_approvals_decided", "approvals", ["status", "decided_us"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("subject_id", sa.String(200), nullable=False),
        sa.Column("role", sa.String(100), nullable=False),
        sa.Column("is_ai", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked_us", sa.BigInteger()),
    )
    op.create_table(
        "ui_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("token_id", sa.String(40), sa.ForeignKey("api_tokens.id"), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "judge_verdicts",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("prompt_hash", sa.String(64), nullable=False),
        sa.Column("assessment", sa.Text(), nullable=False),
        sa.Column("recorded_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "judge_calls",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("calls", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    """Drop them again; the decision ledger stays."""
    op.drop_table("judge_calls")
    op.drop_table("judge_verdicts")
    op.drop_table("ui_sessions")
    op.drop_table("api_tokens")
    op.drop_index("ix_approvals_decided", table_name="approvals")
    op.drop_index("ix_approvals_queue", table_name="approvals")
    op.drop_table("approvals")
    op.drop_table("precedent_keysets")
    op.drop_index("ix_precedents_source", table_name="precedents")
    op.drop_index("ix_precedents_match", table_name="precedents")
    op.drop_table("precedents")
    op.drop_index("ix_executions_decision", table_name="executions")
    op.drop_index("ix_executions_status", table_name="executions")
    op.drop_table("executions")
