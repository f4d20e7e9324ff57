"""Screened rules decide exactly as rules evaluated one by one.

An action's rules are screened by a few CEL programs (`policy/_screen.py`); rules whose facts
are missing or null make those programs error, and the chunk is then decided rule by rule. These
tests hold the screened evaluation to the rule-by-rule one (the action without its screens) over
random facts: same outcome, same rule ids in the same order, same deciding rules, same causes
(the erroring rule's expression and message) and same failed-ground explanations.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import NOW, FakeClock
from discretion import Guard, load_pack
from discretion.context import StaticContextProvider
from discretion.pipeline._evaluate import evaluate
from discretion.policy import ActionPolicy, EvaluationError, PolicyPack, Rule, _screen

HEADER = """pack: many-rules
currency: USD
context:
  customer.tier: {type: string, nullable: true}
  customer.fraud_flag: {type: bool, nullable: true}
  customer.orders: {type: int, nullable: true}
  order.total: {type: money, nullable: true}
  order.delivered_at: {type: timestamp, nullable: true}
  shipment.status: {type: string, nullable: true}
  incident.active: {type: bool, nullable: true}
  booking.id: {type: string, optional: true}
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {standard: "50.00", exception: "20.00"}
  - id: tier1
    authority:
      refund: {standard: "200.00", exception: "100.00"}
  - id: manager
    authority:
      refund: {standard: "2000.00", exception: "1000.00"}
actions:
  refund:
    tools:
      - name: issue_refund
        amount: amount
        currency: currency
        customer: customer_id
        order: order_id
    reads: [customer.tier, customer.fraud_flag, customer.orders, order.total,
            order.delivered_at, shipment.status, incident.active, booking.id]
"""

# Each reads facts a draw may leave out or null, so that some rules hold, some do not and some
# cannot be evaluated; `{k}`, `{m}`, `{a}` and `{h}` vary them from rule to rule.
LIMITS = (
    "customer.tier == 'tier-{k}' && customer.orders > {m}",
    "customer.fraud_flag && amount > {a}",
    "has(booking.id) && booking.id == 'b-{k}'",
    "amount > order.total + {a} + 20000 // a comment, ending with its line",
    "shipment.status == 'seized-{k}' || incident.active && customer.orders == {m}",
    "now - order.delivered_at > duration('{h}h') && customer.tier == 'tier-{k}'",
)
STANDARD = (
    ("customer.tier == 'tier-{k}' && shipment.status == 'delivered'", "order.total"),
    ("customer.orders == {m} && now - order.delivered_at <= duration('{h}h')", "{a}"),
    ("has(booking.id) && shipment.status == 'status-{k}'", None),
    ("customer.tier == 'tier-{k}' && customer.orders < {m}", "order.total / 2"),
)
REASONS = (
    ("incident.active && customer.orders > {m}", "order.total / {d}"),
    ("shipment.status == 'lost' && customer.tier == 'tier-{k}'", None),
    ("customer.fraud_flag == false && amount <= {a} && !has(booking.id)", "{a}"),
    ("now - order.delivered_at >= duration('{h}h') && shipment.status == 'late'", "order.total"),
)


def fill(template: str, i: int) -> str:
    return template.format(
        k=i % 13, m=i % 41, a=(i * 997) % 30_000, h=(i * 37) % 2_000, d=i % 4 + 1
    )


def generate(hard_limits: int, standard: int, reasons: int) -> str:
    out = [HEADER, "    hard_limits:\n"]
    for i in range(hard_limits):
        out.append(f'      - id: limit-{i}\n        when: "{fill(LIMITS[i % len(LIMITS)], i)}"\n')
    out.append("    standard:\n")
    for i in range(standard):
        when, most = STANDARD[i % len(STANDARD)]
        out.append(f'      - id: standard-{i}\n        when: "{fill(when, i)}"\n')
        if most is not None:
            out.append(f'        max_amount: "{fill(most, i)}"\n')
    out.append("    exceptions:\n")
    for i in range(reasons):
        when, most = REASONS[i % len(REASONS)]
        out.append(f'      - id: reason-{i}\n        when: "{fill(when, i)}"\n')
        if most is not None:
            out.append(f'        max_amount: "{fill(most, i)}"\n')
    return "".join(out)


def unscreened(pack: PolicyPack) -> PolicyPack:
    """The same pack, every rule evaluated by its own program, one by one."""
    return replace(
        pack,
        actions=MappingProxyType(
            {name: replace(action, screens=None) for name, action in pack.actions.items()}
        ),
    )


class Packs(tuple[PolicyPack, PolicyPack]):
    """The screened pack and the same pack rule by rule; its repr is short, for failure reports."""

    chunk: int

    def __repr__(self) -> str:
        return f"Packs(chunks of at most {self.chunk} rules)"


@pytest.fixture(scope="module", params=[5, _screen.CHUNK], ids=["chunks-of-5", "default-chunks"])
def packs(request, tmp_path_factory) -> Packs:
    path = tmp_path_factory.mktemp("many") / "pack.yaml"
    path.write_text(generate(hard_limits=60, standard=48, reasons=20), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_screen, "CHUNK", request.param)
        pack = load_pack(path)
    found = Packs((pack, unscreened(pack)))
    found.chunk = request.param
    return found


def maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A fact's value, or now and then None: a null fact (or an absent one), unbound in CEL."""
    return st.tuples(st.integers(0, 11), values).map(
        lambda drawn: None if drawn[0] == 0 else drawn[1]
    )


