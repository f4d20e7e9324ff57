"""The one schema, on SQLAlchemy Core, shared by SQLite and PostgreSQL.

Times are integers of microseconds since the epoch (UTC): exact, indexable, and the same on
every dialect. Money is an integer of minor units beside its currency.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = ["decisions", "ledger", "ledger_head", "metadata", "reservations"]

metadata = MetaData()

decisions = Table(
    "decisions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("proposal_digest", String(64), nullable=False),
    Column("action", String(100), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("actor_id", String(200), nullable=False),
    Column("customer_id", String(200)),
    Column("case_id", String(200)),
    Column("amount_minor", BigInteger),
    Column("currency", String(3)),
    Column("required_role", String(100)),
    Column("policy_version", String(80), nullable=False),
    Column("decided_us", BigInteger, nullable=False),
    Column("ledger_seq", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
)
Index("ix_decisions_decided", decisions.c.decided_us)
Index("ix_decisions_customer", decisions.c.customer_id, decisions.c.decided_us)

reservations = Table(
    "reservations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decision_id", String(64), ForeignKey("decisions.id"), nullable=False),
    Column("budget_id", String(100), nullable=False),
    Column("budget_key", String(200), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reserved_us", BigInteger, nullable=False),
)
# Rolling-window sums read one key's recent rows through this index, never all history.
Index(
    "ix_reservations_window",
    reservations.c.budget_id,
    reservations.c.budget_key,
    reservations.c.reserved_us,
)
Index("ix_reservations_decision", reservations.c.decision_id)

ledger = Table(
    "ledger",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(40), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
)
Index("ix_ledger_subject", ledger.c.subject_id)

ledger_head = Table(
    "ledger_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)
