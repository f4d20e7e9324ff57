"""A case routed because the code could not read a fact is the approver's to check by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import Counter, FakeClock, refund
from discretion import ApprovalError, Guard, Outcome, SqlStore, StaleApproval, load_pack
from discretion.approvals import ApprovalStatus
from discretion.context import StaticContextProvider

from .helpers import MARIA, TINA, TOM, records


def test_a_case_routed_for_a_missing_fact_is_approved_within_the_approvers_authority(guard, facts):
    del facts.facts["order.total"]
    small = guard.decide(refund("150.00", key="small"))
    large = guard.decide(refund("250.00", key="large"))
    assert small.rules == ["discretion.context-unavailable"]
    assert (small.required_role, large.required_role) == ("tier1", "tier2")

    approved = guard.approvals.approve(small.id, approver=TINA, note="total checked in the ERP")
    assert approved.status is ApprovalStatus.APPROVED
    recheck = json.loads(records(guard.store, "approval.approved", small.id)[-1].body)["recheck"]
    assert recheck["outcome"] == "allow"
    assert recheck["rules"] == ["discretion.context-unavailable"]

    with pytest.raises(ApprovalError, match="cannot approve a case routed to 'tier2'"):
        guard.approvals.approve(large.id, approver=TINA, note="ok")
    assert guard.approvals.approve(large.id, approver=TOM, note="ok").decided_role == "tier2"


def test_a_hard_limit_that_holds_on_the_facts_that_can_be_read_still_stops_it(guard, facts):
    del facts.facts["order.total"]
    decision = guard.decide(refund("150.00"))
    assert decision.outcome is Outcome.ROUTE
    facts.facts["customer.fraud_flag"] = True
    with pytest.raises(StaleApproval, match=r"the current pack denies .*fraud-flag"):
        guard.approvals.approve(decision.id, approver=MARIA, note="ok")
    assert guard.executions.pending() == []


def test_a_case_routed_for_another_cause_is_not_approved_on_facts_it_cannot_read(guard, facts):
    decision = guard.decide(refund("80.00"))
    assert decision.rules != ["discretion.context-unavailable"]
    del facts.facts["order.total"]
    with pytest.raises(StaleApproval, match=r"cannot be read now .*order\.total"):
        guard.approvals.approve(decision.id, approver=MARIA, note="ok")
    assert guard.executions.pending() == []


LEDGERED = Path(__file__).resolve().parent.parent / "packs" / "ledgered.yaml"


def ledgered(store: SqlStore, clock: FakeClock) -> Guard:
    """Order o-1 paid 600.00; `customer.tier`, which every refund reads, cannot be read."""
    context = StaticContextProvider(
        customers={"c-1": {"customer.id": "c-1"}},
        orders={
            "o-1": {
                "order.customer_id": "c-1",
                "order.total": {"amount": "600.00", "currency": "USD"},
            }
        },
        cases={"k-1": {"case.customer_id": "c-1", "case.order_id": "o-1"}},
    )
    return Guard(load_pack(LEDGERED), store=store, context=context, clock=clock, ids=Counter())


def ledgered_refund(amount: str, key: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
        "tool": {
            "name": "issue_refund",
            "arguments": {
                "amount": amount,
                "customer_id": "c-1",
                "case_id": "k-1",
                "order_id": "o-1",
            },
        },
        "idempotency_key": key,
    }


def test_by_hand_the_approver_is_measured_on_the_whole_of_the_record(store, clock):
    guard = ledgered(store, clock)
    first, second = (guard.decide(ledgered_refund("250.00", f"a{i}")) for i in range(2))
    assert first.rules == ["discretion.context-unavailable"]
    guard.approvals.approve(first.id, approver=TINA, note="checked by hand")
    # 250.00 and 250.00 on the one order: above tier1's 300.00, as the whole would be.
    with pytest.raises(ApprovalError, match="cumulative-authority"):
        guard.approvals.approve(second.id, approver=TINA, note="checked by hand")


def test_by_hand_a_hard_limit_on_the_ledgers_totals_still_denies(store, clock):
    guard = ledgered(store, clock)
    cases = [guard.decide(ledgered_refund("250.00", f"b{i}")) for i in range(3)]
    for case in cases[:2]:
        guard.approvals.approve(case.id, approver=TOM, note="checked by hand")
    # 750.00 refunded on an order that paid 600.00.
    with pytest.raises(StaleApproval, match="above-paid"):
        guard.approvals.approve(cases[2].id, approver=TOM, note="checked by hand")
    assert len(guard.executions.pending()) == 2


def test_by_hand_a_reason_the_approvers_role_may_not_grant_needs_the_role_that_may(guard, facts):
    del facts.facts["order.total"]
    facts.facts.update({"order.delivered_at": None, "shipment.status": "in_transit"})
    decision = guard.decide(refund("150.00", reason="manager-discretion"))
    assert decision.rules == ["discretion.context-unavailable"]
    with pytest.raises(
        ApprovalError, match=r"under reason 'manager-discretion'\); it needs 'manager'"
    ):
        guard.approvals.approve(decision.id, approver=TOM, note="ok")
    approved = guard.approvals.approve(decision.id, approver=MARIA, note="ok")
    assert approved.status is ApprovalStatus.APPROVED
