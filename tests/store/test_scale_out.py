"""Many processes, one PostgreSQL: every invariant checked from the rows afterwards."""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter as Tally
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from conftest import fresh_postgres
from discretion import Guard, Money, Outcome, SqlStore, load_pack
from discretion.precedent import PrecedentSpec
from discretion.proposal import Actor
from discretion.store._schema import (
    approvals,
    decisions,
    executions,
    ledger,
    ledger_head,
    precedents,
    reservations,
)

from ._scale_workers import CUSTOMERS, NOW, PACK, OnFile, approve_all, decide_many

pytestmark = pytest.mark.postgres

WORKERS = 4
PER_WORKER = 120
CITATIONS = 12
BUDGET = "customer-exceptions-30d"
BUDGET_LIMIT_MINOR = 30000


@pytest.fixture
def postgres() -> Iterator[SqlStore]:
    store = fresh_postgres()
    yield store
    store.close()


def _set_precedent(store: SqlStore) -> str:
    guard = Guard(load_pack(PACK), store=store, context=OnFile(), clock=lambda: NOW)
    manager = Actor(id="maria", role="manager", is_ai=False)
    granted = guard.decide(
        {
            "actor": manager.model_dump(),
            "tool": {
                "name": "issue_refund",
                "arguments": {"amount": "80.00", "customer_id": "g-1", "case_id": "grant"},
            },
            "rationale": {"reason": "carrier-lost", "text": "the carrier lost a trailer"},
            "idempotency_key": "grant",
        }
    )
    assert granted.outcome is Outcome.ALLOW_EXCEPTION
    precedent = guard.precedents.set(
        granted.id,
        PrecedentSpec(
            scope={"shipment.carrier": "parcelco"},
            max_amount=Money.of("100.00", "USD"),
            expires_at=NOW + timedelta(days=30),
            citations=CITATIONS,
            note="ParcelCo lost a trailer",
        ),
        grantor=manager,
    )
    return precedent.id


def test_four_processes_keep_budgets_citations_keys_approvals_and_the_chain(postgres):
    store = postgres
    precedent_id = _set_precedent(store)
    url = store.engine.url.render_as_string(hide_password=False)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=WORKERS, mp_context=spawn) as pool:
        runs = [pool.submit(decide_many, url, w, PER_WORKER, precedent_id) for w in range(WORKERS)]
        answers = [a for run in runs for a in run.result(timeout=300)]
    assert len(answers) == WORKERS * PER_WORKER

    with store.engine.connect() as connection:
        rows = connection.execute(select(decisions)).all()
        reserved = connection.execute(
            select(reservations.c.budget_key, func.sum(reservations.c.amount_minor))
            .where(reservations.c.budget_id == BUDGET)
            .group_by(reservations.c.budget_key)
        ).all()
        uses, cap = connection.execute(
            select(precedents.c.uses, precedents.c.citations).where(precedents.c.id == precedent_id)
        ).one()
        queued = connection.execute(select(approvals.c.id, approvals.c.status)).all()
    by_key = {row.idempotency_key: row for row in rows}
    bodies = {row.id: json.loads(row.body) for row in rows}

    # Exactly once: every process got the one decision recorded under each key.
    assert len(by_key) == len(rows)
    keys = {key for key, _, _ in answers} | {"grant"}
    assert set(by_key) == keys
    for key, decision_id, outcome in answers:
        assert by_key[key].id == decision_id
        assert by_key[key].outcome == outcome

    # Budgets: no customer's exceptions went past 300.00, and each reservation is a decision's.
    granted_per_customer = Tally[str]()
    for row in rows:
        if row.outcome == "allow_exception":
            granted_per_customer[row.customer_id] += row.amount_minor
    reserved_per_customer = dict(reserved)
    assert reserved_per_customer == dict(granted_per_customer)
    for customer in (f"c-{n}" for n in range(CUSTOMERS)):
        assert reserved_per_customer[customer] <= BUDGET_LIMIT_MINOR
        # Contended: the budget is used right up to the last 15.00 that fits.
        assert reserved_per_customer[customer] > BUDGET_LIMIT_MINOR - 1500
    over = [r for r in rows if r.customer_id and r.customer_id.startswith("c-")]
    assert any(BUDGET in bodies[r.id]["rules"] for r in over if r.outcome == "route")

    # Precedent: citations taken never exceed the cap, and each taken one is an applied decision.
    applied = [
        row
        for row in rows
        if (bodies[row.id].get("precedents") or {}).get("applied") == precedent_id
    ]
    assert uses == cap == CITATIONS
    assert len(applied) == CITATIONS
    assert {row.outcome for row in applied} == {"allow_exception"}
    cited = [row for row in rows if row.idempotency_key.startswith("cite-")]
    assert Tally(row.outcome for row in cited) == {
        "allow_exception": CITATIONS,
        "route": len(cited) - CITATIONS,
    }

    # Every routed decision, and only those, opened one approval.
    routed = {row.id for row in rows if row.outcome == "route"}
    assert {a.id for a in queued} == routed
    assert {a.status for a in queued} == {"pending"}

    # Approvals: four processes race to approve each case; each is approved exactly once.
    to_approve = sorted(row.id for row in rows if row.idempotency_key.startswith("route-"))
    assert len(to_approve) == PER_WORKER // 4
    with ProcessPoolExecutor(max_workers=WORKERS, mp_context=spawn) as pool:
        runs = [
            pool.submit(approve_all, url, f"manager-{w}", to_approve[w:] + to_approve[:w])
            for w in range(WORKERS)
        ]
        won = [approval_id for run in runs for approval_id in run.result(timeout=300)]
    assert sorted(won) == to_approve

    with store.engine.connect() as connection:
        statuses = dict(
            connection.execute(
                select(approvals.c.id, approvals.c.status).where(approvals.c.id.in_(to_approve))
            ).all()
        )
        queued_calls = connection.execute(
            select(executions.c.decision_id, func.count()).group_by(executions.c.decision_id)
        ).all()
        kinds = Tally(
            dict(
                connection.execute(
                    select(ledger.c.kind, func.count()).group_by(ledger.c.kind)
                ).all()
            )
        )
        places = connection.execute(
            select(ledger.c.partition, ledger.c.chain_seq).order_by(ledger.c.seq)
        ).all()
        heads = dict(connection.execute(select(ledger_head.c.partition, ledger_head.c.seq)).all())
        decision_records = connection.execute(
            select(decisions.c.ledger_seq, ledger.c.chain_seq)
            .select_from(decisions)
            .join(ledger, (ledger.c.subject_id == decisions.c.id) & (ledger.c.kind == "decision"))
        ).all()
    assert set(statuses.values()) == {"approved"}
    assert {decision_id: n for decision_id, n in queued_calls} == dict.fromkeys(to_approve, 1)

    # Lineage: one record per decision at its own place, gapless chains in the ledger's order,
    # spread over the partitions, and it verifies.
    assert kinds["decision"] == len(rows)
    assert len(decision_records) == len(rows)
    assert all(decided == recorded for decided, recorded in decision_records)
    for partition, last in heads.items():
        assert [s for p, s in places if p == partition] == list(range(1, last + 1))
    assert sum(1 for last in heads.values() if last > 0) >= 8
    assert store.verify() == sum(heads.values()) == len(places)
