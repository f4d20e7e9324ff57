"""Amounts may be in a unit a pack counts instead of money: `currency` holds up to 24 characters.

An action that moves no money (miles awarded, days a return window is extended by) counts in a
unit its pack declares (`MILES`), recorded where a currency code is. ISO 4217 codes are three
letters; a unit's name is up to 24 (`discretion.money.UNIT_CODE`). SQLite never enforced the
old length; PostgreSQL did.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None

_TABLES = (("decisions", True), ("reservations", False), ("approvals", True))
"""The tables that record an amount's currency, and whether it may be null."""


def upgrade() -> None:
    """Widen each `currency` column to a unit's longest name."""
    for table, nullable in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "currency",
                type_=sa.String(24),
                existing_type=sa.String(3),
                existing_nullable=nullable,
            )


def downgrade() -> None:
    """Back to three characters; fails on PostgreSQL while a unit's amount is on record."""
    for table, nullable in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "currency",
                type_=sa.String(3),
                existing_type=sa.String(24),
                existing_nullable=nullable,
            )
