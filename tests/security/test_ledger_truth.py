"""The ledger is the truth: every working row answers to the lineage record that set it.

An outside review edited working tables behind discretion's back: a decision's outcome from
route to allow was served as the retry's answer and by `GET /v1/decisions/{id}`, deleted
reservations let more refunds through, and edits to approvals, executions, tokens and
checkpoints passed `ledger verify`. Here each working table is edited, deleted from and forged
into, on SQLite and PostgreSQL: `verify` names the row, and a row that disagrees with its record
is never served or acted on.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, insert, select, update

from approvals.conftest import facts, precedent_pack  # noqa: F401  (fixtures)
from approvals.helpers import BOT, LOST, TESS, TOM
from conftest import refund
from discretion import LedgerIntegrityError, Money, Outcome, SqlStore, StoreError
from discretion._metrics import GuardMetrics
from discretion.api import Tokens, create_app
from discretion.precedent import PrecedentSpec
from discretion.store._schema import (
    api_tokens,
    approvals,
    decisions,
    executions,
    judge_verdicts,
    ledger,
    precedents,
    reservations,
    ui_sessions,
)


@pytest.fixture
def world(make_guard, precedent_pack, facts, clock, store: SqlStore) -> SimpleNamespace:  # noqa: F811
    """A decision of each outcome, an approval with precedent, an execution and a token."""
    guard = make_guard(policy=precedent_pack, context=facts)
    allowed = guard.decide(refund("40.00", key="k-allow"))
    assert allowed.outcome is Outcome.ALLOW
    assert allowed.reservations
    facts.facts.update(LOST)
    routed = guard.decide(refund("125.00", key="k-route", reason="carrier-lost"))
    assert routed.outcome is Outcome.ROUTE
    spec = PrecedentSpec(
        scope={"shipment.status": "lost"},
        max_amount=Money.of("125.00", "USD"),
        expires_at=clock.now + timedelta(days=30),
        citations=3,
        note="carrier lost a whole trailer",
    )
    guard.approvals.approve(routed.id, approver=TOM, note="lost trailer", precedent=spec)
    guard.approvals.register("issue_refund", lambda arguments, key: {"refund_id": key})
    [ran] = guard.approvals.run_approved()
    denied = guard.decide(refund("900.00", key="k-deny"))
    assert denied.outcome is Outcome.DENY
    secret, identity = Tokens(store, clock=guard.now).create(subject_id="ann", role="tier2")
    [precedent] = guard.precedents.list()
    store.verdicts.remember("q-1", '{"verdict": 1}', model="m", prompt_hash="p", at=guard.now())
    assert store.verify() > 0
    return SimpleNamespace(
        guard=guard,
        store=store,
        allowed=allowed,
        routed=routed,
        denied=denied,
        execution=ran.key,
        precedent=precedent.id,
        secret=secret,
        token=identity.token_id,
    )


def run(store: SqlStore, *statements: Any) -> None:
    with store.engine.begin() as connection:
        for statement in statements:
            connection.execute(statement)


def named_by_verify(store: SqlStore) -> str:
    with pytest.raises(LedgerIntegrityError) as raised:
        store.verify()
    return str(raised.value)


EDITS = {
    "decisions": lambda w: (
        update(decisions).where(decisions.c.id == w.routed.id).values(outcome="allow")
    ),
    "reservations": lambda w: (
        update(reservations)
        .where(reservations.c.decision_id == w.allowed.id)
        .values(amount_minor=1)
    ),
    "approvals": lambda w: (
        update(approvals).where(approvals.c.id == w.routed.id).values(required_role="tier1")
    ),
    "executions": lambda w: (
        update(executions).where(executions.c.key == w.execution).values(status="pending")
    ),
    "precedents": lambda w: (
        update(precedents).where(precedents.c.id == w.precedent).values(citations=999)
    ),
    "api_tokens": lambda w: (
        update(api_tokens).where(api_tokens.c.id == w.token).values(role="admin")
    ),
    "judge_verdicts": lambda w: (
        update(judge_verdicts)
        .where(judge_verdicts.c.key == "q-1")
        .values(assessment='{"verdict": 2}')
    ),
}


@pytest.mark.parametrize("table", sorted(EDITS))
def test_an_edited_row_of_every_working_table_is_named_by_verify(world, table):
    run(world.store, EDITS[table](world))
    assert table in named_by_verify(world.store)


DELETES = {
    "decisions": lambda w: delete(decisions).where(decisions.c.id == w.denied.id),
    "reservations": lambda w: delete(reservations),
    "approvals": lambda w: delete(approvals).where(approvals.c.id == w.routed.id),
    "executions": lambda w: delete(executions).where(executions.c.key == w.execution),
    "precedents": lambda w: delete(precedents).where(precedents.c.id == w.precedent),
    "api_tokens": lambda w: delete(api_tokens).where(api_tokens.c.id == w.token),
    "judge_verdicts": lambda w: delete(judge_verdicts).where(judge_verdicts.c.key == "q-1"),
}


@pytest.mark.parametrize("table", sorted(DELETES))
def test_a_deleted_row_of_every_working_table_is_named_by_verify(world, table):
    run(world.store, DELETES[table](world))
    message = named_by_verify(world.store)
    assert table in message or "decision" in message
    assert "deleted" in message


def test_a_forged_token_is_named_by_verify_and_never_signs_in(world):
    from discretion.api._auth import token_digest

    run(
        world.store,
        insert(api_tokens).values(
            id="tok_forged",
            token_hash=token_digest("dsc_forged-secret"),
            subject_id="mallory",
            role="tier2",
            is_ai=0,
            label="",
            created_us=0,
        ),
    )
    assert "api_tokens row 'tok_forged' is not bound" in named_by_verify(world.store)
    with pytest.raises(LedgerIntegrityError, match="tok_forged"):
        Tokens(world.store, clock=world.guard.now).authenticate("dsc_forged-secret")
    assert world.store.bindings.failures["api_tokens"] == 1


def test_a_tampered_decision_row_is_not_served_as_a_retry_answer(world):
    body = world.store.decision(world.routed.id).model_dump_json().replace('"route"', '"allow"')
    run(
        world.store,
        update(decisions)
        .where(decisions.c.id == world.routed.id)
        .values(outcome="allow", body=body),
    )
    with pytest.raises(LedgerIntegrityError, match=world.routed.id):
        world.guard.decide(refund("125.00", key="k-route", reason="carrier-lost"))
    with pytest.raises(LedgerIntegrityError):
        world.store.decision(world.routed.id)
    assert world.store.bindings.failures["decisions"] == 2


def test_a_tampered_decision_is_refused_over_http_and_counted(world):
    run(
        world.store,
        update(decisions).where(decisions.c.id == world.routed.id).values(outcome="allow"),
    )
    client = TestClient(create_app(world.guard))
    answer = client.get(
        f"/v1/decisions/{world.routed.id}", headers={"Authorization": f"Bearer {world.secret}"}
    )
    assert answer.status_code == 409
    assert answer.json()["error"] == "ledger_integrity"
    assert "allow" not in answer.json().get("decision", "")
    exposition = GuardMetrics(world.guard).exposition().decode()
    assert 'discretion_ledger_binding_failures_total{table="decisions"} 1.0' in exposition


def test_an_edited_approval_is_not_acted_on(world, clock):
    again = world.guard.decide(refund("110.00", key="k-route-2", customer="c-2"))
    assert again.outcome is Outcome.ROUTE, again.causes
    run(
        world.store,
        update(approvals).where(approvals.c.id == again.id).values(required_role="tier1"),
    )
    with pytest.raises(LedgerIntegrityError, match=f"approvals row '{again.id}'"):
        world.guard.approvals.approve(again.id, approver=TOM, note="ok")
    assert world.store.executions.for_decision(again.id) == []


def test_a_precedent_edited_outside_discretion_is_never_cited(world):
    run(
        world.store,
        update(precedents)
        .where(precedents.c.id == world.precedent)
        .values(bound_minor=10_000_000, citations=999),
    )
    with pytest.raises(LedgerIntegrityError, match="precedents row"):
        world.guard.decide(
            refund(
                "120.00",
                key="k-cite",
                reason="carrier-lost",
                rationale={
                    "reason": "carrier-lost",
                    "text": "same as before",
                    "precedents": [world.precedent],
                },
            )
        )
    assert world.store.find_decision("bot-1", "k-cite") is None


def test_deleted_reservations_do_not_pass_verify(world):
    run(world.store, delete(reservations).where(reservations.c.decision_id == world.allowed.id))
    assert f"decision {world.allowed.id}" in named_by_verify(world.store)


def test_a_row_written_without_a_ledger_record_does_not_commit(world):
    again = world.guard.decide(refund("110.00", key="k-route-2", customer="c-2"))
    due = world.guard.now() + timedelta(days=9)
    with (
        pytest.raises(StoreError, match="without a ledger record"),
        world.store.transaction() as tx,
    ):
        tx.approvals.escalate(again.id, required_role="tier2", due_at=due, escalations=1)
    assert world.store.approvals.get(again.id).escalations == 0
    assert world.store.verify() > 0


def test_rows_from_before_bindings_are_adopted_once_by_db_upgrade(world):
    run(world.store, update(api_tokens).values(ledger_hash=None))
    with pytest.raises(LedgerIntegrityError, match="not bound"):
        Tokens(world.store, clock=world.guard.now).authenticate(world.secret)
    assert world.store.bind_rows(at=world.guard.now()) == 1
    assert world.store.bind_rows(at=world.guard.now()) == 0
    assert Tokens(world.store, clock=world.guard.now).authenticate(world.secret) is not None
    assert world.store.verify() > 0
    kinds = [r["kind"] for r in world.store.export()]
    assert kinds.count("row.adopted") == 1


def test_every_write_to_a_working_table_binds_its_row(world):
    with world.store.engine.connect() as connection:
        for table in (approvals, executions, precedents, api_tokens):
            unbound = connection.execute(select(table).where(table.c.ledger_hash.is_(None))).all()
            assert unbound == [], table.name


def test_a_cached_verdict_is_used_only_as_its_record_bound_it(world):
    assert world.store.verdicts.cached("q-1") == '{"verdict": 1}'
    run(world.store, EDITS["judge_verdicts"](world))
    with pytest.raises(LedgerIntegrityError, match="judge_verdicts row 'q-1'"):
        world.store.verdicts.cached("q-1")


def test_verdicts_from_before_they_were_bound_are_adopted_by_db_upgrade(world):
    run(world.store, update(judge_verdicts).values(ledger_hash=None))
    with pytest.raises(LedgerIntegrityError, match="not bound"):
        world.store.verdicts.cached("q-1")
    assert world.store.bind_rows(at=world.guard.now()) == 1
    assert world.store.verdicts.cached("q-1") == '{"verdict": 1}'
    assert world.store.verify() > 0


def test_sessions_from_before_they_were_bound_are_adopted_by_db_upgrade(world):
    now = world.guard.now()
    token = Tokens(world.store, clock=world.guard.now).authenticate(world.secret)
    assert token is not None
    with world.store.transaction() as tx:
        tx.identities.add_session(
            digest="s" * 64,
            token_id=token.token_id,
            csrf="c" * 32,
            created_at=now,
            expires_at=now + timedelta(hours=8),
        )
    run(world.store, update(ui_sessions).values(ledger_hash=None))
    with pytest.raises(LedgerIntegrityError, match=r"ui_sessions row .* is not bound"):
        world.store.identities.find_session("s" * 64, now=now)
    assert world.store.bind_rows(at=now) == 1
    assert world.store.identities.find_session("s" * 64, now=now) is not None
    assert world.store.verify() > 0


def _row(store: SqlStore, table: Any, where: Any) -> dict[str, Any]:
    with store.engine.connect() as connection:
        return dict(connection.execute(select(table).where(where)).one()._mapping)


def _set_back(store: SqlStore, table: Any, where: Any, state: dict[str, Any]) -> None:
    run(store, update(table).where(where).values(**state))


def test_an_execution_set_back_to_pending_is_not_run_again(world):
    """A call that ran, its row restored to its genuine queued state, never runs a second time."""
    again = world.guard.decide(refund("110.00", key="k-route-2", customer="c-2"))
    assert again.outcome is Outcome.ROUTE, again.causes
    world.guard.approvals.approve(again.id, approver=TOM, note="ok")
    where = executions.c.decision_id == again.id
    queued = _row(world.store, executions, where)
    paid: list[str] = []
    world.guard.approvals.register(
        "issue_refund", lambda arguments, key: paid.append(arguments["amount"]) or "ok"
    )
    world.guard.approvals.run_approved()
    assert paid == ["110.00"]
    _set_back(world.store, executions, where, queued)
    with pytest.raises(LedgerIntegrityError, match="set back to an earlier state"):
        world.guard.approvals.run_approved()
    assert paid == ["110.00"]
    assert "executions" in named_by_verify(world.store)


def test_an_approval_set_back_to_pending_is_not_decided_again(world):
    """An approved case restored to pending cannot be rejected (its money has moved)."""
    again = world.guard.decide(refund("110.00", key="k-route-2", customer="c-2"))
    where = approvals.c.id == again.id
    pending = _row(world.store, approvals, where)
    world.guard.approvals.approve(again.id, approver=TOM, note="ok")
    _set_back(world.store, approvals, where, pending)
    with pytest.raises(LedgerIntegrityError, match=f"approvals row '{again.id}' is not in the"):
        world.guard.approvals.reject(again.id, approver=TESS, note="changed my mind")
    # Nothing was written: the ledger still says approved, and verify names the row.
    assert _row(world.store, approvals, where) == pending
    assert f"approvals row '{again.id}'" in named_by_verify(world.store)


def test_a_set_back_row_acted_on_before_the_check_existed_is_named_by_verify(world):
    """A record that changed a row from another state than its newest is named by verify.

    Written as an older release would have: the row set back, then changed by a transaction
    that did not look at its newest record first.
    """
    from discretion.store import _bindings

    again = world.guard.decide(refund("110.00", key="k-route-2", customer="c-2"))
    where = approvals.c.id == again.id
    pending = _row(world.store, approvals, where)
    world.guard.approvals.approve(again.id, approver=TOM, note="ok")
    _set_back(world.store, approvals, where, pending)
    original = _bindings.newest_binding
    try:
        _bindings.newest_binding = lambda *args: None  # type: ignore[assignment]
        import discretion.store._sql as sql_module

        sql_module.newest_binding = _bindings.newest_binding  # type: ignore[attr-defined]
        world.guard.approvals.reject(again.id, approver=TESS, note="changed my mind")
    finally:
        _bindings.newest_binding = original
        sql_module.newest_binding = original  # type: ignore[attr-defined]
    message = named_by_verify(world.store)
    assert f"approvals row '{again.id}'" in message
    assert "set back or deleted and written again" in message


def test_a_row_deleted_and_written_again_is_named_by_verify(world, facts):  # noqa: F811
    """A call's row deleted after it ran and claimed anew under its key: verify names it."""
    facts.facts["shipment.status"] = "delivered"
    ran: list[str] = []

    @world.guard.governed(action="refund", actor=BOT)
    def refund_order(
        order_id: str, amount: Decimal, customer_id: str = "c-3", case_id: str = "case-3"
    ) -> str:
        ran.append(order_id)
        return "ok"

    refund_order("o-3", Decimal("20.00"))
    assert world.store.verify() > 0
    run(world.store, delete(executions).where(executions.c.key.like("bot-1:refund_order:%")))
    refund_order("o-3", Decimal("20.00"))
    message = named_by_verify(world.store)
    assert "executions row" in message
    assert "set back or deleted and written again" in message


