"""A running total reads one record's rows through that record's index (PostgreSQL's plan).

On a table it has no statistics for yet, PostgreSQL weighs `action = 'refund'` on
`ix_decisions_similar` as selective as `order_id = 'o-1'` on `ix_decisions_order`, and chose the
first: every total then scanned all of an action's decisions (`_totals._filter`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from conftest import fresh_postgres
from discretion import SqlStore
from discretion.store._compiled import Compiled
from discretion.store._schema import approvals, decisions, to_us
from discretion.store._totals import TotalQuery, _values, statement

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _decision(n: int) -> dict[str, object]:
    return {
        "id": f"dec_{n}",
        "idempotency_key": f"k-{n}",
        "proposal_digest": "0" * 64,
        "action": "refund",
        "outcome": "allow",
        "actor_id": f"bot-{n % 7}",
        "actor_role": "ai_agent",
        "customer_id": f"c-{n % 50}",
        "case_id": f"case-{n}",
        "order_id": f"o-{n}",
        "amount_minor": 2500,
        "currency": "USD",
        "policy_version": "sha256:x",
        "decided_us": to_us(NOW) - n,
        "ledger_seq": n,
        "body": "{}",
    }


def _approval(n: int) -> dict[str, object]:
    return {
        "id": f"dec_{n}",
        "status": "approved",
        "action": "refund",
        "required_role": "tier2",
        "actor_id": f"bot-{n % 7}",
        "actor_role": "ai_agent",
        "customer_id": f"c-{n % 50}",
        "case_id": f"case-{n}",
        "order_id": f"o-{n}",
        "amount_minor": 30000,
        "currency": "USD",
        "proposal": "{}",
        "policy_version": "sha256:x",
        "opened_us": to_us(NOW) - n,
        "due_us": to_us(NOW) + n,
        "escalations": 0,
    }


_KEYS = {"order": "o-1", "case": "c-1", "customer": "c-1", "actor": "bot-1"}


@pytest.mark.postgres
@pytest.mark.parametrize("per", ["order", "case", "customer", "actor"])
def test_a_total_reads_its_records_index_on_a_table_without_statistics(per: str) -> None:
    store = fresh_postgres()
    try:
        with store.engine.begin() as connection:
            connection.execute(insert(decisions), [_decision(n) for n in range(1500)])
            connection.execute(insert(approvals), [_approval(n) for n in range(300)])
        query = TotalQuery(
            per=per,
            key=_KEYS[per],
            since=NOW - timedelta(days=30),
            outcomes=frozenset({"allow", "allow_exception", "pending", "approved"}),
            actions=("refund",),
            actor_id="bot-1",
            role="ai_agent",
        )
        compiled = Compiled(statement(query), store.engine.dialect)
        values: dict[str, object] = {}
        _values(query, "", values)
        with store.engine.connect() as connection:
            cursor = connection.connection.cursor()
            cursor.execute(f"EXPLAIN {compiled.sql}", values)
            plan = "\n".join(row[0] for row in cursor.fetchall())
    finally:
        store.close()
    assert f"ix_decisions_{per}" in plan, plan
    assert f"ix_approvals_{per}" in plan, plan
    for other in ("ix_decisions_similar", "ix_approvals_queue", "ix_approvals_decided"):
        assert other not in plan, plan


def test_a_total_per_actor_reads_the_actors_index_on_sqlite(tmp_path) -> None:
    # Through the idempotency key's unique index it would read every decision the actor ever
    # made, however old, to sum the few inside the window.
    store = SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        with store.engine.begin() as connection:
            connection.execute(insert(decisions), [_decision(n) for n in range(300)])
        query = TotalQuery(
            per="actor",
            key="bot-1",
            since=NOW - timedelta(days=1),
            outcomes=frozenset({"allow", "allow_exception", "pending", "approved"}),
            actions=("refund",),
        )
        compiled = Compiled(statement(query), store.engine.dialect)
        values: dict[str, object] = {}
        _values(query, "", values)
        with store.engine.connect() as connection:
            cursor = connection.connection.cursor()
            assert compiled.order is not None  # SQLite's parameters are positional
            cursor.execute(
                f"EXPLAIN QUERY PLAN {compiled.sql}", tuple(values[k] for k in compiled.order)
            )
            plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
    finally:
        store.close()
    assert "ix_decisions_actor (actor_id=? AND decided_us>?)" in plan, plan
    assert "ix_approvals_actor" in plan, plan
