"""A team beside the ladder: cases go to it only where a review or a budget sends them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from discretion import Actor, Guard, Money, Outcome, SqlStore, load_pack
from discretion.approvals import ApprovalStatus
from discretion.context import StaticContextProvider
from discretion.errors import ApprovalError, PolicyError, StaleApproval
from discretion.precedent import PrecedentSpec

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

# Listed last, the fraud team would be the top rung without `beside`: every case above the
# manager, and every false statement of the manager's, would go to it.
PACK = """
pack: beside
currency: USD
context:
  customer.fraud_score: int
  customer.segment: string
claims: {check: every_decision}
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {standard: "100.00"}
  - id: tier1
    authority:
      refund: {standard: "500.00"}
  - id: manager
    authority:
      refund: {standard: "5000.00"}
  - id: fraud_team
    beside: true
    authority:
      refund: {standard: "2000.00"}
budgets:
  - id: enterprise-daily
    key: organisation
    window: 24h
    limit: "3000.00"
    roles: [ai_agent, tier1]
    route_to: fraud_team
actions:
  refund:
    tools:
      - name: issue_refund
        amount: amount
        customer: customer_id
    reads: [customer.fraud_score, customer.segment]
    standard:
      - id: any-refund
        when: "true"
    reviews:
      - id: fraud-review
        when: customer.fraud_score > 80
        by: fraud_team
      - id: enterprise
        when: customer.segment == 'enterprise'
        by: manager
"""

TEAM = '  - id: fraud_team\n    beside: true\n    authority:\n      refund: {standard: "2000.00"}\n'
LOW = PACK.replace(TEAM, "").replace("  - id: tier1\n", TEAM + "  - id: tier1\n")
"""The same pack with the team listed below tier1: its place ranks it above or below no one."""

FACTS: dict[str, Any] = {"customer.fraud_score": 10, "customer.segment": "retail"}

BOT = Actor(id="bot", role="ai_agent")
TINA = Actor(id="tina", role="tier1", is_ai=False)
MIA = Actor(id="mia", role="manager", is_ai=False)
FRAN = Actor(id="fran", role="fraud_team", is_ai=False)


class Facts:
    """The case system's facts, which a test may change between calls."""

    in_process = True

    def __init__(self, **facts: Any) -> None:
        self.facts = {**FACTS, **facts}

    def fetch(self, request: Any, /) -> dict[str, Any]:
        return dict(self.facts)


def guard(tmp_path: Path, text: str = PACK, context: Any = None, **facts: Any) -> Guard:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    context = context or StaticContextProvider({**FACTS, **facts})
    store = SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    return Guard(load_pack(path), store=store, context=context, clock=lambda: NOW)


def refund(
    amount: str, actor: Actor = BOT, key: str = "k", claims: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "actor": actor.model_dump(),
        "tool": {"name": "issue_refund", "arguments": {"amount": amount, "customer_id": "c"}},
        "rationale": {"claims": claims or []},
        "idempotency_key": key,
    }


def test_a_case_no_rung_can_yet_be_named_for_goes_to_the_top_of_the_ladder_not_beside_it(
    tmp_path: Path,
) -> None:
    # A fact missing: it fails closed to the top rung, which is the manager's.
    decision = guard(tmp_path, **{"customer.segment": None}).decide(refund("6000.00"))

    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.context-unavailable"]
    assert decision.required_role == "manager"


def test_a_case_climbs_to_the_lowest_rung_covering_it(tmp_path: Path) -> None:
    # The fraud team's 2,000.00 covers 1,500.00 below the manager's rank; it is no rung.
    assert guard(tmp_path).decide(refund("1500.00")).required_role == "manager"


def test_a_false_statement_of_the_top_rung_has_nobody_above_it(tmp_path: Path) -> None:
    false = [{"field": "customer.segment", "value": "enterprise"}]
    decision = guard(tmp_path).decide(refund("50.00", actor=MIA, claims=false))

    assert decision.outcome is Outcome.DENY
    assert "discretion.claim.nobody-above" in decision.rules


@pytest.mark.parametrize(
    ("actor", "outcome", "role"),
    [
        (BOT, Outcome.ROUTE, "fraud_team"),
        (MIA, Outcome.ROUTE, "fraud_team"),  # no rank stands in for the team
        (FRAN, Outcome.ALLOW, None),  # the team decides it by the rules
    ],
)
def test_a_review_by_a_team_beside_the_ladder_is_decided_by_it_alone(
    tmp_path: Path, actor: Actor, outcome: Outcome, role: str | None
) -> None:
    decision = guard(tmp_path, **{"customer.fraud_score": 90}).decide(refund("50.00", actor))

    assert (decision.outcome, decision.required_role) == (outcome, role)


