from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from conftest import NOW, Counter, good_facts, refund, shop_pack_with
from discretion import (
    Actor,
    ApprovalConflict,
    ApprovalError,
    ApprovalNotFound,
    ExecutionError,
    Guard,
    LedgerIntegrityError,
    Money,
    Outcome,
    PolicyError,
    ProposalError,
    StaleApproval,
    StoreError,
    load_pack,
)
from discretion.approvals import ApprovalStatus
from discretion.context import StaticContextProvider
from discretion.precedent import PrecedentSpec
from discretion.store._schema import approvals, decisions, executions, ledger, reservations

from .helpers import BOT, LOST, MARIA, TESS, TINA, TOM, count, records

USD = "USD"


def usd(amount: str) -> Money:
    return Money.of(amount, USD)


# Opening -------------------------------------------------------------------------------------


def test_routed_decision_opens_a_pending_approval_under_its_id(guard, store):
    decision = guard.decide(refund("80.00"))
    assert decision.outcome is Outcome.ROUTE
    approval = guard.approvals.get(decision.id)
    assert approval.status is ApprovalStatus.PENDING
    assert approval.required_role == decision.required_role == "tier1"
    assert approval.requested_amount == approval.amount == usd("80.00")
    assert approval.actor_id == "bot-1"
    assert approval.opened_at == NOW
    assert approval.due_at == NOW + timedelta(hours=24)  # the pack's default approval_sla
    assert approval.tool == {
        "name": "issue_refund",
        "arguments": {
            "amount": "80.00",
            "currency": "USD",
            "customer_id": "c-1",
            "case_id": "case-1",
            "order_id": "o-1",
        },
    }
    assert approval.proposal["idempotency_key"] == "k-1"


def test_allowed_and_denied_decisions_open_no_approval(make_guard, store):
    allowed = make_guard().decide(refund("40.00", key="a"))
    flagged = make_guard(good_facts(**{"customer.fraud_flag": True}), ids=Counter("flagged"))
    denied = flagged.decide(refund(key="d"))
    assert (allowed.outcome, denied.outcome) == (Outcome.ALLOW, Outcome.DENY)
    assert count(store, approvals) == 0
    with pytest.raises(ApprovalNotFound, match="only routed decisions open one"):
        make_guard().approvals.get(allowed.id)


def test_a_retried_route_opens_one_approval(guard, store):
    first = guard.decide(refund("80.00"))
    again = guard.decide(refund("80.00"))
    assert again.id == first.id
    assert count(store, approvals) == 1


def test_approval_commits_with_its_decision_or_not_at_all(guard, store):
    approvals.drop(store.engine)
    with pytest.raises(StoreError):
        guard.decide(refund("80.00"))
    assert count(store, decisions) == 0
    assert count(store, ledger) == 0


def test_due_time_is_the_shorter_of_the_actions_and_the_roles_sla(make_guard, tmp_path):
    pack = shop_pack_with(
        tmp_path,
        "  - id: tier1\n    authority:",
        "  - id: tier1\n    approval_sla: 2h\n    authority:",
    )
    guard = make_guard(policy=pack)
    assert guard.decide(refund("80.00")).required_role == "tier1"
    assert guard.approvals.get(guard.approvals.list()[0].id).due_at == NOW + timedelta(hours=2)
    slower = shop_pack_with(
        tmp_path,
        "  refund:\n    tools:",
        "  refund:\n    approval_sla: 90m\n    tools:",
    )
    assert slower.approval_sla_for("refund", slower.role("tier1")) == timedelta(minutes=90)
    assert slower.approval_sla_for("credit", slower.role("tier1")) == timedelta(hours=24)


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("currency: USD\n", "currency: USD\napproval_sla: 0h\n", ":3"),
        ("  refund:\n    tools:", "  refund:\n    approval_sla: 0m\n    tools:", ":33"),
        ("  - id: tier2\n", "  - id: tier2\n    approval_sla: 0d\n", ":24"),
    ],
    ids=["pack", "action", "role"],
)
def test_an_approval_sla_of_zero_is_a_pack_error_naming_the_line(tmp_path, old, new, where):
    with pytest.raises(PolicyError, match="approval_sla must be longer than zero") as caught:
        shop_pack_with(tmp_path, old, new)
    assert f"shop-variant.yaml{where}" in str(caught.value)


def test_the_pack_wide_approval_sla_applies_when_action_and_role_say_nothing(tmp_path):
    pack = shop_pack_with(tmp_path, "currency: USD\n", "currency: USD\napproval_sla: 2d\n")
    assert pack.approval_sla_for("refund", pack.role("tier1")) == timedelta(days=2)


