"""The grounded judge: claims checked against the facts, and the evidence a reason requires."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import select

from conftest import NOW, refund
from discretion import Outcome, Verdict
from discretion.judge import StaticJudge
from discretion.judge._grounded import _agrees
from discretion.store._schema import ledger

from .helpers import LOST_TEXT, delivered_facts, lost_facts, lost_refund

JUSTIFIED = Verdict(justified=True, clause="carrier-lost", unsupported_claims=[], reason="ok")


def below_band(**kwargs):
    # 5.00 is below the pack's 10.00 judge band: the grounded judge alone reviews it.
    return lost_refund("5.00", **kwargs)


def test_grounded_claims_keep_the_exception_and_are_recorded_per_claim(make_guard):
    guard = make_guard(lost_facts())
    decision = guard.decide(
        below_band(
            claims=[
                {"field": "shipment.status", "value": "lost"},
                {"field": "customer.orders", "value": 7},
            ]
        )
    )
    assert decision.outcome is Outcome.ALLOW_EXCEPTION
    assert decision.rules == ["discretion.not-standard", "carrier-lost"]
    assert decision.judge is not None
    assert [(c.field, c.rule) for c in decision.judge.claims] == [
        ("shipment.status", "discretion.claim.grounded"),
        ("customer.orders", "discretion.claim.grounded"),
    ]
    assert decision.judge.llm == "not_asked"


def test_facts_over_claims_contradicting_claim_routes_with_a_rule_per_claim(make_guard, store):
    guard = make_guard(lost_facts())
    decision = guard.decide(
        below_band(
            claims=[
                {"field": "shipment.status", "value": "lost"},
                {"field": "customer.orders", "value": 40},
            ]
        )
    )
    assert decision.outcome is Outcome.ROUTE
    # From the AI agent up: tier1 is the lowest human role that may grant 5.00 for carrier-lost.
    assert decision.required_role == "tier1"
    assert decision.rules == [
        "discretion.not-standard",
        "carrier-lost",
        "discretion.claim.contradicts-fact",
    ]
    assert decision.judge is not None
    assert [c.rule for c in decision.judge.claims] == [
        "discretion.claim.grounded",
        "discretion.claim.contradicts-fact",
    ]
    assert decision.causes == [
        "claim customer.orders=40 contradicts the case facts for 'customer.orders'"
    ]
    assert "contradicts the case facts" in decision.explanation
    # The lineage keeps the record, and the chain still verifies.
    with store.engine.connect() as connection:
        body = json.loads(
            connection.execute(
                select(ledger.c.body).where(ledger.c.subject_id == decision.id)
            ).scalar_one()
        )
    assert body["decision"]["judge"]["claims"][1] == {
        "field": "customer.orders",
        "value": 40,
        "rule": "discretion.claim.contradicts-fact",
    }
    assert store.verify() >= 1


@pytest.mark.parametrize(
    ("claim", "why"),
    [
        ({"field": "customer.vip", "value": True}, "not a field of the pack"),
        ({"field": "customer.tier", "value": "gold"}, "declared, but refunds do not read it"),
        ({"field": "order.delivered_at", "value": "2026-11-20"}, "read, but null here"),
    ],
)
def test_claim_naming_a_fact_the_context_does_not_hold_routes(make_guard, claim, why):
    decision = make_guard(lost_facts()).decide(
        below_band(claims=[{"field": "shipment.status", "value": "lost"}, claim])
    )
    assert decision.outcome is Outcome.ROUTE, why
    assert decision.rules[-1] == "discretion.claim.unknown-fact"
    assert decision.judge is not None
    assert decision.judge.claims[1].rule == "discretion.claim.unknown-fact"
    assert claim["field"] in decision.causes[0]


@pytest.mark.parametrize(
    ("proposal", "rule", "cause"),
    [
        (
            below_band(claims=[]),
            "discretion.claim.evidence-missing",
            "reason 'carrier-lost' needs the rationale to claim 'shipment.status' as evidence;"
            " add it to the rationale's claims",
        ),
        (
            below_band(text=f"Lost: {LOST_TEXT[21:39]}"),
            "discretion.judge.text-too-short",
            "reason 'carrier-lost' needs at least 30 characters of rationale text; it has 24",
        ),
        (
            below_band(text="The carrier lost the parcel, the customer told me on the phone."),
            "discretion.judge.text-missing-detail",
            "reason 'carrier-lost' needs the rationale text to give the tracking number",
        ),
    ],
    ids=["claim", "length", "detail"],
)
def test_missing_evidence_routes_with_its_rule(make_guard, proposal, rule, cause):
    decision = make_guard(lost_facts()).decide(proposal)
    assert decision.outcome is Outcome.ROUTE
    assert decision.required_role == "tier1"
    assert decision.rules == ["discretion.not-standard", "carrier-lost", rule]
    assert decision.causes == [cause]


@pytest.mark.parametrize(
    ("field", "value", "agrees"),
    [
        ("order.total", "120.00", True),
        ("order.total", 120, True),
        ("order.total", 120.0, True),
        ("order.total", "120.01", False),
        ("order.total", "a lot", False),
        ("incident.active", False, True),
        ("incident.active", "false", True),
        ("incident.active", " False ", True),
        ("incident.active", "true", False),
        ("incident.active", "no", False),
        ("incident.active", 0, False),
        ("customer.orders", 7, True),
        ("customer.orders", "7", True),
        ("customer.orders", True, False),
        ("shipment.status", " LOST ", True),
        ("shipment.status_at", "2026-11-20", True),
        ("shipment.status_at", "2026-11-20T12:00:00+00:00", True),
        ("shipment.status_at", "2026-11-20T13:00:00+01:00", True),
        ("shipment.status_at", "2026-11-20T12:00:00", False),
        ("shipment.status_at", "2026-11-21", False),
    ],
)
def test_claims_are_compared_by_the_facts_type(make_guard, field, value, agrees):
    claims = [{"field": "shipment.status", "value": "lost"}, {"field": field, "value": value}]
    decision = make_guard(lost_facts()).decide(below_band(claims=claims))
    expected = "discretion.claim.grounded" if agrees else "discretion.claim.contradicts-fact"
    assert decision.judge is not None
    assert decision.judge.claims[1].rule == expected
    assert decision.outcome is (Outcome.ALLOW_EXCEPTION if agrees else Outcome.ROUTE)


def test_route_goes_to_the_lowest_role_above_the_actor_that_covers_the_exception(make_guard):
    # tier2 may grant 125.00 itself, so a contradicted claim must climb above it: the manager.
    decision = make_guard(lost_facts()).decide(
        lost_refund(
            "125.00",
            role="tier2",
            actor="ann",
            claims=[{"field": "shipment.status", "value": "delivered"}],
        )
    )
    assert decision.outcome is Outcome.ROUTE
    assert decision.required_role == "manager"
    assert decision.reason == "carrier-lost"


@pytest.mark.parametrize(
    ("facts", "proposal", "outcome"),
    [
        (delivered_facts(), refund("40.00"), Outcome.ALLOW),
        (lost_facts(), lost_refund("60.00"), Outcome.ROUTE),
        (lost_facts(**{"customer.fraud_flag": True}), lost_refund("15.00"), Outcome.DENY),
    ],
    ids=["allow", "route", "deny"],
)
def test_judges_never_review_allow_route_or_deny(make_guard, facts, proposal, outcome):
    judge = StaticJudge(JUSTIFIED)
    contradicting = {
        **proposal,
        "rationale": {
            **proposal["rationale"],
            "claims": [{"field": "shipment.status", "value": "teleported"}],
        },
    }
    guard = make_guard(facts, judge=judge)
    decision = guard.decide(contradicting)
    assert decision.outcome is outcome
    assert decision.judge is None
    assert not any(rule.startswith("discretion.claim.") for rule in decision.rules)
    assert judge.requests == []


def test_a_judged_exception_records_nothing_outside_its_decision(make_guard, store):
    guard = make_guard(lost_facts())
    decision = guard.decide(below_band())
    records = list(store.export())
    assert [r["kind"] for r in records] == ["decision"]
    assert records[0]["body"]["decision"]["judge"]["llm"] == "not_asked"
    assert decision.decided_at == NOW


@pytest.mark.parametrize(
    ("claimed", "agrees"),
    [
        ("99.50", True),
        ("99.5", True),
        (99.5, True),
        (" 99.50 ", True),
        ("99.49", False),
        ("x", False),
    ],
)
def test_a_claim_of_a_decimal_fact_is_compared_as_a_number(claimed, agrees):
    # A decimal fact ("99.50", two places) is read as a Decimal: its claim states the number.
    assert _agrees(Decimal("99.50"), claimed) is agrees