def test_a_team_beside_the_ladder_is_no_rungs_review(tmp_path: Path) -> None:
    g = guard(tmp_path, **{"customer.segment": "enterprise"})

    assert g.decide(refund("50.00", FRAN)).required_role == "manager"


def test_its_own_case_above_its_authority_climbs_the_ladder_from_its_foot(
    tmp_path: Path,
) -> None:
    decision = guard(tmp_path).decide(refund("3000.00", FRAN))

    assert (decision.outcome, decision.required_role) == (Outcome.ROUTE, "manager")


def test_only_the_team_decides_what_is_sent_to_it_and_nothing_else(tmp_path: Path) -> None:
    g = guard(tmp_path, **{"customer.fraud_score": 90})
    sent = g.decide(refund("50.00", key="sent"))
    g2 = guard(tmp_path / "other")
    ladder = g2.decide(refund("300.00", key="ladder"))
    assert (sent.required_role, ladder.required_role) == ("fraud_team", "tier1")

    with pytest.raises(ApprovalError, match="'fraud_team' decides it, beside the ladder"):
        g.approvals.approve(sent.id, approver=MIA, note="I outrank them")
    with pytest.raises(ApprovalError, match="cannot be escalated past it"):
        g.approvals.escalate(sent.id, approver=TINA, note="not mine")
    with pytest.raises(ApprovalError, match="beside the ladder it decides only what is sent"):
        g2.approvals.approve(ladder.id, approver=FRAN, note="fine")

    assert [a.id for a in g.approvals.list(role="fraud_team")] == [sent.id]
    assert g.approvals.list(role="manager") == []
    assert g2.approvals.list(role="fraud_team") == []
    assert [a.id for a in g2.approvals.list(role="manager")] == [ladder.id]
    assert g.approvals.approve(sent.id, approver=FRAN, note="score explained").status is (
        ApprovalStatus.APPROVED
    )
    assert g2.approvals.approve(ladder.id, approver=MIA, note="fine").status is (
        ApprovalStatus.APPROVED
    )


def test_a_budget_naming_a_team_beside_the_ladder_routes_to_it(tmp_path: Path) -> None:
    g = guard(tmp_path)
    g.decide(refund("100.00", key="a"))
    for n in range(6):
        g.decide(refund("450.00", TINA, key=f"t{n}"))

    over = g.decide(refund("450.00", TINA, key="over"))

    assert over.outcome is Outcome.ROUTE
    assert over.rules == ["any-refund", "enterprise-daily"]
    assert over.required_role == "fraud_team"
    with pytest.raises(ApprovalError, match="beside the ladder: no rung stands in for it"):
        g.approvals.escalate(over.id, approver=MIA, note="mine")
    with pytest.raises(ApprovalError, match="'fraud_team' decides it"):
        g.approvals.approve(over.id, approver=MIA, note="mine")
    assert g.approvals.approve(over.id, approver=FRAN, note="checked").status is (
        ApprovalStatus.APPROVED
    )


def test_a_budget_routes_to_a_team_beside_the_ladder_wherever_it_is_listed(
    tmp_path: Path,
) -> None:
    # Listed below tier1, its place was read as a rank: the case went to tier1, who could not
    # go beyond the budget, and no one could approve it.
    g = guard(tmp_path, LOW)
    for n in range(6):
        g.decide(refund("450.00", TINA, key=f"t{n}"))
    over = g.decide(refund("450.00", TINA, key="over"))
    assert (over.outcome, over.required_role) == (Outcome.ROUTE, "fraud_team")
    assert g.approvals.approve(over.id, approver=FRAN, note="checked").status is (
        ApprovalStatus.APPROVED
    )


def test_a_budget_and_a_review_of_the_ladder_together_say_no_one_person_can_approve_it(
    tmp_path: Path,
) -> None:
    facts = Facts()
    g = guard(tmp_path, context=facts)
    for n in range(6):
        g.decide(refund("450.00", TINA, key=f"t{n}"))
    facts.facts["customer.segment"] = "enterprise"  # a review of the manager's holds now
    over = g.decide(refund("450.00", TINA, key="over"))
    assert over.required_role == "fraud_team"
    assert any("no one person can approve it" in cause for cause in over.causes)
    with pytest.raises(ApprovalError, match="needs 'manager' as well"):
        g.approvals.approve(over.id, approver=FRAN, note="checked")


def test_a_budget_sending_cases_to_a_team_without_authority_is_refused_at_load(
    tmp_path: Path,
) -> None:
    text = PACK.replace(
        '    beside: true\n    authority:\n      refund: {standard: "2000.00"}\n',
        "    beside: true\n",
    ).replace(
        "      - id: fraud-review\n        when: customer.fraud_score > 80\n"
        "        by: fraud_team\n",
        "",
    )
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match="is beside the ladder and holds no authority over"):
        load_pack(path)


