"""One test (at least) per DESIGN.md invariant, named for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from sqlalchemy import func, select, text

from conftest import good_facts, refund
from discretion import Guard, Outcome, ProposalError, StoreError, load_pack
from discretion.context import ContextRequest, StaticContextProvider
from discretion.errors import ContextError
from discretion.lineage import digest
from discretion.store import SqlTransaction
from discretion.store._schema import decisions, ledger, reservations


def _count(store, table) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


class Exploding:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        self.calls += 1
        raise self.error


# Invariant 1: fail closed.


@pytest.mark.parametrize(
    "error", [RuntimeError("case system down"), TimeoutError("took 30 s"), ContextError("bad")]
)
def test_fail_closed_context_provider_error_routes_with_cause(make_guard, store, error):
    provider = Exploding(error)
    decision = make_guard(context=provider).decide(refund("1.00"))
    assert provider.calls == 1
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.context-unavailable"]
    assert decision.required_role == "tier1"
    assert any(str(error) in cause for cause in decision.causes)
    recorded = next(store.export())["body"]
    assert recorded["decision"]["causes"] == decision.causes


def test_fail_closed_missing_fact_routes_and_names_the_field(make_guard):
    facts = good_facts()
    del facts["customer.fraud_flag"]
    decision = make_guard(facts).decide(refund("1.00"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.causes == ["context field 'customer.fraud_flag' is missing"]


def test_fail_closed_ill_typed_fact_routes(make_guard):
    decision = make_guard(good_facts(**{"customer.fraud_flag": "no"})).decide(refund("1.00"))
    assert decision.outcome is Outcome.ROUTE
    assert "customer.fraud_flag" in decision.causes[0]
    assert "should be a bool" in decision.causes[0]


def test_fail_closed_null_fact_an_expression_needs_routes(make_guard):
    # order.delivered_at is nullable; the standard rule needs it once the parcel is delivered.
    guard = make_guard(good_facts(**{"order.delivered_at": None}))
    decision = guard.decide(refund("1.00"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.evaluation-error"]
    assert "order.delivered_at" in decision.causes[0]


def test_fail_closed_null_fact_absorbed_by_a_deciding_side_still_decides(make_guard):
    guard = make_guard(good_facts(**{"order.delivered_at": None, "shipment.status": "lost"}))
    decision = guard.decide(refund("15.00", reason="carrier-lost"))
    assert decision.outcome is Outcome.ALLOW_EXCEPTION


def test_fail_closed_unknown_action_routes(make_guard):
    proposal = refund("1.00")
    proposal["tool"]["name"] = "wire_money"
    decision = make_guard().decide(proposal)
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.unknown-action"]
    assert decision.required_role == "manager"


def test_fail_closed_money_fact_in_another_currency_routes(make_guard):
    facts = good_facts(**{"order.total": {"amount": "120.00", "currency": "EUR"}})
    decision = make_guard(facts).decide(refund("1.00"))
    assert decision.outcome is Outcome.ROUTE
    assert "order.total" in decision.causes[0]
    assert "EUR" in decision.causes[0]


# Invariant 4: durable before answered.


def test_durable_before_answered_hook_runs_after_commit(make_guard, store):
    seen = []

    def hook(decision):
        # Read through a separate connection: only committed rows are visible.
        seen.append(store.find_decision(decision.actor_id, decision.idempotency_key))

    decision = make_guard(on_decision=hook).decide(refund("40.00"))
    assert seen == [decision]


def test_durable_before_answered_failed_append_answers_nothing_and_writes_nothing(
    make_guard, sqlite_store
):
    with sqlite_store.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER no_ledger BEFORE INSERT ON ledger"
                " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
    guard = make_guard(store=sqlite_store, facts=good_facts(**{"shipment.status": "lost"}))
    with pytest.raises(StoreError, match="disk full"):
        guard.decide(refund("15.00", reason="carrier-lost"))
    # The reservation and decision rows written before the failing ledger insert rolled back.
    assert _count(sqlite_store, reservations) == 0
    assert _count(sqlite_store, decisions) == 0
    assert _count(sqlite_store, ledger) == 0


def test_durable_before_answered_a_write_failing_in_the_commits_round_trip_writes_nothing(
    make_guard, store
):
    # On PostgreSQL the COMMIT is sent with the decision's writes: a write that fails among
    # them must leave the transaction uncommitted, its earlier writes with it.
    with store.engine.begin() as connection:
        if store.embedded:
            connection.execute(
                text(
                    "CREATE TRIGGER no_ledger BEFORE INSERT ON ledger"
                    " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            )
        else:
            connection.execute(
                text(
                    "CREATE OR REPLACE FUNCTION no_ledger() RETURNS trigger AS"
                    " $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER no_ledger BEFORE INSERT ON ledger"
                    " FOR EACH ROW EXECUTE FUNCTION no_ledger()"
                )
            )
    guard = make_guard(facts=good_facts(**{"shipment.status": "lost"}))
    with pytest.raises(StoreError, match="disk full"):
        guard.decide(refund("15.00", reason="carrier-lost"))
    assert _count(store, reservations) == 0
    assert _count(store, decisions) == 0
    assert _count(store, ledger) == 0
    # The connection it failed on is good for the next decision.
    with store.engine.begin() as connection:
        connection.execute(
            text("DROP TRIGGER no_ledger" + ("" if store.embedded else " ON ledger"))
        )
    after = guard.decide(refund("40.00", key="after"))
    assert store.find_decision(after.actor_id, after.idempotency_key) == after
    assert _count(store, decisions) == 1
    assert store.verify() == 1


def test_durable_before_answered_a_row_bound_to_no_record_is_never_committed(
    make_guard, store, monkeypatch
):
    # A working row written in a decision's transaction must be bound to a ledger record. One
    # written after the decision's record was made is refused before anything commits (on
    # PostgreSQL, before the COMMIT that travels with the writes is sent).
    bound = SqlTransaction._bound

    def bound_then_written(self: SqlTransaction, body: Any, record: str) -> None:
        bound(self, body, record)
        self.touch("executions", "late-row", {})

    monkeypatch.setattr(SqlTransaction, "_bound", bound_then_written)
    guard = make_guard()
    with pytest.raises(StoreError, match="without a ledger record binding them: executions"):
        guard.decide(refund("40.00"))
    assert _count(store, decisions) == 0
    assert _count(store, ledger) == 0


def test_durable_before_answered_every_decision_has_its_record_and_reservations(make_guard, store):
    guard = make_guard(good_facts(**{"shipment.status": "lost"}))
    decision = guard.decide(refund("15.00", reason="carrier-lost"))
    assert {r.budget for r in decision.reservations} == {
        "customer-exceptions-30d",
        "actor-daily",
        "org-daily-deny",
    }
    assert _count(store, reservations) == 3
    record = next(store.export())["body"]
    assert record["decision"]["id"] == decision.id
    assert record["decision"]["reservations"] == [
        r.model_dump(mode="json") for r in decision.reservations
    ]


# Invariant 5: exactly once.


def test_exactly_once_retry_with_same_key_returns_same_decision_counted_once(make_guard, store):
    guard = make_guard(good_facts(**{"shipment.status": "lost"}))
    first = guard.decide(refund("15.00", reason="carrier-lost", key="retry-1"))
    second = guard.decide(refund("15.00", reason="carrier-lost", key="retry-1"))
    assert second == first
    assert _count(store, decisions) == 1
    assert _count(store, ledger) == 1
    assert _count(store, reservations) == 3


def test_exactly_once_same_key_different_proposal_is_an_error(make_guard, store):
    guard = make_guard()
    guard.decide(refund("40.00", key="k"))
    with pytest.raises(ProposalError, match="already used for a different proposal") as info:
        guard.decide(refund("41.00", key="k"))
    assert info.value.field == "idempotency_key"
    assert _count(store, decisions) == 1


def test_exactly_once_key_is_derived_from_content_when_absent(make_guard, store):
    guard = make_guard()
    first = guard.decide(refund("40.00", key=None))
    again = guard.decide(refund("40.00", key=None))
    other = guard.decide(refund("41.00", key=None))
    assert first.idempotency_key.startswith("auto:")
    assert again.id == first.id
    assert other.id != first.id
    assert _count(store, decisions) == 2


def test_exactly_once_two_guards_racing_on_one_key_record_it_once(make_guard, store):
    # Both guards evaluate before either records: the second finds the key under the lock.
    one, two = make_guard(), make_guard()
    item = one.pipeline.normalise(refund("40.00", key="race"))
    assessed = one.pipeline.assess(item, one.now())
    recorded = two.decide(refund("40.00", key="race"))
    replay = one.pipeline._record(item, one.now(), assessed)
    assert replay == recorded
    assert _count(store, decisions) == 1


# Invariant 6: least context.


class Recording(StaticContextProvider):
    def __init__(self, facts: dict[str, Any]) -> None:
        super().__init__(facts)
        self.requests: list[ContextRequest] = []

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        self.requests.append(request)
        return super().fetch(request)


def test_least_context_snapshot_holds_exactly_the_declared_fields(make_guard, store, pack):
    provider = Recording(good_facts(**{"customer.ssn": "123-45-6789", "customer.email": "a@b"}))
    make_guard(context=provider).decide(refund("40.00"))
    declared = set(pack.actions["refund"].reads)
    # The facts the rules read, and the id that checks the customer named is on file.
    assert set(provider.requests[0].fields) == {*declared, "customer.id"}
    recorded = next(store.export())["body"]
    assert set(recorded["context"]) == {*declared, "customer.id"}
    assert "123-45-6789" not in next(store.records()).body


def test_least_context_other_actions_read_only_their_fields(make_guard, store):
    provider = Recording(good_facts())
    proposal = {
        "actor": {"id": "bot-1", "role": "ai_agent"},
        "tool": {"name": "give_credit", "arguments": {"value": "5.00", "customer": "c-1"}},
    }
    decision = make_guard(context=provider).decide(proposal)
    assert decision.outcome is Outcome.ALLOW
    assert provider.requests[0].fields == ("customer.tier", "customer.id")
    recorded = next(store.export())["body"]["context"]
    assert recorded == {"customer.tier": "gold", "customer.id": "c-1"}


def test_least_context_digest_matches_recorded_snapshot(make_guard, store):
    decision = make_guard().decide(refund("40.00"))
    recorded = next(store.export())["body"]
    assert digest(recorded["context"]) == decision.context_digest


# Invariant 7: money is exact.


@pytest.mark.parametrize(
    ("amount", "outcome"),
    [
        ("50.00", Outcome.ALLOW),
        ("50.01", Outcome.ROUTE),
        (50, Outcome.ALLOW),
        (50.01, Outcome.ROUTE),
    ],
)
def test_money_is_exact_limit_compares_to_the_cent(make_guard, amount, outcome):
    assert make_guard().decide(refund(amount)).outcome is outcome


def test_money_is_exact_float_amount_is_read_by_its_repr(make_guard):
    # 0.1 + 0.2 drifts in binary; the proposal's 0.3 is exactly 30 cents.
    decision = make_guard().decide(refund(0.3))
    assert decision.amount is not None
    assert decision.amount.minor == 30


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("NaN", "not a finite amount"),
        ("Infinity", "not a finite amount"),
        (float("inf"), "not a finite"),
        ("-1.00", "negative"),
        ("10.001", "more decimal places than USD allows"),
        ("ten", "not a decimal amount"),
        (True, "not an amount"),
    ],
)
def test_money_is_exact_malformed_amounts_are_errors(make_guard, store, amount, message):
    with pytest.raises(ProposalError, match=message):
        make_guard().decide(refund(amount))
    assert _count(store, decisions) == 0


def test_money_is_exact_currency_mismatch_is_an_error(make_guard, store):
    with pytest.raises(ProposalError, match="EUR does not match the pack's currency USD"):
        make_guard().decide(refund("10.00", currency="EUR"))
    assert _count(store, decisions) == 0


def test_money_is_exact_cel_max_amount_uses_integer_cents(make_guard):
    # outage-goodwill allows order.total / 5 = 12000 / 5 = 2400 cents exactly.
    guard = make_guard(good_facts(**{"incident.active": True, "shipment.status": "in_transit"}))
    assert (
        guard.decide(refund("24.00", role="tier1", actor="t1", reason="outage-goodwill")).outcome
        is Outcome.ALLOW_EXCEPTION
    )
    over = guard.decide(
        refund("24.01", role="tier1", actor="t1", reason="outage-goodwill", key="2")
    )
    assert over.outcome is not Outcome.ALLOW_EXCEPTION


def test_fail_closed_list_facts_reach_cel_as_lists(tmp_path, store, clock):
    (tmp_path / "p.yaml").write_text(
        """
