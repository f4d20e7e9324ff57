"""A budget that counts routes charges the approval when the route's reservation has aged out.

The route reserves its amount when it is decided; its approval then counts that reservation
instead of charging again. A route decided before the window the approval falls in left its
reservation behind: counting it still would let a person below the budget's `route_to` approve
past a spent budget, and leave the approved money counted in no window at all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import FakeClock
from discretion import Actor, Guard, Outcome, SqlStore, load_pack
from discretion.approvals import ApprovalStatus
from discretion.context import StaticContextProvider
from discretion.errors import ApprovalError

PACK = """
pack: daily-credits
currency: USD
entities:
  customer: {}
roles:
  - id: ai_agent
    ai: true
    authority:
      credit: {standard: "100.00"}
  - id: tier1
    authority:
      credit: {standard: "300.00"}
  - id: manager
    authority:
      credit: {standard: "2000.00"}
actions:
  credit:
    tools:
      - {name: issue_credit, amount: amount, customer: customer_id}
    standard:
      - id: credit.ok
budgets:
  - id: customer-daily
    key: customer
    window: calendar day
    limit: "150.00"
    outcomes: [allow, allow_exception, route]
    route_to: manager
"""

TINA = Actor(id="tina", role="tier1", is_ai=False)
MIA = Actor(id="mia", role="manager", is_ai=False)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 25, 23, 0, tzinfo=UTC))


@pytest.fixture
def guard(tmp_path: Path, store: SqlStore, clock: FakeClock) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    context = StaticContextProvider(customers={"C-1": {}})
    return Guard(load_pack(path), store=store, context=context, clock=clock)


def credit(amount: str, key: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
        "tool": {"name": "issue_credit", "arguments": {"amount": amount, "customer_id": "C-1"}},
        "idempotency_key": key,
    }


def test_an_approval_after_the_window_turned_is_charged_to_the_new_one(
    guard: Guard, clock: FakeClock
) -> None:
    routed = guard.decide(credit("140.00", "r1"))  # 23:00, reserved in the 25th's budget
    assert (routed.outcome, routed.required_role) == (Outcome.ROUTE, "tier1")

    clock.advance(hours=1, minutes=10)  # the 26th: a new day, the budget spent on its own
    assert guard.decide(credit("100.00", "a1")).outcome is Outcome.ALLOW
    assert guard.decide(credit("50.00", "a2")).outcome is Outcome.ALLOW

    clock.advance(minutes=20)
    with pytest.raises(ApprovalError, match="budget 'customer-daily' is used up; only 'manager'"):
        guard.approvals.approve(routed.id, approver=TINA, note="ok")
    assert guard.approvals.get(routed.id).status is ApprovalStatus.PENDING
    approved = guard.approvals.approve(routed.id, approver=MIA, note="beyond the cap, knowingly")
    assert approved.status is ApprovalStatus.APPROVED

    # The approval counts in the 26th's budget: the agent has nothing left today.
    clock.advance(minutes=10)
    later = guard.decide(credit("10.00", "a3"))
    assert (later.outcome, later.required_role) == (Outcome.ROUTE, "manager")
    assert "customer-daily" in later.rules


def test_an_approval_in_the_routes_own_window_is_not_charged_twice(
    guard: Guard, clock: FakeClock
) -> None:
    routed = guard.decide(credit("140.00", "r1"))
    clock.advance(minutes=30)  # still the 25th
    assert guard.approvals.approve(routed.id, approver=TINA, note="ok").status is (
        ApprovalStatus.APPROVED
    )
    # 140.00 reserved once: 10.00 is left today.
    assert guard.decide(credit("10.00", "a1")).outcome is Outcome.ALLOW
