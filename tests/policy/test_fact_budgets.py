"""A budget kept per a fact's value: one goodwill cap per incident, across every customer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from discretion import Actor, Guard, Outcome, SqlStore, load_pack
from discretion.errors import PolicyError, StaleApproval

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

PACK = """
pack: outages
currency: USD
context:
  incident.id: {type: string, nullable: true}
roles:
  - id: ai_agent
    ai: true
    authority:
      sla_credit: {standard: "100.00"}
  - id: tier1
    authority:
      sla_credit: {standard: "1000.00"}
budgets:
  - id: budget.per-incident
    key: incident.id
    window: 30d
    limit: "50.00"
actions:
  sla_credit:
    tools:
      - name: apply_sla_credit
        amount: amount
        currency: currency
        customer: customer_id
    reads: [incident.id]
    standard:
      - id: sla.outage
        when: "true"
"""


INCIDENT_OF = {"c-1": "INC-1", "c-2": "INC-1", "c-3": "INC-2", "c-4": None}


class Incidents:
    """Each customer's open incident, as the case system knows it."""

    in_process = True

    def fetch(self, request: Any, /) -> dict[str, Any]:
        return {"incident.id": INCIDENT_OF[request.customer_id]}


def guard(tmp_path: Path, text: str = PACK) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    store = SqlStore(f"sqlite:///{tmp_path}/ledger.db")
    return Guard(load_pack(path), store=store, context=Incidents(), clock=lambda: NOW)


def credit(customer: str, amount: str, key: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent"},
        "tool": {
            "name": "apply_sla_credit",
            "arguments": {"amount": amount, "currency": "USD", "customer_id": customer},
        },
        "idempotency_key": key,
    }


def test_one_cap_per_incident_across_customers(tmp_path: Path) -> None:
    g = guard(tmp_path)
    first = g.decide(credit("c-1", "30.00", "a"))
    assert first.outcome is Outcome.ALLOW
    assert [(r.budget, r.key) for r in first.reservations] == [("budget.per-incident", "INC-1")]
    # Another customer of the same incident: 30.00 + 30.00 is over the incident's 50.00.
    second = g.decide(credit("c-2", "30.00", "b"))
    assert second.outcome is Outcome.ROUTE
    assert second.rules == ["sla.outage", "budget.per-incident"]
    # Another incident has its own cap.
    assert g.decide(credit("c-3", "30.00", "c")).outcome is Outcome.ALLOW


def test_a_decision_whose_fact_has_no_value_routes(tmp_path: Path) -> None:
    decision = guard(tmp_path).decide(credit("c-4", "10.00", "d"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["sla.outage", "budget.per-incident"]
    assert "budget 'budget.per-incident' is kept per incident.id, which has no value" in (
        decision.causes
    )


def test_a_deny_budget_whose_fact_has_no_value_routes_and_its_approval_waits(
    tmp_path: Path,
) -> None:
    # Not known to be spent: it is no denial ("the incident has had all its credits"), and
    # its approval cannot be given until it can be measured.
    text = PACK.replace('    limit: "50.00"\n', '    limit: "50.00"\n    on_exceed: deny\n')
    text = text.replace('    limit: "50.00"\n', '    limit: "50.00"\n    message: no credit left\n')
    g = guard(tmp_path, text)
    decision = g.decide(credit("c-4", "10.00", "d"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.required_role == "tier1"
    assert decision.rules == ["sla.outage", "budget.per-incident"]
    assert "no credit left" not in decision.causes
    assert "used up" not in decision.explanation
    tina = Actor(id="tina", role="tier1", is_ai=False)
    with pytest.raises(StaleApproval, match="cannot be measured now"):
        g.approvals.approve(decision.id, approver=tina, note="fine")
    # Measured and spent, it denies as before.
    g.decide(credit("c-1", "45.00", "e"))
    spent = g.decide(credit("c-2", "10.00", "f"))
    assert (spent.outcome, "no credit left" in spent.causes) == (Outcome.DENY, True)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "key: incident.id",
            "key: incident.start",
            "budget is kept per 'incident.start', which is not a string or int context field",
        ),
        (
            "reads: [incident.id]",
            "reads: []",
            "budget is kept per 'incident.id', which action 'sla_credit' does not read",
        ),
    ],
)
def test_a_budget_kept_per_a_fact_the_actions_cannot_key_is_refused(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK.replace(old, new), encoding="utf-8")
    with pytest.raises(PolicyError, match=message):
        load_pack(path)


def test_a_deny_budget_kept_per_an_argument_the_call_leaves_out_denies(tmp_path: Path) -> None:
    # The call never carries it, whoever approves: routed, no approval could ever be given.
    text = PACK.replace(
        "    key: incident.id\n", "    key: args.sku\n    on_exceed: deny\n"
    ).replace(
        "    reads: [incident.id]\n",
        "    reads: [incident.id]\n    args:\n      sku: {type: string, optional: true}\n",
    )
    decision = guard(tmp_path, text).decide(credit("c-1", "10.00", "g"))
    assert decision.outcome is Outcome.DENY
    assert decision.rules == ["sla.outage", "budget.per-incident"]
    assert "kept per an argument the call leaves out" in decision.explanation


def test_an_only_review_beside_a_deny_budget_that_cannot_be_measured_routes_to_the_review(
    tmp_path: Path,
) -> None:
    # The deny budget names no role to go beyond it: the review's role keeps the case (it
    # raised ValueError on an empty list of roles).
    text = PACK.replace(
        '    limit: "50.00"\n',
        '    limit: "50.00"\n    on_exceed: deny\n    outcomes: [allow, allow_exception, route]\n',
    ).replace(
        "    standard:\n      - id: sla.outage\n",
        "    reviews:\n"
        '      - {id: desk, when: "true", by: tier1, only: true}\n'
        "    standard:\n      - id: sla.outage\n",
    )
    decision = guard(tmp_path, text).decide(credit("c-4", "10.00", "h"))
    assert (decision.outcome, decision.required_role) == (Outcome.ROUTE, "tier1")
    assert "budget.per-incident" in decision.rules
