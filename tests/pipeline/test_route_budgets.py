"""Where a routed case goes when budgets are spent, and what its approval is measured as."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import NOW
from discretion import Actor, Guard, Money, Outcome, SqlStore, load_pack
from discretion.context import StaticContextProvider
from discretion.errors import ApprovalError, StaleApproval

BOT = {"id": "bot", "role": "ai_agent", "is_ai": True}
TOM = Actor(id="tom", role="tier1", is_ai=False)


def guard(tmp_path: Path, text: str) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    return Guard(
        load_pack(path),
        store=SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}"),
        context=StaticContextProvider({"customer.fraud_score": 10}, customers={"c": {}}),
        clock=lambda: NOW,
    )


def refund(amount: str, key: str, actor: dict[str, Any] = BOT, **rationale: Any) -> dict[str, Any]:
    return {
        "actor": actor,
        "tool": {"name": "issue_refund", "arguments": {"amount": amount, "customer_id": "c"}},
        "rationale": {"text": "customer asked", **rationale},
        "idempotency_key": key,
    }


ACTOR_READING = """
pack: people-grant
currency: USD
entities: {customer: {}}
roles:
  - id: ai_agent
    ai: true
    authority: {refund: {standard: "50.00", exception: "10.00"}}
  - id: tier1
    authority: {refund: {standard: "200.00", exception: "200.00"}}
actions:
  refund:
    tools: [{name: issue_refund, amount: amount, customer: customer_id}]
    # A person may grant it inside standard policy; the agent only as an exception.
    standard: [{id: people-refund, when: "!actor.is_ai"}]
    exceptions: [{id: goodwill, when: "true"}]
budgets:
  - {id: exceptions-30d, key: customer, window: 30d, limit: "50.00",
     outcomes: [allow_exception], on_exceed: deny}
"""


def test_an_exception_routed_is_approved_as_one_against_the_budgets_that_count_exceptions(
    tmp_path: Path,
) -> None:
    # For the person approving it, a rule reading the actor calls it standard: it is still the
    # agent's exception, charged to the exceptions budget (40.00 of 50.00 already used).
    g = guard(tmp_path, ACTOR_READING)
    for n in range(4):
        assert g.decide(refund("10.00", f"k{n}", reason="goodwill")).outcome is (
            Outcome.ALLOW_EXCEPTION
        )
    routed = g.decide(refund("40.00", "big", reason="goodwill"))
    assert (routed.outcome, routed.required_role) == (Outcome.ROUTE, "tier1")
    with pytest.raises(StaleApproval, match="exceptions-30d"):
        g.approvals.approve(routed.id, approver=TOM, note="all of it")
    approved = g.approvals.approve(
        routed.id, approver=TOM, note="what fits", amount=Money.of("10.00", "USD")
    )
    assert approved.status.value == "approved"
    # Charged: the customer's 50.00 of exceptions is used up.
    assert g.decide(refund("10.00", "after", reason="goodwill")).outcome is Outcome.DENY


LADDER = """
pack: next-above
currency: USD
entities: {customer: {}}
context:
  customer.fraud_score: int
roles:
  - id: ai_agent
    ai: true
    authority: {refund: {standard: "50.00"}}
  - id: tier1
    authority: {refund: {standard: "200.00"}}
  - id: compliance
  - id: trust_safety
    authority: {refund: {standard: "200.00"}}
  - id: manager
    authority: {refund: {standard: "1000.00"}}
actions:
  refund:
    tools: [{name: issue_refund, amount: amount, customer: customer_id}]
    reads: [customer.fraud_score]
    standard: [{id: ok, when: "true"}]
    reviews:
      - {id: fraud-review, when: customer.fraud_score > 80, by: trust_safety, only: true}
budgets:
  - {id: daily, key: customer, window: 1d, limit: "30.00", route_to: next_above}
"""


def test_next_above_is_the_next_person_with_authority_over_the_action(tmp_path: Path) -> None:
    # Above tier1 sits compliance, who holds no refund authority: a tier1 person's refund
    # beyond the budget goes to the next rung that could approve it.
    g = guard(tmp_path, LADDER)
    tina = {"id": "tina", "role": "tier1", "is_ai": False}
    assert g.decide(refund("30.00", "a", tina)).outcome is Outcome.ALLOW
    beyond = g.decide(refund("20.00", "b", tina))
    assert (beyond.outcome, beyond.required_role) == (Outcome.ROUTE, "trust_safety")
    with pytest.raises(ApprovalError):
        g.approvals.approve(
            beyond.id, approver=Actor(id="c", role="compliance", is_ai=False), note="x"
        )
    approved = g.approvals.approve(
        beyond.id, approver=Actor(id="t", role="trust_safety", is_ai=False), note="ok"
    )
    assert approved.status.value == "approved"


def test_a_review_only_its_role_decides_keeps_the_case_past_a_spent_budget_and_says_so(
    tmp_path: Path,
) -> None:
    text = LADDER.replace("route_to: next_above", "route_to: manager")
    g = guard(tmp_path, text)
    assert g.decide(refund("30.00", "a")).outcome is Outcome.ALLOW
    reviewed = guard_with_facts(tmp_path, text, {"customer.fraud_score": 90}, g.store)
    case = reviewed.decide(refund("20.00", "b"))
    assert (case.outcome, case.required_role) == (Outcome.ROUTE, "trust_safety")
    assert "no one person can approve it" in " ".join(case.causes)


def guard_with_facts(tmp_path: Path, text: str, facts: dict[str, Any], store: SqlStore) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    return Guard(
        load_pack(path),
        store=store,
        context=StaticContextProvider(facts, customers={"c": {}}),
        clock=lambda: NOW,
    )
