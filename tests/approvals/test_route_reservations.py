"""A budget that counts routes counts an approved case from when its money moved.

The route reserves its amount when it is decided. Its approval took that reservation as its
own, dated when the case was asked: a route decided before the window the approval falls in
left the approved money counted in no window at all (and a person below the budget's
`route_to` approved past a spent budget), and in a rolling window the money lapsed a window
after it was asked, not after it moved. The approval is charged at its own time now, and the
route's reservation released as of the route's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import FakeClock
from discretion import Actor, Guard, Money, Outcome, SqlStore, load_pack
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


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


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
    assert guard.store.verify() > 0


ROLLING = PACK.replace("window: calendar day", "window: 24h")


def test_in_a_rolling_window_an_approval_counts_a_window_after_it_was_approved(
    tmp_path: Path, store: SqlStore, clock: FakeClock
) -> None:
    path = tmp_path / "rolling.yaml"
    path.write_text(ROLLING, encoding="utf-8")
    context = StaticContextProvider(customers={"C-1": {}})
    guard = Guard(load_pack(path), store=store, context=context, clock=clock)
    routed = guard.decide(credit("140.00", "r1"))
    assert routed.outcome is Outcome.ROUTE
    clock.advance(hours=23, minutes=50)
    approved = guard.approvals.approve(routed.id, approver=TINA, note="ok", amount=usd("120.00"))
    assert approved.status is ApprovalStatus.APPROVED
    # A quarter of an hour later the route is a day old, but the 120.00 moved 15 minutes ago:
    # 30.00 is left of the 150.00, not the whole cap.
    clock.advance(minutes=15)
    assert guard.decide(credit("30.00", "a1")).outcome is Outcome.ALLOW
    over = guard.decide(credit("0.01", "a2"))
    assert (over.outcome, over.required_role) == (Outcome.ROUTE, "manager")
    assert guard.store.verify() > 0
