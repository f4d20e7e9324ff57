"""Standard rules only some roles may use: `granted_by` on a standard rule."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from discretion import Actor, Guard, Outcome, SqlStore, load_pack
from discretion.approvals import ApprovalStatus
from discretion.context import StaticContextProvider
from discretion.errors import ApprovalError, PolicyError

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

PACK = """
pack: billing
currency: USD
context:
  invoice.total: money
  invoice.disputed: bool
  invoice.tax_error: bool
roles:
  - id: ai_agent
    ai: true
    authority:
      credit: {standard: "100.00"}
  - id: tier1
    authority:
      credit: {standard: "100.00"}
  - id: billing
    authority:
      credit: {standard: "500.00"}
  - id: controller
    authority:
      credit: {standard: "5000.00"}
actions:
  credit:
    tools:
      - name: issue_credit
        amount: amount
        customer: customer_id
    reads: [invoice.total, invoice.disputed, invoice.tax_error]
    standard:
      # Only billing specialists (and the controller) correct tax on an invoice.
      - id: tax-correction
        when: invoice.tax_error
        max_amount: invoice.total
        granted_by: [billing, controller]
      - id: disputed-invoice
        when: invoice.disputed
        max_amount: invoice.total
"""

FACTS: dict[str, Any] = {
    "invoice.total": {"amount": "800.00", "currency": "USD"},
    "invoice.disputed": False,
    "invoice.tax_error": True,
}

BOT = Actor(id="bot", role="ai_agent")
TINA = Actor(id="tina", role="tier1", is_ai=False)
BILL = Actor(id="bill", role="billing", is_ai=False)


def guard(tmp_path: Path, text: str = PACK, **facts: Any) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    context = StaticContextProvider({**FACTS, **facts})
    store = SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    return Guard(load_pack(path), store=store, context=context, clock=lambda: NOW)


def credit(amount: str, actor: Actor = BOT, key: str = "k") -> dict[str, Any]:
    return {
        "actor": actor.model_dump(),
        "tool": {"name": "issue_credit", "arguments": {"amount": amount, "customer_id": "c"}},
        "idempotency_key": key,
    }


def test_a_role_the_rule_does_not_name_routes_to_the_lowest_it_names(tmp_path: Path) -> None:
    # The AI's standard authority covers 50.00, but the tax rule is not its to use.
    decision = guard(tmp_path).decide(credit("50.00"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["tax-correction", "discretion.standard-role"]
    assert decision.required_role == "billing"


def test_a_role_the_rule_names_allows_within_its_standard_authority(tmp_path: Path) -> None:
    decision = guard(tmp_path).decide(credit("450.00", actor=BILL))
    assert (decision.outcome, decision.rules) == (Outcome.ALLOW, ["tax-correction"])


def test_above_a_named_role_s_authority_it_routes_to_the_next_named_role(tmp_path: Path) -> None:
    decision = guard(tmp_path).decide(credit("600.00", actor=BILL))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["tax-correction", "discretion.standard-authority"]
    assert decision.required_role == "controller"


def test_a_later_rule_open_to_every_role_still_allows(tmp_path: Path) -> None:
    decision = guard(tmp_path, **{"invoice.disputed": True}).decide(credit("50.00"))
    assert (decision.outcome, decision.rules) == (Outcome.ALLOW, ["disputed-invoice"])


def test_a_role_outside_the_rule_never_allows_however_high_its_authority(tmp_path: Path) -> None:
    text = PACK.replace("granted_by: [billing, controller]", "granted_by: [billing]")
    decision = guard(tmp_path, text).decide(credit("700.00", actor=BILL))
    # Billing may use the rule but not for 700.00; the controller could, but is not named.
    assert decision.outcome is Outcome.DENY
    assert decision.rules == [
        "tax-correction",
        "discretion.standard-authority",
        "discretion.no-role-can-grant",
    ]


def test_an_approver_outside_the_rule_cannot_approve_it(tmp_path: Path) -> None:
    g = guard(tmp_path)
    routed = g.decide(credit("50.00"))
    assert routed.required_role == "billing"
    with pytest.raises(ApprovalError, match="tier1"):
        g.approvals.approve(routed.id, approver=TINA, note="looks right")
    approved = g.approvals.approve(routed.id, approver=BILL, note="tax was wrong")
    assert approved.status is ApprovalStatus.APPROVED


@pytest.mark.parametrize(
    ("granted_by", "message"),
    [
        ("[billing, auditor]", "granted_by names role 'auditor', which the pack does not define"),
        ("[]", "granted_by is empty, so no role could ever use the rule"),
    ],
)
def test_granted_by_names_roles_the_pack_defines(
    tmp_path: Path, granted_by: str, message: str
) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK.replace("[billing, controller]", granted_by), encoding="utf-8")
    with pytest.raises(PolicyError, match=message) as raised:
        load_pack(path)
    assert raised.value.rule_id == "tax-correction"
    assert raised.value.line == 34  # the granted_by line


WITH_EXCEPTION = (
    PACK.replace(
        '      credit: {standard: "100.00"}\n  - id: tier1',
        '      credit: {standard: "100.00", exception: "20.00"}\n  - id: tier1',
    )
    + """    exceptions:
      - id: long-time-customer
        max_amount: "2000"
"""
)
"""The AI may also grant a small 'long-time customer' exception."""


def test_a_rule_only_other_roles_may_use_does_not_hide_the_exception_the_actor_cites(
    tmp_path: Path,
) -> None:
    """The tax correction holds, but only for billing: the AI's own exception, which it cites
    and may grant, still decides, instead of the case going to billing unread."""
    g = guard(tmp_path, WITH_EXCEPTION)
    proposal = credit("15.00")
    proposal["rationale"] = {"reason": "long-time-customer"}
    decision = g.decide(proposal)
    assert decision.outcome is Outcome.ALLOW_EXCEPTION
    assert decision.rules == ["discretion.not-standard", "long-time-customer"]
    # Above what the exception covers, the rule for other roles routes as before.
    proposal = credit("25.00", key="k2")
    proposal["rationale"] = {"reason": "long-time-customer"}
    routed = g.decide(proposal)
    assert (routed.outcome, routed.required_role) == (Outcome.ROUTE, "billing")
    assert routed.rules == ["tax-correction", "discretion.standard-role"]
