"""Explanations name the ground that failed and the fact that failed it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import NOW, Counter, FakeClock
from discretion import Guard, Outcome, load_pack
from discretion.context import StaticContextProvider
from discretion.policy import PolicyPack
from discretion.policy._compile import split_conjuncts

PACK = Path(__file__).resolve().parent.parent / "packs" / "grounds.yaml"
GENERIC = ("no permitted exception reason applies", "the cited reason's preconditions do not hold")


def facts(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "customer.tier": "silver",
        "customer.since": (NOW - timedelta(days=800)).isoformat(),
        "order.total": {"amount": "120.00", "currency": "USD"},
        "order.delivered_at": (NOW - timedelta(days=60)).isoformat(),
        "shipment.status": "delivered",
    }
    base.update(overrides)
    return base


def refund(amount: str, reason: str | None = None) -> dict[str, Any]:
    return {
        "actor": {"id": "bot-1", "role": "ai_agent"},
        "tool": {
            "name": "issue_refund",
            "arguments": {"amount": amount, "customer_id": "c-1", "order_id": "o-1"},
        },
        "rationale": {"reason": reason},
    }


@pytest.fixture(scope="module")
def pack() -> PolicyPack:
    return load_pack(PACK)


@pytest.fixture
def decide(sqlite_store):
    ids = Counter()

    def run(proposal: dict[str, Any], case: dict[str, Any], policy: PolicyPack | None = None):
        guard = Guard(
            policy or load_pack(PACK),
            store=sqlite_store,
            context=StaticContextProvider(case),
            clock=FakeClock(NOW),
            ids=ids,
        )
        return guard.decide(proposal)

    return run


def test_a_reason_is_split_into_grounds_at_its_top_level_and(pack):
    loyalty = pack.actions["refund"].reason("loyalty")

    assert loyalty is not None
    assert [(g.source, g.reads) for g in loyalty.grounds] == [
        ("(customer.tier == 'gold' || customer.tier == 'platinum')", ("customer.tier",)),
        ("now - order.delivered_at <= duration('2160h')", ("order.delivered_at",)),
        ("now - customer.since >= duration('8760h')", ("customer.since",)),
    ]


@pytest.mark.parametrize(
    ("when", "parts"),
    [
        ("a && b", ["a", "b"]),
        ("(a && b)", ["a", "b"]),
        ("a && (b || c) && 'x&&y' == d", ["a", "(b || c)", "'x&&y' == d"]),
        # `||` and `?:` bind looser than `&&`: splitting would name a false "ground".
        ("a && b || c", ["a && b || c"]),
        ("a || b && c", ["a || b && c"]),
        ("a && b ? c : d", ["a && b ? c : d"]),
        ("a && '?' == b", ["a", "'?' == b"]),
    ],
)
def test_only_a_top_level_and_splits_a_reason(when, parts):
    assert split_conjuncts(when) == parts


def test_a_denial_names_each_failed_ground_and_its_fact_instead_of_no_permitted_reason(decide):
    decision = decide(refund("30.00", reason="loyalty"), facts())

    assert decision.outcome is Outcome.DENY
    # The rule ids stay as they were: only the explanation says more.
    assert decision.rules == [
        "discretion.not-standard",
        "discretion.reason-not-applicable",
        "loyalty",
        "discretion.no-permitted-reason",
    ]
    assert (
        "reason 'loyalty' does not apply: (customer.tier == 'gold' || customer.tier =="
        " 'platinum') does not hold (customer.tier is 'silver')" in decision.explanation
    )
    assert (
        "reason 'carrier-lost' does not apply: shipment.status == 'lost' does not hold"
        " (shipment.status is 'delivered')" in decision.explanation
    )
    assert not any(text in decision.explanation for text in GENERIC)


def test_the_false_ground_is_named_before_one_a_missing_fact_leaves_undecided(decide):
    # Gold, but the order is not delivered yet and the customer is new: the tenure fails.
    case = facts(
        **{
            "customer.tier": "gold",
            "shipment.status": "in_transit",
            "order.delivered_at": None,
            "customer.since": (NOW - timedelta(days=30)).isoformat(),
        }
    )

    decision = decide(refund("30.00", reason="loyalty"), case)

    assert decision.outcome is Outcome.DENY
    assert (
        "reason 'loyalty' does not apply: now - customer.since >= duration('8760h') does not"
        f" hold (customer.since is {(NOW - timedelta(days=30)).isoformat()})"
        in decision.explanation
    )


def test_an_amount_above_what_a_reason_covers_is_named_with_its_bound(decide):
    gold = facts(**{"customer.tier": "gold"})

    decision = decide(refund("70.00", reason="loyalty"), gold)

    assert decision.outcome is Outcome.DENY
    assert "reason 'loyalty' covers at most USD 60.00" in decision.explanation


def test_private_limits_keep_the_bound_out_of_the_explanation(tmp_path, decide):
    private = tmp_path / "private.yaml"
    private.write_text(
        PACK.read_text(encoding="utf-8").replace("private_limits: false", "private_limits: true"),
        encoding="utf-8",
    )
    gold = facts(**{"customer.tier": "gold"})

    decision = decide(refund("70.00", reason="loyalty"), gold, load_pack(private))

    assert "reason 'loyalty' does not cover this amount" in decision.explanation
    assert "60.00" not in decision.explanation


def test_a_ground_written_over_lines_with_a_comment_is_quoted_on_one_line(tmp_path, decide):
    spread = tmp_path / "spread.yaml"
    source = PACK.read_text(encoding="utf-8")
    old = "          (customer.tier == 'gold' || customer.tier == 'platinum')\n"
    new = (
        "          // the loyal tiers, as the customer's contract names them\n"
        "          (customer.tier == 'gold'\n"
        "             ||   customer.tier == 'platinum')\n"
    )
    assert source.count(old) == 1
    spread.write_text(source.replace(old, new).replace("when: >-", "when: |-"), encoding="utf-8")

    decision = decide(refund("30.00", reason="loyalty"), facts(), load_pack(spread))

    assert decision.outcome is Outcome.DENY
    assert (
        "reason 'loyalty' does not apply: (customer.tier == 'gold' || customer.tier =="
        " 'platinum') does not hold (customer.tier is 'silver')"
    ) in decision.explanation


def test_a_cited_reason_that_fails_is_named_when_another_reason_routes_it(decide):
    lost = facts(**{"shipment.status": "lost"})

    decision = decide(refund("90.00", reason="loyalty"), lost)

    # carrier-lost applies, beyond the agent's exception authority: a person decides.
    assert (decision.outcome, decision.required_role) == (Outcome.ROUTE, "tier1")
    assert decision.rules[-1] == "carrier-lost"
    assert "reason 'loyalty' does not apply: (customer.tier" in decision.explanation
    assert "carrier-lost' does not apply" not in decision.explanation


def test_no_reason_cited_and_none_applies_names_every_reason(decide):
    decision = decide(refund("30.00"), facts())

    assert decision.rules == [
        "discretion.not-standard",
        "discretion.reason-not-cited",
        "discretion.no-permitted-reason",
    ]
    assert "reason 'loyalty' does not apply" in decision.explanation
    assert "reason 'carrier-lost' does not apply" in decision.explanation
    # No reason holds: the agent is not sent looking for one to cite.
    assert "cite a reason" not in decision.explanation


def test_a_denial_names_why_each_standard_rule_does_not_allow_it(decide):
    """No standard rule allowed the case: the agent is told which part of each failed, before
    the reasons."""
    decision = decide(refund("30.00"), facts())
    assert decision.outcome is Outcome.DENY
    explanation = decision.explanation
    standard = explanation.index("standard rule 'within-30-days' does not apply: ")
    assert "does not hold (order.delivered_at is" in explanation[standard:]
    assert standard < explanation.index("reason 'loyalty' does not apply")


def test_an_allowed_exception_does_not_explain_the_standard_rules(decide):
    decision = decide(refund("30.00", reason="carrier-lost"), facts(**{"shipment.status": "lost"}))
    assert decision.outcome is Outcome.ALLOW_EXCEPTION
    assert "standard rule" not in decision.explanation


ONLY_REVIEW = """
pack: only-review
currency: USD
context:
  customer.risk: {type: int, optional: true}
  order.quote: {type: money, optional: true}
