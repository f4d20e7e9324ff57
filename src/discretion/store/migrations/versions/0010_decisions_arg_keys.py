"""Totals per tool argument read what each decision was keyed by: its `arg_keys`.

A pack's total may count only the decisions whose declared arguments had the call's values
(`args: [sku]`: what was refunded on this item of the order). The values are part of the
decision's lineage record (`keys`); the column derives from it, as every other column does, and
is NULL for decisions recorded before it or keyed by no argument.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """The column, empty for every decision on record: none was kept per an argument."""
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("arg_keys", sa.Text(), nullable=True))


def downgrade() -> None:
    """The column goes; totals kept per an argument can no longer be read."""
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("arg_keys")