# Mostly tiers and statuses no rule names, so that hard limits do not always deny.
TIERS = st.sampled_from([f"tier-{k}" for k in range(13)] + ["gold", "silver", "bronze"] * 10)
STATUSES = st.sampled_from(
    ["delivered", "lost", "late", "seized-3", "status-5", "status-2", "in_transit"]
)

FACTS = st.fixed_dictionaries(
    {
        "customer.tier": maybe(TIERS),
        "customer.fraud_flag": maybe(st.sampled_from([False] * 9 + [True])),
        "customer.orders": maybe(st.integers(0, 60)),
        "order.total": maybe(st.integers(0, 40_000)),
        "order.delivered_at": maybe(st.integers(0, 3_000).map(lambda h: NOW - timedelta(hours=h))),
        "shipment.status": maybe(STATUSES),
        "incident.active": maybe(st.sampled_from([False, False, True])),
        "booking.id": maybe(st.sampled_from([f"b-{k}" for k in range(13)] + ["b-99"] * 30)),
    }
)


def decide(pack: PolicyPack, facts: dict[str, Any], amount: int, role: str, cited: str | None):
    action = pack.actions["refund"]
    found = pack.role(role)
    assert found is not None
    return evaluate(
        pack,
        action,
        role=found,
        actor_is_ai=found.is_ai,
        actor_id="tester",
        amount_minor=amount,
        cited_reason=cited,
        facts={name: value for name, value in facts.items() if value is not None},
        now=NOW,
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    facts=FACTS,
    amount=st.integers(1, 40_000),
    role=st.sampled_from(["ai_agent", "tier1", "manager"]),
    cited=st.one_of(
        st.none(), st.sampled_from([f"reason-{i}" for i in range(20)] + ["no-such-reason"])
    ),
)
def test_screened_evaluation_is_rule_by_rule_evaluation(packs, facts, amount, role, cited):
    screened, by_rule = packs
    expected = decide(by_rule, facts, amount, role, cited)
    found = decide(screened, facts, amount, role, cited)
    assert found.outcome == expected.outcome
    assert found.rules == expected.rules
    assert [r.id for r in found.deciding] == [r.id for r in expected.deciding]
    assert found.causes == expected.causes
    assert found.grounds == expected.grounds
    assert found == expected


def by_rule(rules: tuple[Rule, ...], activation: Any) -> Iterator[Rule]:
    return (rule for rule in rules if rule.when.evaluate(activation))


def drain(rules: Iterator[Rule], stop_after: int | None) -> tuple[list[str], str | None]:
    """The ids a consumer takes (all, or the first `stop_after`) and the error it meets."""
    taken: list[str] = []
    try:
        for rule in rules:
            taken.append(rule.id)
            if stop_after is not None and len(taken) == stop_after:
                break
    except EvaluationError as exc:
        return taken, str(exc)
    return taken, None


def activation_of(action: ActionPolicy, facts: dict[str, Any], amount: int) -> Any:
    data = {name: value for name, value in facts.items() if value is not None}
    data.update({"amount": amount, "now": NOW, "actor.role": "ai_agent", "actor.is_ai": True})
    for variable, name in action.presence:
        data[variable] = name in data
    return action.env.Activation(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    facts=FACTS, amount=st.integers(1, 40_000), stop_after=st.one_of(st.none(), st.integers(1, 3))
)
def test_a_screen_yields_the_rules_that_hold_in_order_and_stops_at_the_same_error(
    packs, facts, amount, stop_after
):
    action = packs[0].actions["refund"]
    assert action.screens is not None
    activation = activation_of(action, facts, amount)
    for screen in (action.screens.hard_limits, action.screens.standard, action.screens.exceptions):
        assert drain(screen.holding(activation), stop_after) == drain(
            by_rule(screen.rules, activation), stop_after
        )