def test_renumbering_the_ledger_table_does_not_hide_a_rows_later_records(world):
    """`seq` is the table's numbering, in no hash: moving the records that ran a call below
    the one that queued it must not make the queued state look like the newest."""
    again = world.guard.decide(refund("110.00", key="k-route-2", customer="c-2"))
    world.guard.approvals.approve(again.id, approver=TOM, note="ok")
    where = executions.c.decision_id == again.id
    queued = _row(world.store, executions, where)
    paid: list[str] = []
    world.guard.approvals.register(
        "issue_refund", lambda arguments, key: paid.append(arguments["amount"]) or "ok"
    )
    world.guard.approvals.run_approved()
    with world.store.engine.begin() as connection:
        later = (
            connection.execute(
                select(ledger.c.seq)
                .where(ledger.c.kind.in_(["execution.started", "execution.succeeded"]))
                .where(ledger.c.subject_id == again.id)
            )
            .scalars()
            .all()
        )
        for number, seq in enumerate(later, start=1):
            connection.execute(update(ledger).where(ledger.c.seq == seq).values(seq=-number))
    _set_back(world.store, executions, where, queued)
    with pytest.raises(LedgerIntegrityError, match="set back to an earlier state"):
        world.guard.approvals.run_approved()
    assert paid == ["110.00"]
