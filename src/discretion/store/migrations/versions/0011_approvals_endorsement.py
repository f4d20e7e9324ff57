"""Approvals keep the first of two approvals a case needs: its `endorsement`.

A case above its action's `two_approvals_above` is approved by two people: the first's
approval waits on the row for the second.

The column is NULL on every approval on record (none needed two), and a row's bound state
leaves it out while it is NULL, so the digests recorded before it still hold.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """The column, empty on every approval on record."""
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("endorsement", sa.Text(), nullable=True))


def downgrade() -> None:
    """The column goes; a case waiting on a second approval loses its first."""
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("endorsement")