def test_every_chunk_of_a_pack_with_many_rules_is_screened(packs):
    screens = packs[0].actions["refund"].screens
    assert screens is not None
    for screen in (screens.hard_limits, screens.standard, screens.exceptions):
        assert sum(chunk.end - chunk.start for chunk in screen.chunks) == len(screen.rules)
        assert all(chunk.which is not None for chunk in screen.chunks)
    assert all(chunk.any is not None for chunk in screens.hard_limits.chunks)


SMALL = """pack: small
currency: USD
context:
  customer.tier: string
  order.delivered_at: {type: timestamp, nullable: true}
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {standard: "50.00"}
  - id: manager
    authority:
      refund: {standard: "500.00"}
actions:
  refund:
    tools:
      - name: issue_refund
        amount: amount
        currency: currency
        customer: customer_id
    reads: [customer.tier, order.delivered_at]
"""


def small_pack(tmp_path: Path, rules: str) -> PolicyPack:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL + rules, encoding="utf-8")
    return load_pack(path)


def preview(pack: PolicyPack, facts: dict[str, Any]):
    guard = Guard(pack, context=StaticContextProvider(facts), clock=FakeClock(NOW))
    return guard.preview(
        {
            "actor": {"id": "bot", "role": "ai_agent"},
            "tool": {
                "name": "issue_refund",
                "arguments": {"amount": "20.00", "currency": "USD", "customer_id": "c-1"},
            },
            "rationale": {"text": "asked"},
            "idempotency_key": "k-1",
        }
    )


def test_a_hard_limit_that_holds_denies_though_another_cannot_be_read(tmp_path):
    pack = small_pack(
        tmp_path,
        "    hard_limits:\n"
        "      - {id: gold-blocked, when: \"customer.tier == 'gold'\"}\n"
        "      - {id: stale, when: \"now - order.delivered_at > duration('1h')\"}\n"
        "    standard:\n"
        "      - {id: any, when: 'true'}\n",
    )
    facts = {"customer.tier": "gold", "order.delivered_at": None}
    screened, by_rule_ = preview(pack, facts), preview(unscreened(pack), facts)
    # A "never" that holds forbids the action whatever the unread one would have said.
    assert screened.outcome.value == "deny"
    assert screened.rules == ["gold-blocked"]
    assert (screened.outcome, screened.rules, screened.causes, screened.explanation) == (
        by_rule_.outcome,
        by_rule_.rules,
        by_rule_.causes,
        by_rule_.explanation,
    )


def test_a_hard_limit_that_cannot_be_read_routes_when_none_holds(tmp_path):
    pack = small_pack(
        tmp_path,
        "    hard_limits:\n"
        "      - {id: gold-blocked, when: \"customer.tier == 'gold'\"}\n"
        "      - {id: stale, when: \"now - order.delivered_at > duration('1h')\"}\n"
        "    standard:\n"
        "      - {id: any, when: 'true'}\n",
    )
    facts = {"customer.tier": "silver", "order.delivered_at": None}
    for decided in (preview(pack, facts), preview(unscreened(pack), facts)):
        assert decided.outcome.value == "route"
        assert decided.rules == ["discretion.evaluation-error"]
        assert "now - order.delivered_at > duration('1h')" in decided.causes[0]


