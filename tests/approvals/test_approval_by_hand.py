"""A case routed because the code could not read a fact is the approver's to check by hand."""

from __future__ import annotations

import json

import pytest

from conftest import refund
from discretion import ApprovalError, Outcome, StaleApproval
from discretion.approvals import ApprovalStatus

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
