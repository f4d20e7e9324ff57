"""A zero amount is sent back, never allowed or routed: some payment APIs read 0 as "in full",
and no written policy grants nothing."""

from __future__ import annotations

import pytest

from discretion import Outcome, SqlStore
from discretion.errors import ApprovalNotFound

from .acme_attacks import ALLOWED, TOM, acme_guard, refund

A_50003 = {"order": "A-50003", "customer": "C-1003", "case": "K-70003"}
A_50031 = {"order": "A-50031", "customer": "C-1031", "case": "K-70031"}


def test_a_zero_refund_inside_policy_is_denied_and_told_to_send_the_amount(
    store: SqlStore,
) -> None:
    guard = acme_guard(store)
    # 0.01 on the same order is allowed: only the zero is sent back.
    assert guard.decide(refund(**A_50003, amount="0.01", key="cent")).outcome in ALLOWED
    decision = guard.decide(refund(**A_50003, amount="0.00", key="zero"))
    assert decision.outcome is Outcome.DENY
    assert decision.rules[-1] == "discretion.zero-amount"
    assert decision.required_role is None
    assert any("send the amount meant" in cause for cause in decision.causes)
    with pytest.raises(ApprovalNotFound):
        guard.approvals.get(decision.id)  # nothing waits for a person


def test_a_zero_refund_a_hard_limit_forbids_is_denied_by_the_limit(store: SqlStore) -> None:
    # C-1031 is on a fraud hold: the hard limit's denial stands as it is.
    decision = acme_guard(store).decide(refund(**A_50031, amount="0.00", key="zero"))
    assert decision.outcome is Outcome.DENY
    assert "discretion.zero-amount" not in decision.rules


def test_a_human_actor_s_zero_refund_is_denied_too(store: SqlStore) -> None:
    decision = acme_guard(store).decide(refund(**A_50003, amount="0.00", key="zero", actor=TOM))
    assert (decision.outcome, decision.rules[-1]) == (Outcome.DENY, "discretion.zero-amount")


def test_a_zero_the_rules_would_route_is_denied_not_sent_to_a_person(store: SqlStore) -> None:
    # Without a reason, an exception-only case routes or is denied; zero is sent back either way.
    decision = acme_guard(store).decide(
        refund(**A_50003, amount="0.00", key="zero-exception", reason="carrier-lost")
    )
    assert decision.outcome is Outcome.DENY
    assert decision.rules[-1] == "discretion.zero-amount"