# Approving -----------------------------------------------------------------------------------


def test_approving_records_who_in_which_role_why_and_when(guard, store, clock):
    decision = guard.decide(refund("80.00"))
    clock.advance(minutes=30)
    approved = guard.approvals.approve(decision.id, approver=TINA, note="  customer is right  ")
    assert approved.status is ApprovalStatus.APPROVED
    assert (approved.decided_by, approved.decided_role) == ("tina", "tier1")
    assert approved.note == "customer is right"
    assert approved.decided_at == NOW + timedelta(minutes=30)
    [record] = records(store, "approval.approved", decision.id)
    body = json.loads(record.body)
    assert body["by"] == {"id": "tina", "role": "tier1"}
    assert body["note"] == "customer is right"
    assert body["at"] == (NOW + timedelta(minutes=30)).isoformat()
    assert body["amount"] == {"amount": "80.00", "currency": "USD"}
    assert body["recheck"]["outcome"] == "allow"
    assert body["recheck"]["rules"] == ["refund-within-30-days"]
    assert body["recheck"]["policy_version"] == guard.pack.version
    assert body["execution"] == {"key": "bot-1:k-1", "tool": "issue_refund"}
    assert store.verify() == 3  # decision, approval.approved, execution.queued


def test_a_note_is_required_for_every_decision_on_an_approval(guard):
    decision = guard.decide(refund("80.00"))
    for act in (guard.approvals.approve, guard.approvals.reject, guard.approvals.escalate):
        with pytest.raises(ProposalError, match="needs a note") as caught:
            act(decision.id, approver=TINA, note="   ")
        assert caught.value.field == "note"
    assert guard.approvals.get(decision.id).status is ApprovalStatus.PENDING


def test_a_note_holding_nul_is_refused_before_anything_is_written(guard):
    decision = guard.decide(refund("80.00"))
    for act in (guard.approvals.approve, guard.approvals.reject, guard.approvals.escalate):
        with pytest.raises(ProposalError, match=r"NUL character \(U\+0000\)") as caught:
            act(decision.id, approver=TINA, note="ok\x00then")
        assert caught.value.field == "note"
        # A lone surrogate is no text either: it raised UnicodeEncodeError mid-write.
        with pytest.raises(ProposalError, match="lone UTF-16 surrogate") as caught:
            act(decision.id, approver=TINA, note="ok\ud800then")
        assert caught.value.field == "note"
    assert guard.approvals.get(decision.id).status is ApprovalStatus.PENDING


def test_approver_whose_role_does_not_cover_the_case_cannot_approve_but_may_escalate(
    guard, facts, store
):
    facts.facts.update(LOST)
    decision = guard.decide(refund("125.00", reason="carrier-lost"))
    assert decision.required_role == "tier2"
    with pytest.raises(ApprovalError, match="cannot approve a case routed to 'tier2'; escalate"):
        guard.approvals.approve(decision.id, approver=TINA, note="looks fine")
    with pytest.raises(ApprovalError, match="cannot decide a case routed to 'tier2'"):
        guard.approvals.reject(decision.id, approver=TINA, note="no")
    escalated = guard.approvals.escalate(decision.id, approver=TINA, note="above my limit")
    assert escalated.status is ApprovalStatus.PENDING
    assert escalated.required_role == "manager"
    assert escalated.escalations == 1
    [record] = records(store, "approval.escalated", decision.id)
    body = json.loads(record.body)
    assert (body["from_role"], body["to_role"]) == ("tier2", "manager")
    assert body["by"] == {"id": "tina", "role": "tier1"}
    with pytest.raises(ApprovalError, match="routed to 'manager'"):
        guard.approvals.approve(decision.id, approver=TOM, note="ok")
    assert guard.approvals.approve(decision.id, approver=MARIA, note="ok").decided_by == "maria"


def test_approvers_role_must_be_allowed_to_grant_the_reason(guard, facts, make_guard, tmp_path):
    facts.facts.update(LOST)
    decision = guard.decide(refund("125.00", reason="carrier-lost"))
    assert decision.required_role == "tier2"
    guard = make_guard(
        context=facts,
        policy=shop_pack_with(
            tmp_path,
            'refund: {standard: "500.00", exception: "300.00"}',
            'refund: {standard: "500.00", exception: "300.00", reasons: [outage-goodwill]}',
        ),
    )
    with pytest.raises(ApprovalError, match=r"role 'tier2' does not cover .*needs 'manager'"):
        guard.approvals.approve(decision.id, approver=TOM, note="ok")
    assert guard.approvals.approve(decision.id, approver=MARIA, note="ok").decided_by == "maria"