roles:
  - id: ai_agent
    ai: true
    authority: {refund: {standard: "50.00"}}
  - id: tier1
    authority: {refund: {standard: "500.00"}}
  - id: fraud_review
    authority: {refund: {standard: "500.00"}}
  - id: manager
    authority: {refund: {standard: "5000.00"}}
actions:
  refund:
    tools:
      - {name: issue_refund, amount: amount, customer: customer_id}
    reads: [customer.risk, order.quote]
    standard:
      - id: within-quote
        when: amount <= order.quote
    reviews:
      - id: risky
        when: customer.risk > 80
        by: fraud_review
        only: true
"""


@pytest.mark.parametrize(
    ("risk", "amount", "role"),
    [
        (90, "80.00", "fraud_review"),
        (10, "80.00", "tier1"),
        # Beyond what fraud review may grant: the rung that covers it decides first.
        (90, "800.00", "manager"),
    ],
)
def test_a_case_that_cannot_be_evaluated_goes_to_the_only_role_a_review_leaves(
    tmp_path, sqlite_store, risk, amount, role
):
    path = tmp_path / "pack.yaml"
    path.write_text(ONLY_REVIEW)
    guard = Guard(
        load_pack(path),
        store=sqlite_store,
        context=StaticContextProvider({"customer.risk": risk}),
        clock=lambda: NOW,
    )
    decision = guard.decide(
        {
            "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
            "tool": {
                "name": "issue_refund",
                "arguments": {"amount": amount, "customer_id": "c-1"},
            },
        }
    )
    # The quote is not in yet: the standard rule cannot be read.
    assert decision.rules == ["discretion.evaluation-error"]
    assert decision.required_role == role


def test_a_reason_testing_presence_is_split_into_grounds_too():
    """`has(...)` in one part kept the whole `when` as a single ground: the explanation quoted
    all of it where one condition failed."""
    travel = load_pack(PACK.parent / "travel.yaml")

    reason = travel.actions["change_fee_waiver"].reason("schedule-change")

    assert reason is not None
    assert [g.source for g in reason.grounds] == [
        "has(args.reason)",
        "args.reason == 'airline_schedule_change'",
    ]
