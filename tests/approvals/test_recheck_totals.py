"""An approval's re-check reads the ledger's totals without the case it approves.

A total counting routed cases that wait (`pending`, the default) held the very case being
approved: 350.00 asked on a 600.00 cap re-checked as 700.00, and a routed case whose rules read
such a total could never be approved past half its cap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from discretion import Actor, Guard, Outcome, SqlStore, load_pack
from discretion.approvals import ApprovalStatus
from discretion.context import StaticContextProvider
from discretion.errors import StaleApproval

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

PACK = """
pack: capped
currency: EUR
entities:
  order: {}
totals:
  order.paid_out: {type: money, actions: [compensate], per: order, window: 365d}
roles:
  - id: ai_agent
    ai: true
    authority:
      compensate: {standard: "100.00"}
  - id: consultant
    authority:
      compensate: {standard: "1000.00"}
actions:
  compensate:
    tools:
      - {name: compensate, amount: amount, currency: currency, order: order_id}
    reads: [order.paid_out]
    hard_limits:
      - id: cap
        when: amount + order.paid_out > 60000
    standard:
      - id: any
"""

LENA = Actor(id="lena", role="consultant", is_ai=False)


@pytest.fixture
def guard(tmp_path: Path, store: SqlStore) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    return Guard(
        load_pack(path),
        store=store,
        context=StaticContextProvider({"order.id": "o-1"}),
        clock=lambda: NOW,
    )


def ask(amount: str, key: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent"},
        "tool": {
            "name": "compensate",
            "arguments": {"amount": amount, "currency": "EUR", "order_id": "o-1"},
        },
        "idempotency_key": key,
    }


def test_the_case_approved_is_not_counted_against_itself(guard: Guard) -> None:
    routed = guard.decide(ask("350.00", "a"))
    assert routed.outcome is Outcome.ROUTE
    approved = guard.approvals.approve(routed.id, approver=LENA, note="delay confirmed")
    assert approved.status is ApprovalStatus.APPROVED


def test_other_cases_waiting_on_the_same_record_still_count(guard: Guard) -> None:
    first = guard.decide(ask("350.00", "a"))
    second = guard.decide(ask("200.00", "b"))
    assert second.outcome is Outcome.ROUTE  # 200 + 350 waiting is within 600
    guard.approvals.approve(first.id, approver=LENA, note="delay confirmed")
    # 350 approved and this case's own 200: within the cap.
    assert guard.approvals.approve(second.id, approver=LENA, note="ok").status is (
        ApprovalStatus.APPROVED
    )
    third = guard.decide(ask("60.00", "c"))
    assert third.outcome is Outcome.DENY
    assert third.rules == ["cap"]


def test_other_cases_waiting_count_in_the_re_check(guard: Guard, tmp_path: Path) -> None:
    first = guard.decide(ask("350.00", "a"))
    guard.decide(ask("200.00", "b"))
    # The cap is lowered to 500.00 before anyone approves: 350 and the 200 waiting are over it.
    path = tmp_path / "lower.yaml"
    path.write_text(PACK.replace("60000", "50000"), encoding="utf-8")
    lower = Guard(
        load_pack(path),
        store=guard.store,
        context=StaticContextProvider({"order.id": "o-1"}),
        clock=lambda: NOW,
    )
    with pytest.raises(StaleApproval, match="cap"):
        lower.approvals.approve(first.id, approver=LENA, note="delay confirmed")