def test_a_case_that_no_longer_stands_as_proposed_is_stale_for_the_role_it_needs(
    guard, facts, store
):
    # Routed inside standard policy (80.00, above the agent's 50.00), with no reason cited;
    # by the approval the parcel is lost, so only an exception reason could allow it, and the
    # proposal cites none: tier1 holds the role the re-check names, so escalating could not help.
    decision = guard.decide(refund("80.00"))
    assert (decision.outcome, decision.required_role) == (Outcome.ROUTE, "tier1")
    facts.facts.update(LOST)
    with pytest.raises(StaleApproval, match="cannot be approved as it was proposed") as caught:
        guard.approvals.approve(decision.id, approver=TINA, note="looks fine")
    assert "discretion.reason-not-cited" in str(caught.value)
    assert "escalate" not in str(caught.value)
    assert guard.approvals.get(decision.id).status is ApprovalStatus.PENDING
    assert records(store, "approval.approved", decision.id) == []
    rejected = guard.approvals.reject(decision.id, approver=TINA, note="stale: parcel now lost")
    assert rejected.status is ApprovalStatus.REJECTED


def test_nobody_approves_a_case_they_proposed(guard, facts):
    facts.facts.update(LOST)
    ann_tier1 = Actor(id="ann", role="tier1", is_ai=False)
    ann_tier2 = Actor(id="ann", role="tier2", is_ai=False)
    decision = guard.decide(refund("125.00", role="tier1", actor="ann", reason="carrier-lost"))
    assert decision.outcome is Outcome.ROUTE
    for act in (guard.approvals.approve, guard.approvals.reject, guard.approvals.escalate):
        with pytest.raises(ApprovalError, match="'ann' proposed this case and cannot decide"):
            act(decision.id, approver=ann_tier2, note="mine")
    assert guard.approvals.get(decision.id).status is ApprovalStatus.PENDING
    # The proposer may still withdraw it.
    cancelled = guard.approvals.cancel(decision.id, by=ann_tier1, note="customer withdrew")
    assert cancelled.status is ApprovalStatus.CANCELLED


@pytest.mark.parametrize(
    "approver",
    [
        Actor(id="bot-2", role="ai_agent", is_ai=True),
        Actor(id="bot-3", role="manager", is_ai=True),
        Actor(id="bot-4", role="ai_agent", is_ai=False),
    ],
    ids=["ai-role", "ai-actor-in-human-role", "human-flag-in-ai-role"],
)
def test_ai_actors_never_approve(guard, approver):
    decision = guard.decide(refund("80.00"))
    with pytest.raises(ApprovalError, match="AI actors never decide routed cases"):
        guard.approvals.approve(decision.id, approver=approver, note="fine by me")
    assert guard.approvals.get(decision.id).status is ApprovalStatus.PENDING


def test_approver_role_must_exist_in_the_pack(guard):
    decision = guard.decide(refund("80.00"))
    with pytest.raises(ApprovalError, match="'ceo' is not a role of pack"):
        guard.approvals.approve(
            decision.id, approver=Actor(id="x", role="ceo", is_ai=False), note="hi"
        )


def test_approving_for_a_lower_amount_runs_the_tool_with_it(guard, store):
    decision = guard.decide(refund("80.00"))
    approved = guard.approvals.approve(
        decision.id, approver=TINA, note="half the goods", amount=usd("45.50")
    )
    assert approved.amount == usd("45.50")
    assert approved.requested_amount == usd("80.00")
    assert approved.is_edited
    [queued] = guard.executions.pending()
    assert queued.key == "bot-1:k-1"
    assert queued.arguments["amount"] == "45.50"
    calls = []
    guard.approvals.register("issue_refund", lambda args, key: calls.append((args, key)) or "ok")
    guard.approvals.run_approved()
    assert calls == [({**queued.arguments}, "bot-1:k-1")]
    body = json.loads(records(store, "approval.approved", decision.id)[0].body)
    assert body["amount"]["amount"] == "45.50"
    assert body["requested_amount"]["amount"] == "80.00"


def test_a_lower_amount_keeps_the_json_type_the_tool_was_called_with(guard):
    proposal = refund("80.00")
    proposal["tool"]["arguments"]["amount"] = 80
    decision = guard.decide(proposal)
    guard.approvals.approve(decision.id, approver=TINA, note="ok", amount=usd("60.00"))
    assert guard.executions.pending()[0].arguments["amount"] == 60


