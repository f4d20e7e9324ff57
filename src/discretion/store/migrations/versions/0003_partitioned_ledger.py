"""The ledger in partitions: one chain and one head row per partition, checkpoints, budget locks.

The existing single chain becomes partition 0 unchanged: its records keep their hashes (partition
0 hashes as the single chain did) and their order; the other partitions start empty.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

# Written out so this revision never changes with the package's constants.
_GENESIS = "0" * 64
_PARTITIONS = 16


def upgrade() -> None:
    """Move the chain into partition 0 and create the other partitions, checkpoints and locks."""
    bind = op.get_bind()
    op.create_table(
        "ledger_next",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("chain_seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("recorded_us", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("partition", "chain_seq", name="uq_ledger_chain"),
    )
    op.execute(
        "INSERT INTO ledger_next"
        " (seq, partition, chain_seq, kind, subject_id, body, prev_hash, hash, recorded_us)"
        " SELECT seq, 0, seq, kind, subject_id, body, prev_hash, hash, recorded_us FROM ledger"
    )
    op.drop_table("ledger")
    op.rename_table("ledger_next", "ledger")
    op.create_index("ix_ledger_subject", "ledger", ["subject_id"])
    if bind.dialect.name == "postgresql":
        # The copied records kept their numbers: new ones continue after them.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('ledger', 'seq'),"
            " (SELECT COALESCE(MAX(seq), 0) + 1 FROM ledger), false)"
        )

    old_head = bind.execute(sa.text("SELECT seq, hash FROM ledger_head WHERE id = 1")).first()
    op.drop_table("ledger_head")
    head = op.create_table(
        "ledger_head",
        sa.Column("partition", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    first = (int(old_head.seq), str(old_head.hash)) if old_head is not None else (0, _GENESIS)
    op.bulk_insert(
        head,
        [{"partition": 0, "seq": first[0], "hash": first[1]}]
        + [{"partition": p, "seq": 0, "hash": _GENESIS} for p in range(1, _PARTITIONS)],
    )

    op.create_table(
        "ledger_checkpoints",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("heads", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(16)),
        sa.Column("signature", sa.String(128)),
    )
    op.create_table(
        "budget_locks",
        sa.Column("budget_id", sa.String(100), primary_key=True),
        sa.Column("budget_key", sa.String(200), primary_key=True),
    )


def downgrade() -> None:
    """Fold the ledger back into one chain, when only partition 0 holds records.

    Records in other partitions have no place in a single chain, so a ledger that has them is
    refused rather than rewritten.
    """
    bind = op.get_bind()
    others = bind.execute(sa.text("SELECT COUNT(*) FROM ledger WHERE partition <> 0")).scalar_one()
    if others:
        raise RuntimeError(
            f"{others} lineage records are in partitions other than 0 and cannot be folded into"
            " one chain; restore a backup taken before revision 0003 instead"
        )
    op.drop_table("budget_locks")
    op.drop_table("ledger_checkpoints")
    first = bind.execute(sa.text("SELECT seq, hash FROM ledger_head WHERE partition = 0")).first()
    op.drop_table("ledger_head")
    head = op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(
        head,
        [{"id": 1, "seq": first.seq if first else 0, "hash": first.hash if first else _GENESIS}],
    )
    op.create_table(
        "ledger_single",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("recorded_us", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO ledger_single (seq, kind, subject_id, body, prev_hash, hash, recorded_us)"
        " SELECT chain_seq, kind, subject_id, body, prev_hash, hash, recorded_us FROM ledger"
    )
    op.drop_table("ledger")
    op.rename_table("ledger_single", "ledger")
    op.create_index("ix_ledger_subject", "ledger", ["subject_id"])
