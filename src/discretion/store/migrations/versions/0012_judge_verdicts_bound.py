"""The LLM judge's cached verdicts answer to the ledger: their `ledger_hash`.

A cached verdict decides a later case without asking the judge again, so a row forged or
edited behind discretion's back would grant an exception nobody judged. Each verdict is now
written with a `judge.verdict` record binding it, like every other working row that is acted
on. Verdicts on record before this revision are adopted (`row.adopted`) by `discretion db
upgrade`, as rows were when bindings began.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """The column, empty on every verdict on record until it is adopted."""
    with op.batch_alter_table("judge_verdicts") as batch:
        batch.add_column(sa.Column("ledger_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    """The column goes; the `judge.verdict` records stay in the ledger."""
    with op.batch_alter_table("judge_verdicts") as batch:
        batch.drop_column("ledger_hash")