@pytest.mark.parametrize(
    ("amount", "match"),
    [
        (usd("80.01"), "more than the USD 80.00 asked for"),
        (Money.of("10.00", "EUR"), "not in USD"),
        (usd("0"), "reject it instead"),
    ],
)
def test_an_edited_amount_may_only_be_lower(guard, amount, match):
    decision = guard.decide(refund("80.00"))
    with pytest.raises(ProposalError, match=match):
        guard.approvals.approve(decision.id, approver=TINA, note="ok", amount=amount)
    assert guard.approvals.get(decision.id).status is ApprovalStatus.PENDING
    assert guard.executions.pending() == []


def test_a_call_that_leaves_out_the_amount_its_mapping_reads_is_refused(guard, store):
    # The decision would stand on the proposal's 80.00 and the tool would run with no amount
    # at all (a refund tool may then refund the whole order): refused before anything is
    # decided, so no approval can run it either.
    with pytest.raises(ProposalError, match="argument 'amount' is missing"):
        guard.decide(
            {
                "actor": BOT.model_dump(),
                "action": "refund",
                "amount": {"amount": "80.00", "currency": "USD"},
                "customer_id": "c-1",
                "case_id": "case-1",
                "tool": {"name": "issue_refund", "arguments": {"note": "no amount here"}},
                "idempotency_key": "no-amount",
            }
        )
    assert count(store, decisions) == 0


# Claimed once --------------------------------------------------------------------------------


def test_a_decided_approval_cannot_be_decided_again(guard, store):
    decision = guard.decide(refund("80.00"))
    guard.approvals.approve(decision.id, approver=TINA, note="ok")
    second = Actor(id="tim", role="tier1", is_ai=False)
    with pytest.raises(ApprovalConflict, match=r"already approved by tina \(tier1\)") as caught:
        guard.approvals.approve(decision.id, approver=second, note="me too")
    assert caught.value.approval_id == decision.id
    with pytest.raises(ApprovalConflict):
        guard.approvals.reject(decision.id, approver=second, note="no")
    assert len(records(store, "approval.approved")) == 1
    assert count(store, executions) == 1