def test_a_false_statement_keeps_a_case_with_the_team_its_review_sends_it_to(
    tmp_path: Path,
) -> None:
    # Listed below tier1, the team's place was read as a rank: the case went to the manager,
    # who could not approve it past the review, and the team could not act on it.
    false = [{"field": "customer.segment", "value": "enterprise"}]
    g = guard(tmp_path, LOW, **{"customer.fraud_score": 90})
    decision = g.decide(refund("50.00", TINA, claims=false))
    assert decision.outcome is Outcome.ROUTE
    assert "discretion.claim.contradicts-fact" in decision.rules
    assert decision.required_role == "fraud_team"


def test_a_team_review_holding_only_at_approval_is_stale_not_escalated(tmp_path: Path) -> None:
    facts = Facts()
    g = guard(tmp_path, context=facts)
    routed = g.decide(refund("300.00"))
    assert routed.required_role == "tier1"
    facts.facts["customer.fraud_score"] = 95
    with pytest.raises(StaleApproval, match="now needs 'fraud_team', beside the ladder"):
        g.approvals.approve(routed.id, approver=TINA, note="fine")


def test_what_no_rung_may_grant_and_a_team_may_goes_to_the_team_not_denied(
    tmp_path: Path,
) -> None:
    # "Goodwill beyond every rung's authority is the relationship manager's": it goes to them.
    text = PACK.replace(
        '      refund: {standard: "5000.00"}\n', '      refund: {standard: "1000.00"}\n'
    )
    g = guard(tmp_path, text)

    decision = g.decide(refund("1500.00"))
    assert (decision.outcome, decision.required_role) == (Outcome.ROUTE, "fraud_team")
    assert g.approvals.approve(decision.id, approver=FRAN, note="ours").status is (
        ApprovalStatus.APPROVED
    )
    # Within a rung's authority, the ladder decides, as before.
    assert g.decide(refund("900.00", key="rung")).required_role == "manager"
    assert g.decide(refund("2500.00", key="none")).outcome is Outcome.DENY


def test_a_teams_own_case_that_needs_a_second_person_goes_to_the_team(tmp_path: Path) -> None:
    # Above two approvals, or on a false statement, the "person above" a team member is none of
    # the rungs (the team's review would refuse each): a colleague of the team decides.
    text = PACK.replace(
        "  refund:\n    tools:", '  refund:\n    two_approvals_above: "1000.00"\n    tools:'
    )
    g = guard(tmp_path, text, **{"customer.fraud_score": 90})

    two = g.decide(refund("1500.00", FRAN, key="two"))
    assert (two.outcome, two.required_role) == (Outcome.ROUTE, "fraud_team")
    false = [{"field": "customer.segment", "value": "enterprise"}]
    claimed = g.decide(refund("50.00", FRAN, key="claim", claims=false))
    assert (claimed.outcome, claimed.required_role) == (Outcome.ROUTE, "fraud_team")

    fred = Actor(id="fred", role="fraud_team", is_ai=False)
    assert g.approvals.approve(claimed.id, approver=fred, note="checked").status is (
        ApprovalStatus.APPROVED
    )


def test_a_team_sets_precedent_only_on_the_cases_sent_to_it(tmp_path: Path) -> None:
    # A precedent on the agent's own case would let it grant alone, past every rung.
    text = (
        PACK.replace(
            "    standard:\n      - id: any-refund\n",
            "    exceptions:\n      - id: goodwill\n        precedent: {scope: [customer.segment],"
            " max_expiry: 90d}\n    standard:\n      - id: any-refund\n",
        )
        .replace(
            'refund: {standard: "100.00"}', 'refund: {standard: "100.00", exception: "200.00"}'
        )
        .replace(
            'refund: {standard: "2000.00"}', 'refund: {standard: "2000.00", exception: "2000.00"}'
        )
    )
    g = guard(tmp_path, text)
    goodwill = {**refund("150.00", key="agent"), "rationale": {"reason": "goodwill"}}
    agents = g.decide(goodwill)
    assert agents.outcome is Outcome.ALLOW_EXCEPTION

    spec = PrecedentSpec(
        scope={"customer.segment": "retail"},
        max_amount=Money.of("2000.00", "USD"),
        expires_at=NOW + timedelta(days=30),
        citations=100,
        note="retail goodwill is fine",
    )
    with pytest.raises(ApprovalError, match="beside the ladder and decides only what is sent"):
        g.precedents.set(agents.id, spec, grantor=FRAN)
