"""A total kept across everyone (`per: organisation`): "at most three a day, across every
customer", whichever assistant asks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conftest import FakeClock
from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.context import StaticContextProvider

PACK = """
pack: long-time
currency: USD
entities:
  customer: {}
totals:
  org.long_time_today:
    type: int
    per: organisation
    window: calendar day
    reasons: [long-time-subscriber]
    outcomes: [allow_exception, pending, approved]
roles:
  - id: ai_agent
    ai: true
    authority:
      credit: {standard: "10.00", exception: "15.00"}
  - id: lead
    authority:
      credit: {standard: "100.00", exception: "100.00"}
actions:
  credit:
    tools:
      - {name: credit, amount: amount, customer: customer_id}
    reads: [org.long_time_today]
    standard:
      - id: small
        max_amount: "1000"
    exceptions:
      - id: long-time-subscriber
        when: org.long_time_today < 3
"""


def credit(n: int, bot: str) -> dict[str, Any]:
    return {
        "actor": {"id": bot, "role": "ai_agent"},
        "tool": {"name": "credit", "arguments": {"amount": "14.00", "customer_id": f"c-{n}"}},
        "rationale": {"reason": "long-time-subscriber"},
        "idempotency_key": f"k-{n}",
    }


def test_a_count_across_every_customer_and_assistant(tmp_path: Path, store: SqlStore) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    guard = Guard(
        load_pack(path),
        store=store,
        context=StaticContextProvider({"customer.id": "c"}),
        clock=FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC)),
    )
    bots = ["bot-a", "bot-b", "bot-a"]
    for n, bot in enumerate(bots):
        assert guard.decide(credit(n, bot)).outcome is Outcome.ALLOW_EXCEPTION
    # The fourth of the day, another customer and another assistant: no longer.
    fourth = guard.decide(credit(3, "bot-c"))
    assert fourth.outcome is not Outcome.ALLOW_EXCEPTION
    assert "long-time-subscriber" in fourth.rules
