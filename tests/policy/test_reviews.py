"""Reviews: conditions under which a person (of a named role) must decide the case."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from discretion import Actor, Guard, Outcome, SqlStore, load_pack
from discretion.approvals import ApprovalStatus
from discretion.context import StaticContextProvider
from discretion.errors import ApprovalError, PolicyError, StaleApproval

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

PACK = """
pack: reviewed
currency: USD
context:
  order.total: money
  customer.fraud_score: {type: int, nullable: true}
  customer.first_order: bool
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {standard: "100.00"}
  - id: tier1
    authority:
      refund: {standard: "1000.00"}
  - id: trust_safety
    authority:
      refund: {standard: "1000.00"}
  - id: manager
    authority:
      refund: {standard: "5000.00"}
actions:
  refund:
    tools:
      - name: issue_refund
        amount: amount
        customer: customer_id
    reads: [order.total, customer.fraud_score, customer.first_order]
    hard_limits:
      - id: above-order
        when: amount > order.total
    standard:
      - id: any-refund
        when: "true"
    reviews:
      # "Refunds to accounts with a fraud score above 80 are decided by Trust & Safety."
      - id: fraud-review
        when: customer.fraud_score > 80
        by: trust_safety
        description: a high fraud score needs Trust & Safety
      # "A customer's first order is refunded by a person, never by the assistant alone."
      - id: first-order
        when: customer.first_order
"""

FACTS: dict[str, Any] = {
    "order.total": {"amount": "400.00", "currency": "USD"},
    "customer.fraud_score": 10,
    "customer.first_order": False,
}

BOT = Actor(id="bot", role="ai_agent")
TINA = Actor(id="tina", role="tier1", is_ai=False)
TESS = Actor(id="tess", role="trust_safety", is_ai=False)
MIA = Actor(id="mia", role="manager", is_ai=False)


def guard(tmp_path: Path, text: str = PACK, **facts: Any) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    context = StaticContextProvider({**FACTS, **facts})
    store = SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    return Guard(load_pack(path), store=store, context=context, clock=lambda: NOW)


def refund(amount: str = "50.00", actor: Actor = BOT, key: str = "k") -> dict[str, Any]:
    return {
        "actor": actor.model_dump(),
        "tool": {"name": "issue_refund", "arguments": {"amount": amount, "customer_id": "c"}},
        "idempotency_key": key,
    }


def test_a_review_that_holds_routes_what_would_be_allowed_to_its_role(tmp_path: Path) -> None:
    decision = guard(tmp_path, **{"customer.fraud_score": 90}).decide(refund())
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["any-refund", "fraud-review"]
    assert decision.required_role == "trust_safety"
    assert "a high fraud score needs Trust & Safety" in decision.explanation


def test_a_review_that_does_not_hold_changes_nothing(tmp_path: Path) -> None:
    decision = guard(tmp_path).decide(refund())
    assert (decision.outcome, decision.rules) == (Outcome.ALLOW, ["any-refund"])


@pytest.mark.parametrize(
    ("actor", "outcome", "role"),
    [
        (TINA, Outcome.ROUTE, "trust_safety"),  # a person below the reviewing role
        (TESS, Outcome.ALLOW, None),  # the reviewing role itself
        (MIA, Outcome.ALLOW, None),  # a role above it
    ],
)
def test_a_person_of_the_reviewing_role_or_above_is_the_review(
    tmp_path: Path, actor: Actor, outcome: Outcome, role: str | None
) -> None:
    decision = guard(tmp_path, **{"customer.fraud_score": 90}).decide(refund(actor=actor))
    assert (decision.outcome, decision.required_role) == (outcome, role)


def test_a_review_without_a_role_wants_any_person_whose_authority_covers_it(
    tmp_path: Path,
) -> None:
    g = guard(tmp_path, **{"customer.first_order": True})
    routed = g.decide(refund())
    assert (routed.outcome, routed.rules) == (Outcome.ROUTE, ["any-refund", "first-order"])
    assert routed.required_role == "tier1"
    assert g.decide(refund(actor=TINA, key="k2")).outcome is Outcome.ALLOW


def test_the_role_a_case_needs_for_its_amount_stands_when_higher(tmp_path: Path) -> None:
    decision = guard(
        tmp_path,
        **{"customer.fraud_score": 90, "order.total": {"amount": "3000.00", "currency": "USD"}},
    ).decide(refund("2000.00"))
    assert decision.required_role == "manager"
    assert decision.rules == ["any-refund", "discretion.standard-authority", "fraud-review"]


def test_a_hard_limit_still_denies(tmp_path: Path) -> None:
    decision = guard(tmp_path, **{"customer.fraud_score": 90}).decide(refund("450.00"))
    assert (decision.outcome, decision.rules) == (Outcome.DENY, ["above-order"])


def test_a_review_that_cannot_be_read_routes(tmp_path: Path) -> None:
    decision = guard(tmp_path, **{"customer.fraud_score": None}).decide(refund())
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.evaluation-error"]


def test_only_the_reviewing_role_or_above_approves_the_case(tmp_path: Path) -> None:
    g = guard(tmp_path, **{"customer.fraud_score": 90})
    routed = g.decide(refund())
    with pytest.raises(ApprovalError, match="trust_safety"):
        g.approvals.approve(routed.id, approver=TINA, note="looks fine")
    approved = g.approvals.approve(routed.id, approver=TESS, note="score explained")
    assert approved.status is ApprovalStatus.APPROVED


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("by: trust_safety", "by: fraud_team", "review names role 'fraud_team'"),
        ("by: trust_safety", "by: ai_agent", "a review is decided by a person"),
        ("when: customer.first_order\n", "when: customer.first_ordr\n", "first_ordr"),
    ],
)
def test_a_review_that_cannot_be_kept_is_refused_with_its_line(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK.replace(old, new), encoding="utf-8")
    with pytest.raises(PolicyError, match=message) as raised:
        load_pack(path)
    assert raised.value.line is not None


ONLY = PACK.replace(
    "        by: trust_safety\n", "        by: trust_safety\n        only: true\n", 1
)
"""The fraud review decided by Trust & Safety alone: a manager's rank does not stand in."""


