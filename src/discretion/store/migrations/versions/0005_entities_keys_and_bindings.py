"""Idempotency keys per actor, the order on decisions and approvals, rows bound to the ledger.

- `decisions`: an idempotency key is unique per actor (two agents' `call_0` are two decisions);
  `order_id`, as the order's record names it, and `actor_role`, with indexes for running totals
  per order and per case.
- `approvals`: `order_id`.
- `approvals`, `executions`, `precedents`, `api_tokens`: `ledger_hash`, the hash of the ledger
  record that set the row's current state. Rows written before this revision have none until
  `discretion db upgrade` records them in the ledger (`SqlStore.bind_rows`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_BOUND = ("approvals", "executions", "precedents", "api_tokens")


def _unique_on_key(inspector: sa.Inspector) -> str | None:
    """The name of the unique constraint on decisions.idempotency_key alone, if named."""
    for constraint in inspector.get_unique_constraints("decisions"):
        if constraint["column_names"] == ["idempotency_key"]:
            return constraint["name"]
    return None


def upgrade() -> None:
    """Key per actor; order columns; ledger bindings."""
    bind = op.get_bind()
    old = _unique_on_key(sa.inspect(bind))
    # SQLite cannot drop a constraint in place: batch mode copies the table.
    with op.batch_alter_table("decisions", recreate="auto") as batch:
        if old is not None:
            batch.drop_constraint(old, type_="unique")
        batch.add_column(sa.Column("order_id", sa.String(200)))
        batch.add_column(sa.Column("actor_role", sa.String(100)))
        batch.create_unique_constraint("uq_decisions_actor_key", ["actor_id", "idempotency_key"])
    op.create_index("ix_decisions_order", "decisions", ["order_id", "decided_us"])
    op.create_index("ix_decisions_case", "decisions", ["case_id", "decided_us"])
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("order_id", sa.String(200)))
    for table in _BOUND:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("ledger_hash", sa.String(64)))


def downgrade() -> None:
    """Keys unique across actors again; no order columns, no bindings."""
    for table in _BOUND:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("ledger_hash")
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("order_id")
    op.drop_index("ix_decisions_case", table_name="decisions")
    op.drop_index("ix_decisions_order", table_name="decisions")
    with op.batch_alter_table("decisions", recreate="auto") as batch:
        batch.drop_constraint("uq_decisions_actor_key", type_="unique")
        batch.drop_column("actor_role")
        batch.drop_column("order_id")
        batch.create_unique_constraint("uq_decisions_idempotency_key", ["idempotency_key"])
