"""The approver desk's sessions answer to the ledger: `ledger_hash`, and `closed_us`.

A session is a person's say at the desk: a row written behind discretion's back (a cookie
digest of the writer's choosing, pointed at a live approver's token) approved cases as that
approver, and `ledger verify` passed. Each session is now opened with a `session.opened`
record binding it, and signing out keeps the row, closed (`session.closed`), as a revoked
token is kept. Sessions open before this revision are adopted (`row.adopted`) by
`discretion db upgrade`, as rows were when bindings began.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """The columns, empty on every session on record until it is adopted."""
    with op.batch_alter_table("ui_sessions") as batch:
        batch.add_column(sa.Column("closed_us", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("ledger_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    """The columns go, and sessions signed out with them; their records stay in the ledger."""
    op.execute("DELETE FROM ui_sessions WHERE closed_us IS NOT NULL")
    with op.batch_alter_table("ui_sessions") as batch:
        batch.drop_column("ledger_hash")
        batch.drop_column("closed_us")
