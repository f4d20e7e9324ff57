from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from conftest import NOW, good_facts, refund
from discretion import Outcome, ProposalError


def test_inside_standard_policy_and_authority_allows(make_guard):
    decision = make_guard().decide(refund("40.00"))
    assert decision.outcome is Outcome.ALLOW
    assert decision.rules == ["refund-within-30-days"]
    assert decision.required_role is None
    assert decision.is_allowed


def test_standard_above_actor_limit_routes_to_lowest_role_that_covers_it(make_guard):
    decision = make_guard().decide(refund("80.00"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.required_role == "tier1"
    assert decision.rules == ["refund-within-30-days", "discretion.standard-authority"]
    assert "tier1" in decision.explanation


def test_exception_inside_actor_authority_is_allowed(make_guard):
    guard = make_guard(good_facts(**{"shipment.status": "lost"}))
    decision = guard.decide(refund("125.00", role="tier2", actor="ann", reason="carrier-lost"))
    assert decision.outcome is Outcome.ALLOW_EXCEPTION
    assert decision.reason == "carrier-lost"
    assert decision.rules == ["discretion.not-standard", "carrier-lost"]


def test_exception_above_actor_authority_routes_to_lowest_granting_role(make_guard):
    guard = make_guard(good_facts(**{"shipment.status": "lost"}))
    decision = guard.decide(refund("125.00", reason="carrier-lost"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.required_role == "tier2"
    assert decision.reason == "carrier-lost"
    assert "discretion.exception-authority" in decision.rules


def test_a_reason_the_role_may_not_grant_is_explained_as_such_not_as_its_amount(make_guard):
    # 10.00 is within the AI's 20.00 exception authority: the reason is the manager's alone.
    guard = make_guard(good_facts(**{"order.delivered_at": None, "shipment.status": "in_transit"}))
    decision = guard.decide(refund("10.00", reason="manager-discretion"))
    assert (decision.outcome, decision.required_role) == (Outcome.ROUTE, "manager")
    assert "discretion.exception-role" in decision.rules
    assert "the cited reason is one only other roles may grant" in decision.explanation
    assert "exception authority does not cover it" not in decision.explanation


def test_reason_granted_by_skips_roles_that_may_not_grant_it(make_guard):
    # manager-discretion is granted by the manager only, whatever tier2's limit says.
    guard = make_guard(good_facts(**{"order.delivered_at": None, "shipment.status": "in_transit"}))
    decision = guard.decide(refund("60.00", role="tier2", actor="ann", reason="manager-discretion"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.required_role == "manager"


def test_role_reason_list_restricts_what_it_may_grant(pack):
    manager = pack.role("manager")
    assert manager is not None
    assert manager.authority["refund"].reasons == {
        "carrier-lost",
        "outage-goodwill",
        "manager-discretion",
    }


def test_hard_limit_denies_for_everyone(make_guard):
    guard = make_guard(good_facts(**{"customer.fraud_flag": True}))
    for role, actor in [("ai_agent", "bot-1"), ("manager", "boss")]:
        decision = guard.decide(refund("10.00", role=role, actor=actor, key=f"k-{role}"))
        assert decision.outcome is Outcome.DENY
        assert decision.rules == ["fraud-flag"]
        assert decision.required_role is None
        assert "fraud review" in decision.explanation


def test_refund_above_order_total_plus_shipping_is_denied_one_cent_over(make_guard):
    guard = make_guard(good_facts(**{"shipment.status": "lost"}))
    at_limit = guard.decide(refund("129.99", role="manager", actor="boss", reason="carrier-lost"))
    over = guard.decide(refund("130.00", role="manager", actor="boss", key="k-2"))
    assert at_limit.outcome is Outcome.ALLOW_EXCEPTION
    assert over.outcome is Outcome.DENY
    assert over.rules == ["refund-above-order"]


def test_a_cited_reason_whose_facts_do_not_hold_routes_to_the_manager(make_guard):
    # The parcel is in transit, so carrier-lost does not apply; only manager-discretion could.
    guard = make_guard(good_facts(**{"order.delivered_at": None, "shipment.status": "in_transit"}))
    decision = guard.decide(refund("60.00", reason="carrier-lost"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules[:3] == [
        "discretion.not-standard",
        "discretion.reason-not-applicable",
        "carrier-lost",
    ]
    assert decision.required_role == "manager"


def test_exception_without_cited_reason_never_self_grants(make_guard):
    guard = make_guard(good_facts(**{"shipment.status": "lost"}))
    decision = guard.decide(refund("15.00"))
    assert decision.outcome is Outcome.ROUTE
    assert "discretion.reason-not-cited" in decision.rules
    assert decision.required_role == "tier1"


def test_citing_a_reason_the_pack_does_not_define_routes(make_guard):
    guard = make_guard(good_facts(**{"shipment.status": "lost"}))
    decision = guard.decide(refund("15.00", reason="vip-courtesy"))
    assert decision.outcome is Outcome.ROUTE
    assert "discretion.reason-unknown" in decision.rules


def test_standard_window_is_exact_at_the_boundary(make_guard, clock):
    delivered = NOW - timedelta(hours=720)
    guard = make_guard(good_facts(**{"order.delivered_at": delivered.isoformat()}))
    assert guard.decide(refund("10.00")).outcome is Outcome.ALLOW
    clock.advance(microseconds=1)
    late = guard.decide(refund("10.00", key="k-late"))
    assert late.outcome is not Outcome.ALLOW
    assert "discretion.not-standard" in late.rules


def test_tool_arguments_fill_the_proposal(make_guard, store):
    decision = make_guard().decide(refund("40.00"))
    body = next(store.export())["body"]
    assert body["proposal"]["customer_id"] == "c-1"
    assert body["proposal"]["case_id"] == "case-1"
    assert body["proposal"]["amount"] == {"amount": "40.00", "currency": "USD"}
    assert decision.amount is not None
    assert str(decision.amount) == "USD 40.00"


def test_proposal_and_tool_argument_disagreeing_is_an_error(make_guard):
    proposal = refund("40.00", customer_id="c-2")
    with pytest.raises(ProposalError, match="customer_id") as info:
        make_guard().decide(proposal)
    assert info.value.field == "customer_id"


def test_unknown_role_is_a_proposal_error(make_guard):
    with pytest.raises(ProposalError, match="'cfo' is not a role") as info:
        make_guard().decide(refund("1.00", role="cfo"))
    assert info.value.field == "actor.role"


def test_ai_actor_claiming_a_human_role_is_refused(make_guard):
    proposal = refund("1.00", role="manager")
    proposal["actor"]["is_ai"] = True
    with pytest.raises(ProposalError, match=r"is an AI \(is_ai is true unless given: a person"):
        make_guard().decide(proposal)
    # Left out, is_ai is true: the error says how a person is named.
    del proposal["actor"]["is_ai"]
    with pytest.raises(ProposalError, match=r"is given is_ai: false.* but role 'manager' is a"):
        make_guard().decide(proposal)


def test_missing_amount_names_the_tool_argument(make_guard):
    proposal = refund("1.00")
    del proposal["tool"]["arguments"]["amount"]
    with pytest.raises(ProposalError, match="tool argument 'amount'"):
        make_guard().decide(proposal)


def test_explanation_never_quotes_private_limits(make_guard):
    decision = make_guard().decide(refund("80.00"))
    assert "50.00" not in decision.explanation
    assert "200.00" not in decision.explanation


def test_decision_records_policy_version_and_digests(make_guard, pack):
    decision = make_guard().decide(refund("40.00"))
    assert decision.policy_version == pack.version
    assert len(decision.context_digest) == 64
    assert len(decision.lineage_hash) == 64


def test_on_decision_hook_sees_each_new_decision_once(make_guard):
    seen = []
    guard = make_guard(on_decision=seen.append)
    first = guard.decide(refund("40.00"))
    guard.decide(refund("40.00"))
    assert [d.id for d in seen] == [first.id]


def test_async_twin_decides_the_same(make_guard):
    decision = asyncio.run(make_guard().adecide(refund("40.00")))
    assert decision.outcome is Outcome.ALLOW


def test_preview_records_nothing(make_guard, store):
    decision = make_guard().preview(refund("40.00"))
    assert decision.outcome is Outcome.ALLOW
    assert store.verify() == 0


def test_a_ticket_is_recorded_for_approvers_but_outside_the_digest(make_guard, store):
    guard = make_guard()
    proposal = refund("80.00", key="t-1", ticket="Customer: my parcel never came.")
    decision = guard.decide(proposal)
    body = store.decision_body(decision.id)
    assert body is not None
    assert body["proposal"]["ticket"] == "Customer: my parcel never came."
    # A retry whose conversation grew is the same proposal.
    longer = refund("80.00", key="t-1", ticket="Customer: my parcel never came. Agent: checking.")
    assert guard.decide(longer).id == decision.id
    approval = guard.approvals.get(decision.id)
    assert approval.proposal["ticket"] == "Customer: my parcel never came."
