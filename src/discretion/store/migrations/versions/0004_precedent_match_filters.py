"""The precedent match index carries the columns its lookup filters on.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_FILTERED = ["match_hash", "expires_us", "bound_minor", "revoked_us", "learnable"]


def upgrade() -> None:
    """Rebuild ix_precedents_match with the bound, revocation and learnable columns."""
    op.drop_index("ix_precedents_match", table_name="precedents")
    op.create_index("ix_precedents_match", "precedents", _FILTERED)


def downgrade() -> None:
    """Back to the scope digest and expiry alone."""
    op.drop_index("ix_precedents_match", table_name="precedents")
    op.create_index("ix_precedents_match", "precedents", ["match_hash", "expires_us"])
