"""A case no lower role can take goes to the top rung with authority over its action."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import NOW, Counter, FakeClock
from discretion import Actor, Guard, Outcome, load_pack
from discretion.context import StaticContextProvider

# The compliance officer tops the ladder but grants no credits: a credit it were sent could
# only be rejected (its approval's re-check finds no authority), never approved.
PACK = """
pack: ladder
currencies: [USD, GBP]
entities: {customer: {}}
totals:
  customer.credits_90d: {actions: [credit], per: customer, window: 90d}
context:
  customer.ok: bool
roles:
  - id: ai_agent
    ai: true
    authority: {credit: {standard: {USD: "50.00", GBP: "40.00"}}}
  - id: supervisor
    authority: {credit: {standard: {USD: "500.00", GBP: "400.00"}}}
  - id: compliance_officer
    authority: {}
budgets:
  - id: ai-daily
    key: actor
    window: 1d
    roles: [ai_agent]
    limit: {USD: "60.00", GBP: "48.00"}
actions:
  credit:
    tools: [{name: credit, amount: amount, currency: currency, customer: customer_id}]
    reads: [customer.ok, customer.credits_90d]
    standard:
      - {id: credit-ok, when: "customer.ok"}
"""

BOT = {"id": "bot", "role": "ai_agent", "is_ai": True}
SUPERVISOR = Actor(id="sam", role="supervisor", is_ai=False)


def ladder(store, tmp_path: Path) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    return Guard(
        load_pack(path),
        store=store,
        context=StaticContextProvider(
            {"customer.ok": True}, customers={"C-1": {}, "C-2": {}, "C-3": {}}
        ),
        clock=FakeClock(NOW),
        ids=Counter(),
    )


def credit(amount: str, currency: str, key: str, customer: str = "C-1") -> dict:
    return {
        "actor": BOT,
        "idempotency_key": key,
        "tool": {
            "name": "credit",
            "arguments": {"amount": amount, "currency": currency, "customer_id": customer},
        },
    }


def test_the_top_rung_of_an_action_is_the_highest_role_holding_authority_over_it(store, tmp_path):
    pack = ladder(store, tmp_path).pack
    assert pack.highest_human.id == "compliance_officer"
    assert pack.top_for("credit").id == "supervisor"
    assert pack.top_for("no-such-action").id == "compliance_officer"


def test_a_currency_mismatch_routes_to_the_top_rung_with_authority_and_is_approved(store, tmp_path):
    guard = ladder(store, tmp_path)
    assert guard.decide(credit("10.00", "USD", "k1")).outcome is Outcome.ALLOW
    mixed = guard.decide(credit("10.00", "GBP", "k2"))
    assert mixed.outcome is Outcome.ROUTE
    assert mixed.rules == ["discretion.currency-mismatch"]
    assert mixed.required_role == "supervisor"
    approved = guard.approvals.approve(mixed.id, approver=SUPERVISOR, note="checked")
    assert approved.status.value == "approved"


@pytest.mark.parametrize("amount", ["50.01", "45.00"])
def test_a_spent_budget_routes_to_the_top_rung_with_authority_over_the_action(
    store, tmp_path, amount
):
    guard = ladder(store, tmp_path)
    assert guard.decide(credit("40.00", "USD", "k1", customer="C-2")).outcome is Outcome.ALLOW
    routed = guard.decide(credit(amount, "USD", "k2", customer="C-3"))
    assert routed.outcome is Outcome.ROUTE
    assert routed.required_role == "supervisor"
    assert guard.approvals.approve(routed.id, approver=SUPERVISOR, note="ok").status.value == (
        "approved"
    )
