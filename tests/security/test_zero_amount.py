"""A zero amount is never allowed from code alone: some payment APIs read 0 as "in full"."""

from __future__ import annotations

from conftest import FakeClock
from discretion import Outcome, SqlStore
from discretion.approvals import ApprovalStatus
from discretion.proposal import Actor

from .acme_attacks import ALLOWED, TOM, acme_guard, refund

A_50003 = {"order": "A-50003", "customer": "C-1003", "case": "K-70003"}
A_50031 = {"order": "A-50031", "customer": "C-1031", "case": "K-70031"}


def test_a_zero_refund_inside_policy_routes_to_a_person(store: SqlStore) -> None:
    guard = acme_guard(store)
    # 0.01 on the same order is allowed: only the zero is held back.
    assert guard.decide(refund(**A_50003, amount="0.01", key="cent")).outcome in ALLOWED
    decision = guard.decide(refund(**A_50003, amount="0.00", key="zero"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules[-1] == "discretion.zero-amount"
    assert decision.required_role == "tier1"
    assert any("the amount is zero" in cause for cause in decision.causes)


def test_a_zero_refund_a_hard_limit_forbids_is_still_denied(store: SqlStore) -> None:
    # C-1031 is on a fraud hold: a denial is never softened into a route.
    decision = acme_guard(store).decide(refund(**A_50031, amount="0.00", key="zero"))
    assert decision.outcome is Outcome.DENY
    assert "discretion.zero-amount" not in decision.rules


def test_a_person_may_approve_a_zero_refund(store: SqlStore) -> None:
    guard = acme_guard(store, clock=FakeClock())
    routed = guard.decide(refund(**A_50003, amount="0.00", key="zero"))
    approved = guard.approvals.approve(
        routed.id, approver=Actor(**TOM), note="a goodwill gesture with no money"
    )
    assert approved.status is ApprovalStatus.APPROVED


def test_a_human_actor_s_zero_refund_routes_too(store: SqlStore) -> None:
    decision = acme_guard(store).decide(refund(**A_50003, amount="0.00", key="zero", actor=TOM))
    assert (decision.outcome, decision.rules[-1]) == (Outcome.ROUTE, "discretion.zero-amount")