pack: tags
currency: USD
context:
  customer.tags: list[string]
roles:
  - id: bot
    ai: true
    authority: {refund: {standard: "10.00"}}
  - id: lead
    authority: {refund: {standard: "100.00"}}
actions:
  refund:
    reads: [customer.tags]
    hard_limits:
      - id: chargeback
        when: "'chargeback' in customer.tags"
    standard:
      - id: any
""",
        encoding="utf-8",
    )
    guard = Guard(
        load_pack(tmp_path / "p.yaml"),
        store=store,
        clock=clock,
        context=StaticContextProvider({"customer.tags": ["vip", "chargeback"]}),
    )
    decision = guard.decide(
        {
            "actor": {"id": "b", "role": "bot"},
            "action": "refund",
            "amount": {"amount": "1.00", "currency": "USD"},
        }
    )
    assert decision.outcome is Outcome.DENY
    assert decision.rules == ["chargeback"]


def test_durable_before_answered_other_constraint_failure_is_a_store_error(
    make_guard, sqlite_store
):
    # A failing constraint on the decision row is not mistaken for a racing idempotency key.
    with sqlite_store.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER no_decisions BEFORE INSERT ON decisions"
                " BEGIN SELECT RAISE(ABORT, 'constraint failed: check'); END"
            )
        )
    guard = make_guard(store=sqlite_store)
    with pytest.raises(StoreError, match="could not be recorded"):
        guard.decide(refund("40.00"))
    assert _count(sqlite_store, decisions) == 0
    assert _count(sqlite_store, ledger) == 0
