"""The one schema, on SQLAlchemy Core, shared by SQLite and PostgreSQL.

Times are integers of microseconds since the epoch (UTC): exact, indexable, and the same on
every dialect. Money is an integer of minor units beside its currency.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

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
    UniqueConstraint,
)

from discretion.lineage import LedgerRecord

__all__ = [
    "PARTITIONS",
    "api_tokens",
    "approvals",
    "budget_locks",
    "decisions",
    "executions",
    "from_us",
    "judge_calls",
    "judge_verdicts",
    "ledger",
    "ledger_checkpoints",
    "ledger_head",
    "metadata",
    "precedent_keysets",
    "precedents",
    "reservations",
    "to_us",
    "ui_sessions",
    "webhook_cursors",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch for an aware datetime: how every time column holds it."""
    return (moment - _EPOCH) // _MICROSECOND


def from_us(micros: int) -> datetime:
    """The aware UTC datetime of microseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=micros)


def ledger_record(row: Any) -> LedgerRecord:
    """A `ledger` row as the record it holds."""
    return LedgerRecord(
        seq=int(row.seq),
        partition=int(row.partition),
        chain_seq=int(row.chain_seq),
        kind=row.kind,
        subject_id=row.subject_id,
        body=row.body,
        prev_hash=row.prev_hash,
        hash=row.hash,
        recorded_us=int(row.recorded_us),
    )


metadata = MetaData()

PARTITIONS = 16
"""How many chains a new ledger has; an existing ledger keeps the number it was made with."""

decisions = Table(
    "decisions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("idempotency_key", String(200), nullable=False),
    Column("proposal_digest", String(64), nullable=False),
    Column("action", String(100), nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("actor_id", String(200), nullable=False),
    Column("customer_id", String(200)),
    Column("case_id", String(200)),
    Column("amount_minor", BigInteger),
    Column("currency", String(24)),
    Column("required_role", String(100)),
    Column("reason", String(100)),
    Column("policy_version", String(80), nullable=False),
    Column("decided_us", BigInteger, nullable=False),
    # The decision record's place in its partition's chain (`ledger.chain_seq`).
    Column("ledger_seq", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    # The order it concerns, as its record says (the pack's entities): totals per order read it.
    Column("order_id", String(200)),
    # The role it was proposed under: authority measured on the whole counts per role.
    Column("actor_role", String(100)),
    # The declared arguments a pack's totals are kept per (`args: [sku]`), as the JSON object
    # its record's `keys` holds; NULL when none are.
    Column("arg_keys", Text),
    # An idempotency key is the actor's own: two agents' "call_0" are two decisions.
    UniqueConstraint("actor_id", "idempotency_key", name="uq_decisions_actor_key"),
)
Index("ix_decisions_decided", decisions.c.decided_us)
Index("ix_decisions_customer", decisions.c.customer_id, decisions.c.decided_us)
# Running totals per order, case and actor read one record's recent decisions through these.
Index("ix_decisions_order", decisions.c.order_id, decisions.c.decided_us)
Index("ix_decisions_case", decisions.c.case_id, decisions.c.decided_us)
Index("ix_decisions_actor", decisions.c.actor_id, decisions.c.decided_us)
# `similar()` reads the most recent decisions of one action and reason through this index.
Index("ix_decisions_similar", decisions.c.action, decisions.c.reason, decisions.c.decided_us)

reservations = Table(
    "reservations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decision_id", String(64), ForeignKey("decisions.id"), nullable=False),
    Column("budget_id", String(100), nullable=False),
    Column("budget_key", String(200), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(24), nullable=False),
    Column("reserved_us", BigInteger, nullable=False),
)
# Rolling-window sums read one key's recent rows through this index, never all history.
# It is the table's only index: nothing reads reservations by decision, and each index is
# another page every decision's commit writes (migration 0008 dropped `ix_reservations_decision`).
Index(
    "ix_reservations_window",
    reservations.c.budget_id,
    reservations.c.budget_key,
    reservations.c.reserved_us,
)

# The lineage (discretion.lineage): `PARTITIONS` hash chains, each with its own head row, so
# appends about different decisions lock different rows. `seq` orders the whole ledger (the
# order records were appended in); `(partition, chain_seq)` is a record's place in its chain.
ledger = Table(
    "ledger",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("partition", Integer, nullable=False),
    Column("chain_seq", BigInteger, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("subject_id", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    UniqueConstraint("partition", "chain_seq", name="uq_ledger_chain"),
)
Index("ix_ledger_subject", ledger.c.subject_id)

ledger_head = Table(
    "ledger_head",
    metadata,
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Checkpoints bind every partition's head at one moment, optionally signed (discretion.signing).
ledger_checkpoints = Table(
    "ledger_checkpoints",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at_us", BigInteger, nullable=False),
    Column("heads", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("key_id", String(16)),
    Column("signature", String(128)),
)

# One row per budget key, locked while a decision reads that key's rolling sum and reserves
# against it (PostgreSQL): decisions under different keys never wait for each other.
budget_locks = Table(
    "budget_locks",
    metadata,
    Column("budget_id", String(100), primary_key=True),
    Column("budget_key", String(200), primary_key=True),
)

# The outbox and exactly-once ledger of tool calls (discretion.execution): one row per key.
executions = Table(
    "executions",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("decision_id", String(64), ForeignKey("decisions.id"), nullable=False),
    Column("tool", String(200), nullable=False),
    Column("arguments", Text, nullable=False),
    Column("arguments_digest", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("result", Text),
    Column("error", Text),
    Column("queued_us", BigInteger),
    Column("started_us", BigInteger),
    Column("finished_us", BigInteger),
    # The hash of the ledger record that set this row's current state: a row that disagrees
    # with its record is not acted on, and `verify` names it.
    Column("ledger_hash", String(64)),
)
Index("ix_executions_status", executions.c.status, executions.c.queued_us)
Index("ix_executions_decision", executions.c.decision_id)

# Citable precedent (discretion.precedent). A precedent is found by the digest of its equality
# scope (`match_hash`) for each key set in use (`precedent_keysets`), never by scanning them all.
precedents = Table(
    "precedents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("source_decision_id", String(64), ForeignKey("decisions.id"), nullable=False),
    Column("action", String(100), nullable=False),
    Column("reason", String(100), nullable=False),
    Column("match_keys", Text, nullable=False),
    Column("match_hash", String(64), nullable=False),
    # The fixed bound in minor units, so candidates over it are never read; NULL when only a
    # ratio of the case's facts bounds the precedent.
    Column("bound_minor", BigInteger),
    Column("learnable", Integer, nullable=False),
    Column("citations", Integer, nullable=False),
    Column("uses", Integer, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger),
    Column("body", Text, nullable=False),
    # The hash of the ledger record that set this row's current state: a row that disagrees
    # with its record is not acted on, and `verify` names it.
    Column("ledger_hash", String(64)),
)
# The filter columns ride along in the index: a candidate that is over its fixed bound, revoked
# or a one-off is passed over without reading its row. At 100k precedents most rows sharing a
# scope digest are such candidates, and fetching each from the table was the larger part of
# finding the live ones (benchmarks/scale.py). `uses` stays out: every citation taken changes it.
Index(
    "ix_precedents_match",
    precedents.c.match_hash,
    precedents.c.expires_us,
    precedents.c.bound_minor,
    precedents.c.revoked_us,
    precedents.c.learnable,
)
Index("ix_precedents_source", precedents.c.source_decision_id)

precedent_keysets = Table(
    "precedent_keysets",
    metadata,
    Column("action", String(100), primary_key=True),
    Column("reason", String(100), primary_key=True),
    Column("match_keys", Text, primary_key=True),
)

# The approval queue (discretion.approvals): one row per routed decision, under its id.
approvals = Table(
    "approvals",
    metadata,
    Column("id", String(64), ForeignKey("decisions.id"), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("action", String(100), nullable=False),
    Column("reason", String(100)),
    Column("required_role", String(100), nullable=False),
    Column("actor_id", String(200), nullable=False),
    Column("actor_role", String(100), nullable=False),
    Column("customer_id", String(200)),
    Column("case_id", String(200)),
    Column("amount_minor", BigInteger),
    Column("currency", String(24)),
    Column("approved_minor", BigInteger),
    Column("tool", String(200)),
    Column("proposal", Text, nullable=False),
    Column("policy_version", String(80), nullable=False),
    Column("opened_us", BigInteger, nullable=False),
    Column("due_us", BigInteger, nullable=False),
    Column("escalations", Integer, nullable=False),
    Column("decided_us", BigInteger),
    Column("decided_by", String(200)),
    Column("decided_role", String(100)),
    Column("note", Text),
    Column("order_id", String(200)),
    # The hash of the ledger record that set this row's current state: a row that disagrees
    # with its record is not acted on, and `verify` names it.
    Column("ledger_hash", String(64)),
    # The first of two approvals a case above its action's `two_approvals_above` needs, as
    # JSON (who, their role, the amount, their note, when); NULL until it is given.
    Column("endorsement", Text),
)
Index("ix_approvals_queue", approvals.c.status, approvals.c.due_us)
Index("ix_approvals_decided", approvals.c.status, approvals.c.decided_us)
# Running totals count pending and approved cases per record (`_totals`), through these.
Index("ix_approvals_order", approvals.c.order_id, approvals.c.opened_us)
Index("ix_approvals_case", approvals.c.case_id, approvals.c.opened_us)
Index("ix_approvals_customer", approvals.c.customer_id, approvals.c.opened_us)
Index("ix_approvals_actor", approvals.c.actor_id, approvals.c.opened_us)

# Bearer tokens of agents and approvers (discretion.approvals): only their SHA-256 is kept.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("subject_id", String(200), nullable=False),
    Column("role", String(100), nullable=False),
    Column("is_ai", Integer, nullable=False),
    Column("label", String(200), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger),
    # The hash of the ledger record that set this row's current state: a row that disagrees
    # with its record is not acted on, and `verify` names it.
    Column("ledger_hash", String(64)),
)

# Signed-in sessions of the approver web UI (discretion.api), by the SHA-256 of the cookie.
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("token_id", String(40), ForeignKey("api_tokens.id"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    # Signed out: kept, as a revoked token is, so the ledger's record of it still has its row.
    Column("closed_us", BigInteger, nullable=True),
    # The `session.opened` (or `session.closed`) record that set its state (`_bindings`).
    Column("ledger_hash", String(64), nullable=True),
)

# The LLM judge's verdicts (discretion.judge), by the SHA-256 of (proposal digest, context
# digest, prompt hash, model): the same question is never paid for twice.
judge_verdicts = Table(
    "judge_verdicts",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("model", String(200), nullable=False),
    Column("prompt_hash", String(64), nullable=False),
    Column("assessment", Text, nullable=False),
    Column("recorded_us", BigInteger, nullable=False),
    # The hash of the `judge.verdict` record that binds it (`_bindings`): a cached verdict
    # decides later cases, so one written behind discretion's back is never used.
    Column("ledger_hash", String(64)),
)

# The LLM judge's calls per UTC day (discretion.judge), counted across every process.
judge_calls = Table(
    "judge_calls",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("calls", Integer, nullable=False),
)

# Where each webhook endpoint has got to in the ledger (discretion.webhooks), and who is
# delivering to it. Delivery state, not a working row: it holds no authority (see
# docs/ledger.md), so it is not bound to the ledger.
webhook_cursors = Table(
    "webhook_cursors",
    metadata,
    Column("endpoint", String(64), primary_key=True),
    Column("url", Text, nullable=False),
    # The last chain_seq delivered in each partition, as a JSON list indexed by partition: a
    # partition's records commit in chain_seq order, so nothing behind a position is ever
    # still to come (ledger.seq is not: it is taken before commit, out of commit order).
    Column("positions", Text, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("delivered", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_us", BigInteger),
    Column("last_error", Text),
    Column("lease_owner", String(100)),
    Column("lease_until_us", BigInteger),
    Column("updated_us", BigInteger, nullable=False),
)