def test_a_review_only_a_role_without_authority_decides_is_refused(tmp_path: Path) -> None:
    # Nobody else may approve what it holds, and it may approve none of it: every flagged
    # case would wait for an approval no one could give.
    path = tmp_path / "pack.yaml"
    text = ONLY.replace(
        '  - id: trust_safety\n    authority:\n      refund: {standard: "1000.00"}\n',
        "  - id: trust_safety\n    authority: {}\n",
    )
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_pack(path)
    assert "review is decided only by 'trust_safety', which holds no authority over" in str(
        raised.value
    )
    assert raised.value.rule_id == "fraud-review"


@pytest.mark.parametrize(
    ("actor", "outcome", "role"),
    [
        (BOT, Outcome.ROUTE, "trust_safety"),
        (TINA, Outcome.ROUTE, "trust_safety"),
        (TESS, Outcome.ALLOW, None),  # the reviewing role itself
        (MIA, Outcome.ROUTE, "trust_safety"),  # above it, and still not the review
    ],
)
def test_a_review_only_its_role_decides_is_not_satisfied_by_a_higher_rank(
    tmp_path: Path, actor: Actor, outcome: Outcome, role: str | None
) -> None:
    decision = guard(tmp_path, ONLY, **{"customer.fraud_score": 90}).decide(refund(actor=actor))
    assert (decision.outcome, decision.required_role) == (outcome, role)


def test_a_review_only_its_role_decides_routes_to_it_whatever_the_amount(tmp_path: Path) -> None:
    decision = guard(
        tmp_path,
        ONLY,
        **{"customer.fraud_score": 90, "order.total": {"amount": "3000.00", "currency": "USD"}},
    ).decide(refund("2000.00"))
    assert decision.required_role == "trust_safety"
    assert decision.rules[-1] == "fraud-review"


def test_only_the_reviewing_role_itself_approves_a_case_only_it_decides(tmp_path: Path) -> None:
    g = guard(tmp_path, ONLY, **{"customer.fraud_score": 90})
    routed = g.decide(refund())
    with pytest.raises(ApprovalError, match="'trust_safety'") as refused:
        g.approvals.approve(routed.id, approver=MIA, note="I outrank them")
    # Not stale: the case stands, for the role that decides it.
    assert not isinstance(refused.value, StaleApproval)
    assert g.approvals.get(routed.id).status is ApprovalStatus.PENDING
    approved = g.approvals.approve(routed.id, approver=TESS, note="score explained")
    assert approved.status is ApprovalStatus.APPROVED


def test_a_case_only_its_reviewing_role_decides_is_never_escalated_past_it(
    tmp_path: Path,
) -> None:
    # Above the review nobody could approve it: an escalation would leave it stuck.
    g = guard(tmp_path, ONLY, **{"customer.fraud_score": 90})
    routed = g.decide(refund())
    with pytest.raises(ApprovalError, match="only 'trust_safety' decides; it cannot be escalated"):
        g.approvals.escalate(routed.id, approver=TINA, note="not mine")
    assert g.approvals.get(routed.id).required_role == "trust_safety"
    approved = g.approvals.approve(routed.id, approver=TESS, note="score explained")
    assert approved.status is ApprovalStatus.APPROVED


def test_only_without_a_role_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(
        PACK.replace(
            "when: customer.first_order\n", "when: customer.first_order\n        only: true\n"
        ),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="names no role") as raised:
        load_pack(path)
    assert raised.value.line is not None


def test_two_reviews_only_their_roles_decide_route_to_the_higher_and_say_so(
    tmp_path: Path,
) -> None:
    text = ONLY.replace(
        "      - id: first-order\n        when: customer.first_order\n",
        "      - id: first-order\n        when: customer.first_order\n        by: tier1\n"
        "        only: true\n",
    )
    decision = guard(
        tmp_path, text, **{"customer.fraud_score": 90, "customer.first_order": True}
    ).decide(refund())
    assert decision.outcome is Outcome.ROUTE
    # Listed order does not choose: the higher of the two roles does.
    assert decision.required_role == "trust_safety"
    assert any("no one person can approve it" in cause for cause in decision.causes)


@pytest.mark.parametrize(
    ("total", "score", "role"),
    [
        (None, 90, "trust_safety"),  # the order's total is not on file; the score is
        ({"amount": "400.00", "currency": "EUR"}, 90, "trust_safety"),  # money in another currency
        (None, 10, "tier1"),  # the review does not hold: the lowest rung that covers it
    ],
)
def test_a_case_whose_facts_were_not_all_read_still_goes_to_the_review_only_its_role_decides(
    tmp_path: Path, total: dict[str, str] | None, score: int, role: str
) -> None:
    # Routed for the fact it could not read, to whom the review that holds on what could be
    # read sends it: no other rung's approval would stand.
    facts = {**FACTS, "customer.fraud_score": score}
    if total is None:
        del facts["order.total"]
    else:
        facts["order.total"] = total
    path = tmp_path / "pack.yaml"
    path.write_text(ONLY, encoding="utf-8")
    g = Guard(
        load_pack(path),
        store=SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}"),
        context=StaticContextProvider(facts),
        clock=lambda: NOW,
    )
    decision = g.decide(refund())
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.context-unavailable"]
    assert decision.required_role == role
