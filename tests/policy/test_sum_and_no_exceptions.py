"""`sum()` over a list of ints in a rule, and an action that permits no exceptions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import FakeClock
from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.context import StaticContextProvider

PACK = """
pack: credits
currency: USD
records:
  outage:
    fields:
      minutes: int
context:
  account.outages: list[outage]
  account.fee: money
roles:
  - id: ai_agent
    ai: true
    authority:
      sla_credit: {standard: "500.00"}
  - id: lead
    authority:
      sla_credit: {standard: "5000.00"}
actions:
  sla_credit:
    tools:
      - name: sla_credit
        amount: amount
    reads: [account.outages, account.fee]
    standard:
      # 10% of the fee for each full hour of downtime this month, across every outage.
      - id: sla.per-hour
        when: sum(account.outages.map(o, o.minutes)) >= 60
        max_amount: account.fee * (sum(account.outages.map(o, o.minutes)) / 60) / 10
"""


def decide(tmp_path: Path, amount: str, outages: list[int]) -> Any:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    guard = Guard(
        load_pack(path),
        store=SqlStore(f"sqlite:///{tmp_path}/ledger.db"),
        context=StaticContextProvider(
            {
                "account.outages": [{"minutes": m} for m in outages],
                "account.fee": {"amount": "300.00", "currency": "USD"},
            }
        ),
        clock=FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC)),
    )
    return guard.decide(
        {
            "actor": {"id": "bot", "role": "ai_agent"},
            "tool": {"name": "sla_credit", "arguments": {"amount": amount}},
        }
    )


@pytest.mark.parametrize(
    ("amount", "outages", "outcome"),
    [
        # 40 + 50 + 35 minutes: two full hours, so 20% of 300.00.
        ("60.00", [40, 50, 35], Outcome.ALLOW),
        ("60.01", [40, 50, 35], Outcome.DENY),
        # 59 minutes in all: no full hour.
        ("1.00", [30, 29], Outcome.DENY),
        ("1.00", [], Outcome.DENY),
    ],
)
def test_a_rule_adds_up_a_list_with_sum(
    tmp_path: Path, amount: str, outages: list[int], outcome: Outcome
) -> None:
    assert decide(tmp_path, amount, outages).outcome is outcome


def test_an_action_without_exceptions_does_not_ask_for_a_reason(tmp_path: Path) -> None:
    """Outside its standard rules such an action is denied as having no exceptions; the agent is
    not told to cite a reason that does not exist."""
    denied = decide(tmp_path, "60.01", [40, 50, 35])
    assert denied.rules == ["discretion.not-standard", "discretion.no-exceptions"]
    assert "permits no exceptions" in denied.explanation
    assert "cite a reason" not in denied.explanation


def test_a_sum_beyond_64_bit_ints_cannot_be_decided_and_routes(tmp_path: Path) -> None:
    routed = decide(tmp_path, "1.00", [2**62, 2**62])
    assert routed.outcome is Outcome.ROUTE
    assert "discretion.evaluation-error" in routed.rules
