"""Where each webhook endpoint has got to in the ledger, and who is delivering to it.

`webhook_cursors` is delivery state for `discretion.webhooks`: per endpoint, the last record
delivered in each ledger partition, the retry schedule and a lease, so that of several
`discretion serve` workers one delivers to an endpoint at a time. It holds no authority, so it
is not bound to the ledger (docs/ledger.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """One row per webhook endpoint."""
    op.create_table(
        "webhook_cursors",
        sa.Column("endpoint", sa.String(64), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("positions", sa.Text(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("delivered", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_us", sa.BigInteger()),
        sa.Column("last_error", sa.Text()),
        sa.Column("lease_owner", sa.String(100)),
        sa.Column("lease_until_us", sa.BigInteger()),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    """Webhook endpoints start again from the ledger's heads when they are next enrolled."""
    op.drop_table("webhook_cursors")