def test_two_approvers_at_once_one_wins_and_the_other_is_told(guard, store, facts):
    facts.facts.update(LOST)
    decision = guard.decide(refund("125.00", reason="carrier-lost"))
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def click(approver: Actor) -> None:
        barrier.wait()
        try:
            outcomes[approver.id] = guard.approvals.approve(
                decision.id, approver=approver, note=f"{approver.id} says yes"
            )
        except ApprovalConflict as exc:
            outcomes[approver.id] = exc

    threads = [threading.Thread(target=click, args=(who,)) for who in (TOM, TESS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [v for v in outcomes.values() if not isinstance(v, ApprovalConflict)]
    lost = [v for v in outcomes.values() if isinstance(v, ApprovalConflict)]
    assert len(won) == 1
    assert len(lost) == 1
    assert "already approved" in str(lost[0])
    [record] = records(store, "approval.approved", decision.id)
    assert json.loads(record.body)["by"]["id"] == won[0].decided_by
    assert count(store, executions) == 1
    assert len(records(store, "execution.queued")) == 1
    assert store.verify() == 3


# Re-checked before execution -----------------------------------------------------------------


def test_stale_approval_the_current_pack_denies_does_not_run(
    guard, store, facts, make_guard, tmp_path
):
    decision = guard.decide(refund("80.00"))
    guard = make_guard(
        context=facts,
        policy=shop_pack_with(
            tmp_path, "when: customer.fraud_flag\n", "when: customer.fraud_flag || amount > 7000\n"
        ),
    )
    with pytest.raises(StaleApproval, match=r"the current pack denies .*fraud-flag") as caught:
        guard.approvals.approve(decision.id, approver=TINA, note="ok")
    assert caught.value.approval_id == decision.id
    assert guard.approvals.get(decision.id).status is ApprovalStatus.PENDING
    assert guard.executions.pending() == []
    assert records(store, "approval.approved") == []
    # A lower amount the new pack allows can still be approved.
    approved = guard.approvals.approve(decision.id, approver=TINA, note="ok", amount=usd("70.00"))
    assert approved.status is ApprovalStatus.APPROVED


def test_stale_approval_whose_authority_the_current_pack_lowered_is_refused(
    guard, facts, make_guard, tmp_path
):
    decision = guard.decide(refund("80.00"))
    guard = make_guard(
        context=facts,
        policy=shop_pack_with(
            tmp_path,
            'refund: {standard: "200.00", exception: "100.00"}',
            'refund: {standard: "70.00", exception: "100.00"}',
        ),
    )
    with pytest.raises(ApprovalError, match=r"role 'tier1' does not cover .*needs 'tier2'"):
        guard.approvals.approve(decision.id, approver=TINA, note="ok")
    assert guard.approvals.approve(decision.id, approver=TOM, note="ok").decided_role == "tier2"


def test_stale_approval_on_facts_that_changed_does_not_run(guard, facts):
    decision = guard.decide(refund("80.00"))
    facts.facts["customer.fraud_flag"] = True
    with pytest.raises(StaleApproval, match="fraud-flag"):
        guard.approvals.approve(decision.id, approver=TINA, note="ok")
    facts.facts["customer.fraud_flag"] = False
    facts.fail_with = TimeoutError("case database did not answer")
    with pytest.raises(StaleApproval, match=r"cannot be read now .*did not answer"):
        guard.approvals.approve(decision.id, approver=TINA, note="ok")
    assert guard.executions.pending() == []


def test_stale_approval_a_spent_deny_budget_blocks(make_guard, facts, tmp_path, store):
    pack = shop_pack_with(tmp_path, 'limit: "100000.00"', 'limit: "100.00"')
    guard = make_guard(policy=pack, context=facts)
    routed = guard.decide(refund("80.00", key="routed"))
    assert routed.outcome is Outcome.ROUTE
    for n, amount in enumerate(("40.00", "45.00")):
        assert guard.decide(refund(amount, key=f"spend-{n}")).outcome is Outcome.ALLOW
    with pytest.raises(StaleApproval, match=r"budget 'org-daily-deny' has no room for USD 80\.00"):
        guard.approvals.approve(routed.id, approver=TINA, note="ok")
    # Lowered to what the budget still holds, it runs and reserves the exposure.
    approved = guard.approvals.approve(routed.id, approver=TINA, note="ok", amount=usd("15.00"))
    assert approved.status is ApprovalStatus.APPROVED
    with store.engine.connect() as connection:
        held = connection.execute(
            select(reservations.c.budget_id, reservations.c.amount_minor).where(
                reservations.c.decision_id == routed.id
            )
        ).all()
    assert sorted(held) == [("actor-daily", 1500), ("org-daily-deny", 1500)]


def test_a_spent_route_budget_needs_the_role_it_routes_to(guard, facts, store):
    facts.facts.update(LOST)
    routed = guard.decide(refund("125.00", reason="carrier-lost", key="routed"))
    assert routed.required_role == "tier2"
    # A person's own exception for the same customer uses most of the customer's budget.
    spent = guard.decide(
        refund("100.00", role="tier2", actor="tess", reason="carrier-lost", key="spent")
    )
    assert spent.outcome is Outcome.ALLOW_EXCEPTION
    with pytest.raises(ApprovalError, match="budget 'customer-exceptions-30d' is used up"):
        guard.approvals.approve(routed.id, approver=TOM, note="ok")
    approved = guard.approvals.approve(routed.id, approver=MARIA, note="worth it")
    body = json.loads(records(store, "approval.approved", routed.id)[0].body)
    assert approved.decided_role == "manager"
    assert body["recheck"]["budgets_exceeded_with_authority"] == ["customer-exceptions-30d"]
    assert {r["budget"] for r in body["reservations"]} == {
        "customer-exceptions-30d",
        "actor-daily",
        "org-daily-deny",
    }


def test_stale_approval_relying_on_a_revoked_precedent_does_not_run(
    make_guard, precedent_pack, facts, clock, store
):
    facts.facts.update(LOST)
    guard = make_guard(policy=precedent_pack, context=facts)
    granted = guard.decide(
        refund("100.00", role="manager", actor="maria", reason="carrier-lost", key="grant")
    )
    assert granted.outcome is Outcome.ALLOW_EXCEPTION
    precedent = guard.precedents.set(
        granted.id,
        PrecedentSpec(
            scope={"shipment.status": "lost"},
            max_amount=usd("60.00"),
            expires_at=clock.now + timedelta(days=30),
            citations=5,
            note="lost parcels this week",
        ),
        grantor=MARIA,
    )
    cited = refund("125.00", reason="carrier-lost", key="cites", customer="c-2")
    cited["rationale"]["precedents"] = [precedent.id]
    routed = guard.decide(cited)
    assert routed.outcome is Outcome.ROUTE
    guard.precedents.revoke(precedent.id, by=MARIA, reason="carrier settled its claims")
    with pytest.raises(StaleApproval, match=f"precedent '{precedent.id}' .* was revoked"):
        guard.approvals.approve(routed.id, approver=TOM, note="ok")
    assert guard.approvals.get(routed.id).status is ApprovalStatus.PENDING


def test_an_approved_call_relying_on_a_precedent_revoked_before_it_ran_does_not_run(
    make_guard, precedent_pack, facts, clock, store
):
    facts.facts.update(LOST)
    guard = make_guard(policy=precedent_pack, context=facts)
    granted = guard.decide(
        refund("100.00", role="manager", actor="maria", reason="carrier-lost", key="grant")
    )
    precedent = guard.precedents.set(
        granted.id,
        PrecedentSpec(
            scope={"shipment.status": "lost"},
            max_amount=usd("60.00"),
            expires_at=clock.now + timedelta(days=30),
            citations=5,
            note="lost parcels this week",
        ),
        grantor=MARIA,
    )
    cited = refund("125.00", reason="carrier-lost", key="cites", customer="c-2")
    cited["rationale"]["precedents"] = [precedent.id]
    routed = guard.decide(cited)
    guard.approvals.approve(routed.id, approver=TOM, note="ok")
    guard.precedents.revoke(precedent.id, by=MARIA, reason="carrier settled its claims")
    paid: list[str] = []
    guard.approvals.register("issue_refund", lambda args, key: paid.append(args["amount"]))
    assert [e.status.value for e in guard.approvals.run_approved()] == ["pending"]
    assert paid == []
    [queued] = guard.executions.for_decision(routed.id)
    with pytest.raises(
        ExecutionError, match=f"relies on precedent '{precedent.id}', which was revoked"
    ):
        guard.executions.claim(queued.key)
    assert "execution.started" not in [e.kind for e in store.history(routed.id)]


def test_a_stored_proposal_altered_outside_discretion_never_runs(guard, store):
    decision = guard.decide(refund("80.00"))
    with store.engine.begin() as connection:
        row = connection.execute(
            select(approvals.c.proposal).where(approvals.c.id == decision.id)
        ).scalar_one()
        altered = json.loads(row)
        altered["tool"]["arguments"]["customer_id"] = "c-666"
        connection.execute(
            update(approvals)
            .where(approvals.c.id == decision.id)
            .values(proposal=json.dumps(altered))
        )
    # The row no longer matches the ledger record that opened it: refused before anything runs.
    with pytest.raises(LedgerIntegrityError, match=f"approvals row '{decision.id}' differs"):
        guard.approvals.approve(decision.id, approver=TINA, note="ok")
    assert guard.executions.pending() == []
    assert store.bindings.failures["approvals"] == 1


# Precedent while approving -------------------------------------------------------------------


@pytest.mark.parametrize("learnable", [True, False], ids=["precedent", "one-off"])
def test_approving_can_set_precedent_or_mark_a_one_off(
    make_guard, precedent_pack, facts, clock, store, learnable
):
    facts.facts.update(LOST)
    guard = make_guard(policy=precedent_pack, context=facts)
    routed = guard.decide(refund("125.00", reason="carrier-lost"))
    spec = PrecedentSpec(
        scope={"shipment.status": "lost"},
        max_amount=usd("125.00"),
        expires_at=clock.now + timedelta(days=30),
        citations=3,
        learnable=learnable,
        note="carrier lost a whole trailer",
    )
    guard.approvals.approve(routed.id, approver=TOM, note="lost trailer", precedent=spec)
    [precedent] = guard.precedents.list()
    assert precedent.source_decision_id == routed.id
    assert precedent.learnable is learnable
    assert (precedent.grantor_id, precedent.grantor_role) == ("tom", "tier2")
    kinds = [r.kind for r in records(store, "precedent.set")]
    assert kinds == ["precedent.set"]
    assert store.verify() == 4


def test_a_precedent_the_pack_does_not_allow_rolls_the_approval_back(
    make_guard, precedent_pack, facts, clock, store
):
    facts.facts.update(LOST)
    guard = make_guard(policy=precedent_pack, context=facts)
    routed = guard.decide(refund("125.00", reason="carrier-lost"))
    too_long = PrecedentSpec(
        scope={"shipment.status": "lost"},
        max_amount=usd("125.00"),
        expires_at=clock.now + timedelta(days=365),
        citations=3,
        note="forever",
    )
    with pytest.raises(ProposalError, match="longest expiry"):
        guard.approvals.approve(routed.id, approver=TOM, note="ok", precedent=too_long)
    assert guard.approvals.get(routed.id).status is ApprovalStatus.PENDING
    assert records(store, "approval.approved") == []
    assert guard.executions.pending() == []


# Other transitions ---------------------------------------------------------------------------


def test_reject_is_final_and_recorded(guard, store):
    decision = guard.decide(refund("80.00"))
    rejected = guard.approvals.reject(decision.id, approver=TOM, note="not our fault")
    assert rejected.status is ApprovalStatus.REJECTED
    assert (rejected.decided_by, rejected.decided_role) == ("tom", "tier2")
    body = json.loads(records(store, "approval.rejected", decision.id)[0].body)
    assert body["by"] == {"id": "tom", "role": "tier2"}
    assert body["note"] == "not our fault"
    assert guard.executions.pending() == []
    with pytest.raises(ApprovalConflict, match="already rejected"):
        guard.approvals.approve(decision.id, approver=TINA, note="ok")


def test_escalating_from_the_top_rung_is_refused(guard, facts):
    facts.facts.update({"order.delivered_at": None, "shipment.status": "in_transit"})
    decision = guard.decide(refund("60.00", reason="manager-discretion"))
    with pytest.raises(ApprovalError, match="top of the ladder"):
        guard.approvals.escalate(decision.id, approver=TOM, note="up")


def test_escalation_passes_over_a_role_that_grants_nothing_of_the_action(make_guard, tmp_path):
    pack = shop_pack_with(
        tmp_path,
        "  - id: manager\n",
        '  - id: retention\n    authority:\n      credit: {standard: "300.00"}\n  - id: manager\n',
    )
    guard = make_guard(policy=pack)
    decision = guard.decide(refund("80.00"))
    assert decision.required_role == "tier1"
    guard.approvals.escalate(decision.id, approver=TINA, note="second opinion")
    escalated = guard.approvals.escalate(decision.id, approver=TOM, note="third opinion")
    assert escalated.required_role == "manager"
    credit = guard.decide(
        {
            "actor": {"id": "bot-1", "role": "ai_agent", "is_ai": True},
            "tool": {
                "name": "give_credit",
                "arguments": {"value": "40.00", "customer": "c-1"},
            },
            "rationale": {"text": "goodwill"},
        }
    )
    assert credit.required_role == "tier1"
    guard.approvals.escalate(credit.id, approver=TINA, note="up")
    # Retention grants credits: for a credit it is the next rung.
    assert guard.approvals.escalate(credit.id, approver=TOM, note="up").required_role == "retention"


def test_escalation_sets_a_new_due_time_from_the_new_role(make_guard, tmp_path, clock):
    pack = shop_pack_with(
        tmp_path,
        "  - id: tier2\n    authority:",
        "  - id: tier2\n    approval_sla: 4h\n    authority:",
    )
    guard = make_guard(policy=pack)
    decision = guard.decide(refund("80.00"))
    clock.advance(hours=1)
    escalated = guard.approvals.escalate(decision.id, approver=TINA, note="second opinion")
    assert escalated.required_role == "tier2"
    assert escalated.due_at == NOW + timedelta(hours=5)


def test_cancel_by_someone_who_neither_proposed_nor_may_decide_is_refused(guard, facts):
    facts.facts.update(LOST)
    decision = guard.decide(refund("125.00", reason="carrier-lost"))
    with pytest.raises(ApprovalError, match="only its proposer or a person who may decide it"):
        guard.approvals.cancel(decision.id, by=TINA, note="nah")
    cancelled = guard.approvals.cancel(decision.id, by=BOT, note="customer withdrew")
    assert (cancelled.status, cancelled.decided_by) == (ApprovalStatus.CANCELLED, "bot-1")


def test_overdue_approvals_expire_and_can_no_longer_be_decided(guard, store, clock):
    first = guard.decide(refund("80.00", key="a"))
    clock.advance(hours=2)
    second = guard.decide(refund("85.00", key="b"))
    clock.advance(hours=23)  # first is 25 h old, second 23 h
    [expired] = guard.approvals.expire_due()
    assert expired.id == first.id
    assert (expired.status, expired.decided_by) == (ApprovalStatus.EXPIRED, "system")
    assert guard.approvals.get(second.id).status is ApprovalStatus.PENDING
    clock.advance(hours=1, seconds=1)  # one second past its due time
    with pytest.raises(ApprovalConflict, match=r"passed its due time .* has expired"):
        guard.approvals.approve(second.id, approver=TINA, note="late")
    assert guard.approvals.get(second.id).status is ApprovalStatus.EXPIRED
    assert [json.loads(r.body)["by"] for r in records(store, "approval.expired")] == [
        {"id": "system"},
        {"id": "system"},
    ]
    assert store.verify() == 4


def test_an_approval_given_at_its_due_time_counts(guard, clock):
    # "Decided within 24 hours": at the 24th hour it is still in time.
    routed = guard.decide(refund("80.00", key="a"))
    clock.advance(hours=24)
    assert guard.approvals.expire_due() == []
    assert not guard.approvals.get(routed.id).is_overdue(guard.now())  # not marked overdue
    approved = guard.approvals.approve(routed.id, approver=TINA, note="in time")
    assert approved.status is ApprovalStatus.APPROVED


def test_list_filters_by_status_and_deciding_role_soonest_due_first(guard, facts, clock):
    standard = guard.decide(refund("80.00", key="std"))  # tier1
    clock.advance(minutes=5)
    facts.facts.update(LOST)
    exception = guard.decide(refund("125.00", reason="carrier-lost", key="exc"))  # tier2
    clock.advance(minutes=5)
    facts.facts["shipment.status"] = "delivered"
    later = guard.decide(refund("90.00", key="std-2"))  # tier1
    assert [a.id for a in guard.approvals.list(role="tier1")] == [standard.id, later.id]
    assert [a.id for a in guard.approvals.list(role="tier2")] == [
        standard.id,
        exception.id,
        later.id,
    ]
    assert guard.approvals.list(role="ai_agent") == []
    guard.approvals.approve(standard.id, approver=TINA, note="ok")
    assert [a.id for a in guard.approvals.list(status="pending")] == [exception.id, later.id]
    assert [a.id for a in guard.approvals.list(status=ApprovalStatus.APPROVED)] == [standard.id]


def test_unknown_approval_id_is_not_found(guard):
    with pytest.raises(ApprovalNotFound, match="no approval 'nope'"):
        guard.approvals.approve("nope", approver=TINA, note="ok")


def test_exposure_counts_grants_exceptions_and_waiting_cases(guard, facts, clock):
    guard.decide(refund("30.00", key="allowed"))
    routed = guard.decide(refund("80.00", key="routed"))
    guard.approvals.approve(routed.id, approver=TINA, note="ok", amount=usd("70.00"))
    facts.facts.update(LOST)
    guard.decide(refund("15.00", reason="carrier-lost", key="exception"))
    guard.decide(refund("125.00", reason="carrier-lost", key="waiting"))
    facts.facts["shipment.status"] = "delivered"
    guard.decide(refund("10.00", key="other", customer="c-2"))
    mine = guard.approvals.exposure(customer_id="c-1")
    assert (mine.granted, mine.granted_total) == (3, usd("115.00"))
    assert (mine.exceptions, mine.exceptions_total) == (1, usd("15.00"))
    assert (mine.pending, mine.pending_total) == (1, usd("125.00"))
    clock.advance(days=31)
    assert guard.approvals.exposure(customer_id="c-1").granted == 0
    report = guard.approvals.exposure_report(days=40)
    assert {(r.reason, r.role, r.count, r.total) for r in report} == {
        (None, "ai_agent", 2, usd("40.00")),
        ("carrier-lost", "ai_agent", 1, usd("15.00")),
        (None, "tier1", 1, usd("70.00")),
    }


def test_a_case_routed_for_an_unreadable_fact_is_approved_once_the_fact_can_be_read(guard, facts):
    total = facts.facts.pop("order.total")
    decision = guard.decide(refund("100.00"))
    assert decision.rules == ["discretion.context-unavailable"]
    # Nothing the limits need can be checked: no approval runs blind.
    with pytest.raises(StaleApproval, match=r"cannot be read now .*order\.total"):
        guard.approvals.approve(decision.id, approver=MARIA, note="looked it up")
    assert guard.executions.pending() == []
    facts.facts["order.total"] = total
    approved = guard.approvals.approve(decision.id, approver=TINA, note="the total is back")
    assert approved.status is ApprovalStatus.APPROVED


def test_a_case_about_a_record_not_on_file_waits_for_it_and_is_told_so(store, clock):
    context = StaticContextProvider(customers={"c-1": {"customer.id": "c-1"}})
    guard = Guard(
        load_pack(Path(__file__).parent.parent / "packs" / "ledgered.yaml"),
        store=store,
        context=context,
        clock=clock,
        ids=Counter(),
    )
    decision = guard.decide(
        {
            "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
            "tool": {
                "name": "issue_refund",
                "arguments": {"amount": "40.00", "customer_id": "c-1", "order_id": "o-9"},
            },
        }
    )
    assert decision.rules == ["discretion.entity.unknown"]
    with pytest.raises(StaleApproval, match="try again once they are on file, or reject it"):
        guard.approvals.approve(decision.id, approver=TOM, note="syncing")
