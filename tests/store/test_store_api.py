"""The store's access API where the guard's public behaviour does not already pin it down."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import event, select, text

from approvals.helpers import TINA
from conftest import NOW, refund, traced_sqlite
from discretion import Decision, Money, Outcome, Reservation
from discretion.approvals import ApprovalStatus
from discretion.errors import LedgerIntegrityError, StoreError
from discretion.execution import ExecutionStatus
from discretion.lineage import canonical_json
from discretion.store import DecisionRecord, ExecutionRow, SqlStore, TokenRow
from discretion.store._approvals import APPROVED, PENDING
from discretion.store._schema import decisions


def stored_decision(key: str = "k-store", amount: str = "12.00") -> Decision:
    return Decision(
        id=f"dec_{key}",
        outcome=Outcome.ALLOW,
        action="refund",
        actor_id="bot-1",
        actor_role="ai_agent",
        rules=["standard.refund"],
        explanation="inside standard policy",
        amount=Money.of(amount, "USD"),
        entities={"customer": "c-9", "case": "case-9"},
        reservations=[
            Reservation(budget="per-customer", key="c-9", amount=Money.of(amount, "USD"))
        ],
        proposal_digest="0" * 64,
        idempotency_key=key,
        context_digest="1" * 64,
        policy_version="test",
        decided_at=NOW,
    )


def record_of(decision: Decision) -> DecisionRecord:
    return DecisionRecord(
        decision=decision,
        proposal={
            "customer_id": "c-9",
            "case_id": "case-9",
            "idempotency_key": decision.idempotency_key,
        },
        context={"customer.tier": "gold"},
    )


def test_a_decision_record_is_hashed_as_the_body_ledgers_always_had(store: SqlStore):
    # Existing ledgers verify only if the body's bytes are what the guard used to write:
    # {"decision", "proposal", "context"} through canonical_json, the decision without its hash.
    decision = stored_decision()
    record = record_of(decision)
    with store.transaction() as tx:
        stamped = tx.append(record)
    [entry] = store.history(decision.id)
    assert entry.body == canonical_json(
        {
            "decision": decision.model_dump(mode="json", exclude={"lineage_hash"}),
            "proposal": dict(record.proposal),
            "context": dict(record.context),
        }
    )
    assert json.loads(entry.body) == store.decision_body(decision.id)
    assert store.decision(decision.id) == stamped
    assert store.find_decision(decision.actor_id, decision.idempotency_key) == stamped
    assert store.verify() == 1


def test_a_transaction_reads_its_own_writes(store: SqlStore):
    decision = stored_decision()
    with store.transaction() as tx:
        assert tx.decision(decision.id) is None
        tx.append(record_of(decision))
        assert tx.decision(decision.id) is not None
        assert tx.decision_body(decision.id)["context"] == {"customer.tier": "gold"}
        assert tx.has_record(decision.id, "decision")
        assert not tx.has_record(decision.id, "approval.approved")
        # The decision's own reservation counts at once, and one reserved later adds to it.
        since = NOW - timedelta(days=1)
        assert tx.budget_used("per-customer", "c-9", since) == 1200
        extra = Reservation(budget="per-customer", key="c-9", amount=Money.of("3.00", "USD"))
        tx.reserve(decision.id, [extra], at=NOW + timedelta(minutes=1))
        assert tx.budget_used("per-customer", "c-9", since) == 1500
        assert tx.budget_used("per-customer", "c-9", NOW) == 300


def test_a_budget_sum_in_one_currency_leaves_the_others_out(store: SqlStore):
    decision = stored_decision()
    with store.transaction() as tx:
        tx.append(record_of(decision))  # 12.00 USD
        euros = Reservation(budget="per-customer", key="c-9", amount=Money.of("5.00", "EUR"))
        tx.reserve(decision.id, [euros], at=NOW)
        since = NOW - timedelta(days=1)
        assert tx.budget_used("per-customer", "c-9", since, currency="USD") == 1200
        assert tx.budget_used("per-customer", "c-9", since, currency="EUR") == 500
        assert tx.budget_used("per-customer", "c-9", since, currency="GBP") == 0
        # No currency named: every currency's minor units together.
        assert tx.budget_used("per-customer", "c-9", since) == 1700
        assert tx.budget_used("per-customer", "c-8", since, currency="USD") == 0


def test_decisions_are_read_by_id_and_unknown_ids_left_out(make_guard, store: SqlStore):
    guard = make_guard()
    first = guard.decide(refund("10.00", key="a"))
    second = guard.decide(refund("11.00", key="b"))
    found = store.decisions([second.id, first.id, "dec_unknown", first.id])
    assert found == {first.id: first, second.id: second}
    assert store.decisions([]) == {}


def test_history_lists_what_became_of_a_decision_with_its_times(make_guard, store, clock):
    guard = make_guard()
    routed = guard.decide(refund("80.00"))
    assert routed.outcome is Outcome.ROUTE
    clock.advance(minutes=5)
    guard.approvals.approve(routed.id, approver=TINA, note="the customer is right")
    entries = store.history(routed.id)
    assert [e.kind for e in entries] == ["decision", "approval.approved", "execution.queued"]
    later = NOW + timedelta(minutes=5)
    assert [e.recorded_at for e in entries] == [NOW, later, later]
    assert entries == sorted(entries, key=lambda e: e.seq)
    assert store.reports.resolutions([routed.id, "dec_unknown"]) == {routed.id: "execution.queued"}


def test_the_store_selects_approvals_by_the_public_status_values():
    assert (ApprovalStatus.PENDING.value, ApprovalStatus.APPROVED.value) == (PENDING, APPROVED)


def test_an_execution_key_is_claimed_once(make_guard, store: SqlStore):
    decision = make_guard().decide(refund("10.00"))
    call = dict(
        key="call-9",
        decision_id=decision.id,
        tool="issue_refund",
        arguments="{}",
        arguments_digest="2" * 64,
        status=ExecutionStatus.RUNNING.value,
        started_at=NOW,
    )
    with store.transaction() as tx:
        assert tx.executions.claim(**call)
        assert not tx.executions.claim(**call)
        assert tx.executions.locked("call-9") == ExecutionRow(**call, attempts=1)
        tx.executions.finish(
            "call-9", status="succeeded", result='"ok"', error=None, finished_at=NOW
        )
        # Every working row changes with a ledger record that binds it.
        tx.record("execution.succeeded", decision.id, {"key": "call-9"}, at=NOW)
    stored = store.executions.get("call-9")
    assert stored is not None
    assert (stored.status, stored.result, stored.finished_at) == ("succeeded", '"ok"', NOW)
    assert store.executions.for_decision(decision.id) == [stored]
    assert store.executions.with_status("pending", limit=10) == []


def test_a_token_and_its_sessions_end_together(store: SqlStore):
    token = TokenRow(id="tok_1", subject_id="ann", role="tier2", is_ai=False, label="desk")
    with store.transaction() as tx:
        tx.identities.add_token(token, digest="d" * 64, created_at=NOW)
        tx.identities.add_session(
            digest="s" * 64,
            token_id="tok_1",
            csrf="c",
            created_at=NOW,
            expires_at=NOW + timedelta(hours=1),
        )
    assert store.identities.find_token("d" * 64) == token
    assert store.identities.get_token("tok_1") == token
    assert store.identities.live_tokens() == [token]
    session = store.identities.find_session("s" * 64, now=NOW)
    assert session is not None
    assert (session.token, session.csrf) == (token, "c")
    assert store.identities.find_session("s" * 64, now=NOW + timedelta(hours=1)) is None
    with store.transaction() as tx:
        assert tx.identities.revoke_token("tok_1", at=NOW)
        assert not tx.identities.revoke_token("tok_1", at=NOW)
    assert store.identities.find_token("d" * 64) is None
    assert store.identities.find_session("s" * 64, now=NOW) is None
    assert store.identities.live_tokens() == []


def test_a_token_found_good_is_read_again_but_checked_against_its_record_only_when_it_changed(
    tmp_path,
):
    store, statements = traced_sqlite(tmp_path / "tokens.db")
    token = TokenRow(id="tok_1", subject_id="bot-1", role="ai_agent", is_ai=True, label="bot")
    with store.transaction() as tx:
        tx.identities.add_token(token, digest="d" * 64, created_at=NOW)
    statements.clear()

    def ledger_reads() -> int:
        return sum(bool(re.search(r"FROM ledger\b", statement)) for statement in statements)

    assert store.identities.find_token("d" * 64) == token
    assert ledger_reads() == 1  # checked against the record that bound it
    statements.clear()
    checkouts: list[object] = []
    event.listen(store.engine, "checkout", lambda *_: checkouts.append(1))
    assert store.identities.find_token("d" * 64) == token
    assert any("FROM api_tokens" in statement for statement in statements)  # read, every time
    assert ledger_reads() == 0  # the same row, found good before
    assert checkouts == []  # on this thread's held connection, not one from the pool
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE api_tokens SET role = 'tier2' WHERE id = 'tok_1'"))
    with pytest.raises(LedgerIntegrityError, match="api_tokens row 'tok_1'"):
        store.identities.find_token("d" * 64)
    store.close()


def test_a_token_looked_up_inside_a_write_transaction_is_read_as_committed(store: SqlStore):
    token = TokenRow(id="tok_1", subject_id="ann", role="tier2", is_ai=False, label="desk")
    with store.transaction() as tx:
        tx.identities.add_token(token, digest="d" * 64, created_at=NOW)
        # Not on this thread's connection, which holds the uncommitted token.
        assert store.identities.find_token("d" * 64) is None
    assert store.identities.find_token("d" * 64) == token


def test_the_first_verdict_cached_under_a_key_stands(store: SqlStore):
    assert store.verdicts.cached("q-1") is None
    store.verdicts.remember("q-1", '{"first":true}', model="m", prompt_hash="p", at=NOW)
    store.verdicts.remember("q-1", '{"first":false}', model="m", prompt_hash="p", at=NOW)
    assert store.verdicts.cached("q-1") == '{"first":true}'
    assert [store.verdicts.take_call("2026-11-26", 2) for _ in range(3)] == [True, True, False]
    assert store.verdicts.take_call("2026-11-27", 2)


def test_a_database_error_in_the_verdicts_or_webhook_cursors_is_a_store_error(store: SqlStore):
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE judge_verdicts"))
        connection.execute(text("DROP TABLE webhook_cursors"))
    with pytest.raises(StoreError, match="cannot read the judge's verdict cache at "):
        store.verdicts.cached("q-1")
    with pytest.raises(StoreError, match="cannot write the judge's verdict cache at "):
        store.verdicts.remember("q-1", "{}", model="m", prompt_hash="p", at=NOW)
    with pytest.raises(StoreError, match="cannot read a webhook cursor at "):
        store.webhooks.get("hook")


def test_a_decision_row_holds_the_recorded_decision_with_its_hash(store: SqlStore):
    # The row's body is spliced from the record's canonical JSON of the decision: it must read
    # back as exactly the stamped decision, text outside ASCII and quotes included.
    decision = stored_decision().model_copy(
        update={"explanation": 'Rückerstattung "über" dem Limit ✓', "causes": ["naïve\\path"]}
    )
    with store.transaction() as tx:
        stamped = tx.append(record_of(decision))
    with store.engine.connect() as connection:
        body = connection.execute(
            select(decisions.c.body).where(decisions.c.id == decision.id)
        ).scalar_one()
    assert json.loads(body) == json.loads(stamped.model_dump_json())
    assert Decision.model_validate_json(body) == stamped
    [record] = store.records()
    assert json.loads(body)["lineage_hash"] == record.hash == stamped.lineage_hash
    assert store.decision(decision.id) == stamped
    assert store.verify() == 1
