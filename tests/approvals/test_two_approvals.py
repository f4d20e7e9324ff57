"""Two approvals above an amount: a case above `two_approvals_above` needs two people."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from discretion import Actor, Guard, Outcome, SqlStore, load_pack
from discretion.approvals import ApprovalStatus
from discretion.context import StaticContextProvider
from discretion.errors import ApprovalError, LedgerIntegrityError, PolicyError, ProposalError
from discretion.money import Money
from discretion.precedent import PrecedentSpec
from discretion.store._schema import approvals

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

PACK = """
pack: dual
currency: USD
context:
  order.total: money
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {standard: "100.00"}
  - id: tier1
    authority:
      refund: {standard: "1000.00"}
  - id: manager
    authority:
      refund: {standard: "5000.00"}
actions:
  refund:
    # "Refunds above 500.00 are approved by two people."
    two_approvals_above: "500.00"
    tools:
      - name: issue_refund
        amount: amount
        customer: customer_id
    reads: [order.total]
    hard_limits:
      - id: above-order
        when: amount > order.total
    standard:
      - id: any-refund
        when: "true"
"""

TINA = Actor(id="tina", role="tier1", is_ai=False)
TOM = Actor(id="tom", role="tier1", is_ai=False)
MIA = Actor(id="mia", role="manager", is_ai=False)
BOT = Actor(id="bot", role="ai_agent")


def guard(tmp_path: Path, text: str = PACK) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    context = StaticContextProvider({"order.total": {"amount": "4000.00", "currency": "USD"}})
    store = SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    return Guard(load_pack(path), store=store, context=context, clock=lambda: NOW)


def refund(amount: str, actor: Actor = BOT, key: str = "k") -> dict[str, Any]:
    return {
        "actor": actor.model_dump(),
        "tool": {"name": "issue_refund", "arguments": {"amount": amount, "customer_id": "c"}},
        "idempotency_key": key,
    }


def kinds(g: Guard, approval_id: str) -> list[str]:
    return [entry["kind"] for entry in g.approvals.history(approval_id)]


def test_above_the_amount_even_a_covering_person_s_case_routes(tmp_path: Path) -> None:
    g = guard(tmp_path)
    decision = g.decide(refund("600.00", actor=TINA))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["any-refund", "discretion.two-approvals"]
    assert decision.required_role == "tier1"
    # At the amount, one person's authority still decides.
    assert g.decide(refund("500.00", actor=TINA, key="k2")).outcome is Outcome.ALLOW


def test_a_routed_case_above_the_amount_is_approved_by_two_people(tmp_path: Path) -> None:
    g = guard(tmp_path)
    routed = g.decide(refund("600.00"))
    assert routed.rules == [
        "any-refund",
        "discretion.standard-authority",
        "discretion.two-approvals",
    ]
    first = g.approvals.approve(routed.id, approver=TINA, note="order checked")
    assert first.status is ApprovalStatus.PENDING
    assert first.endorsement is not None
    assert (first.endorsement.by, first.endorsement.role) == ("tina", "tier1")
    assert first.endorsement.amount == Money.of("600.00", "USD")
    assert kinds(g, routed.id)[-1] == "approval.endorsed"
    # Nothing runs yet.
    assert g.executions.for_decision(routed.id) == []
    with pytest.raises(ApprovalError, match="'tina' already approved it"):
        g.approvals.approve(routed.id, approver=TINA, note="again")
    second = g.approvals.approve(routed.id, approver=TOM, note="agreed")
    assert second.status is ApprovalStatus.APPROVED
    assert (second.decided_by, second.amount) == ("tom", Money.of("600.00", "USD"))
    approved = next(e for e in g.approvals.history(routed.id) if e["kind"] == "approval.approved")
    assert approved["body"]["endorsement"]["by"] == "tina"
    assert [e.key for e in g.executions.for_decision(routed.id)] == [routed.execution_key]
    assert g.store.verify() > 0


def test_the_second_approver_grants_at_most_what_the_first_did(tmp_path: Path) -> None:
    g = guard(tmp_path)
    routed = g.decide(refund("900.00"))
    g.approvals.approve(
        routed.id, approver=TINA, note="part of it", amount=Money.of("700.00", "USD")
    )
    with pytest.raises(ProposalError, match=r"more than the USD 700\.00 the first approver"):
        g.approvals.approve(
            routed.id, approver=TOM, note="all of it", amount=Money.of("900.00", "USD")
        )
    second = g.approvals.approve(routed.id, approver=TOM, note="agreed", amount=None)
    assert second.amount == Money.of("700.00", "USD")
    lower = g.decide(refund("800.00", key="k2"))
    g.approvals.approve(lower.id, approver=TINA, note="ok")
    third = g.approvals.approve(
        lower.id, approver=MIA, note="less", amount=Money.of("650.00", "USD")
    )
    assert third.amount == Money.of("650.00", "USD")


def test_one_approval_suffices_at_or_below_the_amount(tmp_path: Path) -> None:
    g = guard(tmp_path)
    routed = g.decide(refund("500.00"))
    assert "discretion.two-approvals" not in routed.rules
    approved = g.approvals.approve(routed.id, approver=TINA, note="fine")
    assert approved.status is ApprovalStatus.APPROVED
    assert approved.endorsement is None


def test_a_first_approver_whose_role_does_not_cover_it_cannot_give_the_first(
    tmp_path: Path,
) -> None:
    g = guard(tmp_path)
    routed = g.decide(refund("2000.00"))
    assert routed.required_role == "manager"
    with pytest.raises(ApprovalError, match="tier1"):
        g.approvals.approve(routed.id, approver=TINA, note="ok")
    assert g.approvals.get(routed.id).endorsement is None


def test_a_precedent_is_set_by_the_second_approver(tmp_path: Path) -> None:
    g = guard(tmp_path)
    routed = g.decide(refund("600.00"))
    spec = PrecedentSpec(
        scope={"order.total": "4000.00"},
        expires_at=datetime(2027, 1, 1, tzinfo=UTC),
        citations=1,
        max_amount=Money.of("600.00", "USD"),
        learnable=False,
        note="one-off",
    )
    with pytest.raises(ProposalError, match="set by the second"):
        g.approvals.approve(routed.id, approver=TINA, note="ok", precedent=spec)


def test_a_rejection_by_anyone_who_may_decide_ends_it(tmp_path: Path) -> None:
    g = guard(tmp_path)
    routed = g.decide(refund("600.00"))
    g.approvals.approve(routed.id, approver=TINA, note="ok")
    rejected = g.approvals.reject(routed.id, approver=TOM, note="no")
    assert rejected.status is ApprovalStatus.REJECTED
    assert rejected.endorsement is not None


def test_an_edited_endorsement_is_found(tmp_path: Path) -> None:
    g = guard(tmp_path)
    routed = g.decide(refund("600.00"))
    g.approvals.approve(routed.id, approver=TINA, note="ok")
    forged = {"by": "tom", "role": "tier1", "amount": None, "note": "x", "at": NOW.isoformat()}
    with g.store.engine.begin() as connection:
        connection.execute(
            update(approvals)
            .where(approvals.c.id == routed.id)
            .values(endorsement=json.dumps(forged))
        )
    with pytest.raises(LedgerIntegrityError):
        g.approvals.approve(routed.id, approver=TOM, note="agreed")


def test_the_amount_must_be_an_amount(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK.replace('"500.00"', '"lots"'), encoding="utf-8")
    with pytest.raises(PolicyError, match="two_approvals_above") as raised:
        load_pack(path)
    assert raised.value.line == 20


def cumulative_guard(tmp_path: Path, *, ladder: str = "  - id: tier1\n") -> Guard:
    """The pack with refunds measured on the whole per customer (among each role).

    `ladder`: what stands where the tier1 rung begins (to add a rung below it).
    """
    cumulative = (
        PACK.replace(
            'two_approvals_above: "500.00"',
            'two_approvals_above: "500.00"\n    cumulative: {per: customer, window: 30d}',
        )
        .replace("context:", "entities: {customer: {}}\ncontext:")
        .replace("  - id: tier1\n", ladder)
    )
    path = tmp_path / "pack.yaml"
    path.write_text(cumulative, encoding="utf-8")
    return Guard(
        load_pack(path),
        store=SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}"),
        context=StaticContextProvider(
            {"order.total": {"amount": "4000.00", "currency": "USD"}}, customers={"c": {}}
        ),
        clock=lambda: NOW,
    )


ONE_OFF = PrecedentSpec(
    scope={"order.total": "4000.00"},
    expires_at=datetime(2027, 1, 1, tzinfo=UTC),
    citations=1,
    max_amount=Money.of("349.00", "USD"),
    learnable=False,
    note="one-off",
)


def test_pieces_of_a_split_need_two_people_once_their_whole_is_above_the_amount(
    tmp_path: Path,
) -> None:
    # Two pieces pending at once were each decided under the amount; the second, measured at
    # its approval on the whole with the first approved since, is above it: one person cannot
    # move the whole with one signature.
    g = cumulative_guard(tmp_path)
    first = g.decide(refund("300.00", key="piece-1"))
    second = g.decide(refund("349.00", key="piece-2"))
    for piece in (first, second):
        assert piece.outcome is Outcome.ROUTE
        assert "discretion.two-approvals" not in piece.rules
    assert g.approvals.approve(first.id, approver=TINA, note="ok").status is ApprovalStatus.APPROVED
    with pytest.raises(ProposalError, match="a precedent is set by the second"):
        g.approvals.approve(second.id, approver=TINA, note="ok", precedent=ONE_OFF)
    endorsed = g.approvals.approve(second.id, approver=TINA, note="ok")
    assert endorsed.status is ApprovalStatus.PENDING
    assert endorsed.endorsement is not None
    assert endorsed.endorsement.by == "tina"
    assert g.executions.for_decision(second.id) == []
    with pytest.raises(ApprovalError, match="a second person must approve it"):
        g.approvals.approve(second.id, approver=TINA, note="again")
    done = g.approvals.approve(second.id, approver=TOM, note="second")
    assert done.status is ApprovalStatus.APPROVED
    assert kinds(g, second.id)[-3:] == [
        "approval.endorsed",
        "approval.approved",
        "execution.queued",
    ]
    [queued] = g.executions.for_decision(second.id)
    assert queued.arguments["amount"] == "349.00"


def test_the_whole_two_people_are_needed_above_counts_every_role_s_pieces(
    tmp_path: Path,
) -> None:
    # Cumulative authority is kept among each role (the default), but the two-person rule is
    # about the money on the record: pieces granted under three roles add up to it.
    g = cumulative_guard(tmp_path)
    assert g.decide(refund("100.00", key="a")).outcome is Outcome.ALLOW
    assert g.decide(refund("300.00", TINA, key="b")).outcome is Outcome.ALLOW
    third = g.decide(refund("200.00", MIA, key="c"))
    assert third.outcome is Outcome.ROUTE
    assert "discretion.two-approvals" in third.rules


def test_a_case_two_people_must_approve_goes_to_the_lowest_role_its_own_whole_needs(
    tmp_path: Path,
) -> None:
    # Authority is measured among the proposer's role (the agent's own 30.00 on the record), the
    # two-person rule on everyone's pieces (a manager's 480.00 too): the case goes to the lowest
    # role that could have allowed the agent's whole, and two of that role approve it.
    g = cumulative_guard(
        tmp_path,
        ladder=(
            '  - id: tier0\n    authority:\n      refund: {standard: "50.00"}\n  - id: tier1\n'
        ),
    )
    assert g.decide(refund("480.00", MIA, key="a")).outcome is Outcome.ALLOW
    small = g.decide(refund("30.00", key="b"))
    assert small.outcome is Outcome.ROUTE
    assert "discretion.two-approvals" in small.rules
    assert small.required_role == "tier0"
    first, second = (Actor(id=name, role="tier0", is_ai=False) for name in ("ann", "ben"))
    assert g.approvals.approve(small.id, approver=first, note="ok").status is (
        ApprovalStatus.PENDING
    )
    assert g.approvals.approve(small.id, approver=second, note="ok").status is (
        ApprovalStatus.APPROVED
    )
