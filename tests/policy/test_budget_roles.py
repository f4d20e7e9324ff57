"""Budgets counting only some roles' proposals (`roles:`): the AI's daily budget across every
customer, which what people grant does not use up."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import FakeClock
from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.context import StaticContextProvider
from discretion.errors import PolicyError

PACK = """
pack: ai-daily
currency: USD
entities:
  customer: {}
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {standard: "100.00"}
  - id: team_lead
    authority:
      refund: {standard: "500.00"}
  - id: ops_manager
    authority:
      refund: {standard: "5000.00"}
budgets:
  - id: ai-daily
    key: organisation
    roles: [ai_agent]
    window: calendar day
    limit: "100.00"
actions:
  refund:
    tools:
      - name: refund
        amount: amount
        customer: customer_id
    standard:
      - id: refund.ok
"""


def guard(tmp_path: Path, text: str = PACK) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    return Guard(
        load_pack(path),
        store=SqlStore(f"sqlite:///{tmp_path}/ledger.db"),
        context=StaticContextProvider({"customer.id": "c-1"}),
        clock=FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC)),
    )


def refund(amount: str, key: str, *, role: str = "ai_agent", customer: str = "c-1") -> Any:
    return {
        "actor": {"id": f"{role}-1", "role": role, "is_ai": role == "ai_agent"},
        "tool": {"name": "refund", "arguments": {"amount": amount, "customer_id": customer}},
        "idempotency_key": key,
    }


def test_what_people_grant_does_not_use_up_the_ais_budget(tmp_path: Path) -> None:
    g = guard(tmp_path)
    lead = g.decide(refund("400.00", "lead", role="team_lead"))
    assert lead.outcome is Outcome.ALLOW
    assert lead.reservations == []
    # The AI's first 100.00 of the day, across customers, is its own.
    assert g.decide(refund("60.00", "ai-1")).outcome is Outcome.ALLOW
    second = g.decide(refund("40.00", "ai-2", customer="c-2"))
    assert second.outcome is Outcome.ALLOW
    assert [r.budget for r in second.reservations] == ["ai-daily"]
    over = g.decide(refund("0.01", "ai-3", customer="c-3"))
    assert over.outcome is Outcome.ROUTE
    assert over.rules[-1] == "ai-daily"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("roles: [ai_agent]", "roles: [bot]"),
        ('limit: "100.00"', 'limit: "100.00"\n    limits: {team_lead: "50.00"}'),
    ],
)
def test_a_budgets_roles_must_be_the_packs_and_cover_its_limits(
    tmp_path: Path, change: str, message: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        guard(tmp_path, PACK.replace(change, message))
    text = str(caught.value)
    assert "ai-daily" in text
    assert ("role 'bot', which the pack does not define" in text) or (
        "role 'team_lead', whose proposals it does not count" in text
    )


def test_a_budget_whose_every_role_has_a_limit_needs_no_other(tmp_path: Path) -> None:
    text = PACK.replace(
        '    roles: [ai_agent]\n    window: calendar day\n    limit: "100.00"\n',
        "    roles: [ai_agent, team_lead]\n    window: calendar day\n"
        '    limits: {ai_agent: "100.00", team_lead: "450.00"}\n',
    )
    g = guard(tmp_path, text)
    assert g.decide(refund("100.00", "ai-1")).outcome is Outcome.ALLOW
    assert g.decide(refund("0.01", "ai-2")).outcome is Outcome.ROUTE
    # The budget counts both roles' grants; a team lead's proposal is capped at 450.00 of it.
    assert g.decide(refund("350.00", "lead-1", role="team_lead")).outcome is Outcome.ALLOW
    assert g.decide(refund("0.01", "lead-2", role="team_lead")).outcome is Outcome.ROUTE


@pytest.mark.parametrize(
    ("roles", "limits", "uncapped"),
    [
        ("    roles: [ai_agent, team_lead]\n", '{ai_agent: "100.00"}', "team_lead"),
        ("", '{ai_agent: "100.00"}', "team_lead, ops_manager"),
    ],
)
def test_a_budget_without_a_limit_must_cap_every_role_it_counts(
    tmp_path: Path, roles: str, limits: str, uncapped: str
) -> None:
    text = PACK.replace(
        '    roles: [ai_agent]\n    window: calendar day\n    limit: "100.00"\n',
        f"{roles}    window: calendar day\n    limits: {limits}\n",
    )
    with pytest.raises(PolicyError, match="limit: required unless `roles`") as caught:
        guard(tmp_path, text)
    assert f"(no limit for: {uncapped})" in str(caught.value)


def test_a_budget_counting_every_role_needs_no_limit_when_each_has_one(tmp_path: Path) -> None:
    text = PACK.replace(
        '    roles: [ai_agent]\n    window: calendar day\n    limit: "100.00"\n',
        "    window: calendar day\n"
        '    limits: {ai_agent: "100.00", team_lead: "450.00", ops_manager: "900.00"}\n',
    )
    g = guard(tmp_path, text)
    assert g.decide(refund("100.00", "ai-1")).outcome is Outcome.ALLOW
    assert g.decide(refund("0.01", "ai-2")).outcome is Outcome.ROUTE