def test_a_standard_rule_that_errors_after_the_one_that_matches_is_never_evaluated(tmp_path):
    pack = small_pack(
        tmp_path,
        "    standard:\n"
        "      - {id: gold, when: \"customer.tier == 'gold'\"}\n"
        "      - {id: recent, when: \"now - order.delivered_at < duration('720h')\"}\n",
    )
    decision = preview(pack, {"customer.tier": "gold", "order.delivered_at": None})
    assert decision.outcome.value == "allow"
    assert decision.rules == ["gold"]
    routed = preview(pack, {"customer.tier": "silver", "order.delivered_at": None})
    assert routed.outcome.value == "route"
    assert routed.rules == ["discretion.evaluation-error"]
    assert "now - order.delivered_at < duration('720h')" in routed.causes[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(facts=FACTS)
def test_a_previewed_decision_and_its_explanation_are_the_same_screened_or_not(packs, facts):
    screened, by_rule_ = packs
    # As a provider answers: money and timestamps as text, a null as None, an optional fact
    # left out.
    present = dict(facts)
    if present["order.total"] is not None:
        present["order.total"] = {
            "amount": f"{present['order.total'] / 100:.2f}",
            "currency": "USD",
        }
    if present["order.delivered_at"] is not None:
        present["order.delivered_at"] = present["order.delivered_at"].isoformat()
    if present["booking.id"] is None:
        del present["booking.id"]
    expected = preview(by_rule_, present)
    found = preview(screened, present)
    assert (found.outcome, found.rules, found.reason, found.required_role) == (
        expected.outcome,
        expected.rules,
        expected.reason,
        expected.required_role,
    )
    assert found.causes == expected.causes
    assert found.explanation == expected.explanation


@pytest.mark.parametrize(
    ("pack_dir", "currency", "rate"),
    [("marketplace", "EUR", None), ("travel", "GBP", "1.17")],
)
def test_a_view_in_another_currency_screens_its_reasons_as_the_pack_does(pack_dir, currency, rate):
    from decimal import Decimal

    pack = load_pack(Path(__file__).parents[2] / "examples" / pack_dir / "pack")
    view = pack.in_currency(currency, Decimal(rate) if rate is not None else None)
    assert view is not pack
    for name, action in view.actions.items():
        own = pack.actions[name]
        assert action.screens is not None
        assert own.screens is not None
        screen = action.screens.exceptions
        # The view's reasons carry their own judge bands, and its screen is for exactly them:
        # `evaluate` passes a screen over only when its rules are not the action's own.
        assert screen.rules is action.exceptions
        assert screen.chunks is own.screens.exceptions.chunks


def test_a_screen_stands_only_for_the_same_whens(packs):
    action = packs[0].actions["refund"]
    assert action.screens is not None
    moved = (*action.exceptions[1:], action.exceptions[0])
    with pytest.raises(ValueError, match="same whens"):
        action.screens.exceptions.over(moved)


def test_a_cited_reason_that_holds_is_not_held_up_by_another_reason_without_its_fact(tmp_path):
    # Exceptions, as standard rules: once the one the actor cites holds and its authority
    # covers it, the others are not read. A reason whose fact has no value could only have
    # permitted more; the cited reason's own missing fact still routes.
    path = tmp_path / "small.yaml"
    ai_authority = 'refund: {standard: "10.00", exception: "50.00"}'
    path.write_text(
        SMALL.replace('refund: {standard: "50.00"}', ai_authority) + "    exceptions:\n"
        "      - {id: late, when: \"now - order.delivered_at > duration('720h')\"}\n"
        "      - {id: loyal, when: \"customer.tier == 'gold'\"}\n",
        encoding="utf-8",
    )
    pack = load_pack(path)
    facts = {"customer.tier": "gold", "order.delivered_at": None}

    def decide(policy: PolicyPack, reason: str, amount: str = "20.00"):
        guard = Guard(policy, context=StaticContextProvider(facts), clock=FakeClock(NOW))
        return guard.preview(
            {
                "actor": {"id": "bot", "role": "ai_agent"},
                "tool": {
                    "name": "issue_refund",
                    "arguments": {"amount": amount, "currency": "USD", "customer_id": "c-1"},
                },
                "rationale": {"text": "asked", "reason": reason},
                "idempotency_key": "k-1",
            }
        )

    for policy in (pack, unscreened(pack)):
        allowed = decide(policy, "loyal")
        assert allowed.outcome.value == "allow_exception"
        assert allowed.rules == ["discretion.not-standard", "loyal"]
        assert allowed.reason == "loyal"
        # The cited reason reads the missing fact: it cannot be decided, so a person decides.
        routed = decide(policy, "late")
        assert routed.outcome.value == "route"
        assert routed.rules == ["discretion.evaluation-error"]
        assert "now - order.delivered_at" in routed.causes[0]
        # Cited and holding, but beyond the actor's exception authority: every reason is read
        # to find who may grant it, and the one without its fact routes it as it always has.
        beyond = decide(policy, "loyal", amount="60.00")
        assert beyond.outcome.value == "route"
        assert beyond.rules == ["discretion.evaluation-error"]
