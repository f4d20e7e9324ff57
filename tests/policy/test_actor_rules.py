"""Rules that read the actor: what they let a person do, the actor's case routes to them for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import NOW, Counter, FakeClock
from discretion import Actor, Guard, Outcome, SqlStore, load_pack
from discretion.context import StaticContextProvider

PACK = Path(__file__).resolve().parent.parent / "packs" / "actor_rules.yaml"
PAID = {"amount": "200.00", "currency": "USD"}


def guard(store: SqlStore, late: bool, paid: dict[str, str] = PAID) -> Guard:
    facts = StaticContextProvider({"order.total": paid, "case.late_report": late})
    return Guard(load_pack(PACK), store=store, context=facts, clock=FakeClock(NOW), ids=Counter())


def refund(amount: str, reason: str | None = None, key: str = "k") -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
        "tool": {"name": "issue_refund", "arguments": {"amount": amount, "currency": "USD"}},
        "rationale": {"reason": reason, "text": "reported late"},
        "idempotency_key": key,
    }


def test_a_reason_capped_at_nothing_for_the_ai_routes_to_a_person(store: SqlStore) -> None:
    """`max_amount: actor.is_ai ? 0 : ...` denied the AI's case: no reason applied for it,
    though any person could grant it."""
    g = guard(store, late=True)

    decision = g.decide(refund("50.00", reason="late-report"))

    assert (decision.outcome, decision.required_role) == (Outcome.ROUTE, "tier1")
    assert decision.rules == ["discretion.not-standard", "late-report", "discretion.exception-role"]
    tina = Actor(id="tina", role="tier1", is_ai=False)
    approved = g.approvals.approve(decision.id, approver=tina, note="reported on time by phone")
    assert approved.status.value == "approved"


def test_a_standard_rule_only_people_may_use_routes_the_ais_case(store: SqlStore) -> None:
    decision = guard(store, late=False).decide(refund("150.00"))

    assert (decision.outcome, decision.required_role) == (Outcome.ROUTE, "tier1")
    assert decision.rules == ["refund.people-only", "discretion.standard-role"]


def test_the_lowest_person_whose_authority_covers_it_is_the_one(store: SqlStore) -> None:
    # 400.00 is above tier1's 300.00: the lead's.
    g = guard(store, late=True, paid={"amount": "900.00", "currency": "USD"})

    decision = g.decide(refund("400.00", "late-report", key="late"))

    assert (decision.outcome, decision.required_role) == (Outcome.ROUTE, "lead")


@pytest.mark.parametrize("late", [True, False])
def test_a_hard_limit_on_the_ai_still_denies(store: SqlStore, late: bool) -> None:
    decision = guard(store, late=late).decide(refund("250.00", reason="late-report"))

    assert (decision.outcome, decision.rules) == (Outcome.DENY, ["refund.ai-never-above-paid"])


def test_what_no_person_may_grant_either_is_still_denied(store: SqlStore) -> None:
    g = guard(store, late=True)
    person = {"id": "tina", "role": "tier1", "is_ai": False}

    decision = g.decide({**refund("250.00", reason="late-report"), "actor": person})

    assert decision.outcome is Outcome.DENY
    assert "discretion.no-permitted-reason" in decision.rules
