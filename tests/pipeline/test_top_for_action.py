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


def test_a_case_that_must_go_above_a_person_never_goes_to_a_peer(store, tmp_path):
    # A supervisor's exception resting on a contradicted claim goes to someone above them. The
    # only rung above grants no credits: it goes there (to be rejected), never to a peer.
    path = tmp_path / "pack.yaml"
    path.write_text(
        PACK.replace(
            "context:", "claims: {check: every_decision, on_contradiction: route}\ncontext:"
        )
        .replace("  customer.ok: bool", "  customer.ok: bool\n  customer.vip: bool")
        .replace("reads: [customer.ok,", "reads: [customer.vip, customer.ok,")
        .replace(
            '{credit: {standard: {USD: "500.00", GBP: "400.00"}}}',
            '{credit: {standard: {USD: "500.00", GBP: "400.00"},'
            ' exception: {USD: "300.00", GBP: "250.00"}}}',
        )
        + "    exceptions:\n      - {id: vip-goodwill, when: customer.vip}\n",
        encoding="utf-8",
    )
    guard = Guard(
        load_pack(path),
        store=store,
        context=StaticContextProvider(
            {"customer.ok": False, "customer.vip": True}, customers={"C-1": {}}
        ),
        clock=FakeClock(NOW),
        ids=Counter(),
    )
    proposal = credit("200.00", "USD", "k1")
    proposal["actor"] = {"id": "sam", "role": "supervisor", "is_ai": False}
    proposal["rationale"] = {
        "reason": "vip-goodwill",
        "claims": [{"field": "customer.ok", "value": True}],
    }
    routed = guard.decide(proposal)
    assert routed.outcome is Outcome.ROUTE
    assert "discretion.claim.contradicts-fact" in routed.rules
    assert routed.required_role == "compliance_officer"


def test_a_case_at_an_unknown_rate_goes_to_the_top_rung_with_authority_in_the_base(store, tmp_path):
    rated = (Path(__file__).resolve().parent.parent / "packs" / "rated.yaml").read_text(
        encoding="utf-8"
    )
    path = tmp_path / "rated.yaml"
    path.write_text(
        rated.replace(
            "actions:\n  refund:",
            "  - id: compliance_officer\n    authority: {}\nactions:\n  refund:",
            1,
        ),
        encoding="utf-8",
    )
    pack = load_pack(path)
    assert pack.highest_human.id == "compliance_officer"
    assert pack.top_for("refund").id == "manager"
    # The view at an unknown rate holds no authority: who holds some is read in the base.
    assert pack.in_currency("EUR", None).top_for("refund").id == "manager"
