"""`currency` in CEL: the proposal's currency, for a rule such as "a credit in another currency
than the customer's bill is declined"."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.context import StaticContextProvider

PACK = """
pack: bills
currencies: [USD, CAD]
context:
  customer.billing_currency: string
roles:
  - id: ai_agent
    ai: true
    authority:
      credit: {standard: {USD: "50.00", CAD: "60.00"}}
  - id: rep
    authority:
      credit: {standard: {USD: "500.00", CAD: "600.00"}}
actions:
  credit:
    tools:
      - {name: credit, amount: amount, currency: currency}
    reads: [customer.billing_currency]
    hard_limits:
      - id: not-the-bills-currency
        when: currency != customer.billing_currency
    standard:
      - id: any
"""


def decide(tmp_path: Path, currency: str, billed: str) -> Any:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    guard = Guard(
        load_pack(path),
        store=SqlStore(f"sqlite:///{tmp_path}/ledger.db"),
        context=StaticContextProvider({"customer.billing_currency": billed}),
        clock=lambda: datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    )
    return guard.decide(
        {
            "actor": {"id": "bot", "role": "ai_agent"},
            "tool": {"name": "credit", "arguments": {"amount": "9.50", "currency": currency}},
        }
    )


@pytest.mark.parametrize(
    ("currency", "billed", "outcome"),
    [
        ("CAD", "CAD", Outcome.ALLOW),
        ("USD", "USD", Outcome.ALLOW),
        ("USD", "CAD", Outcome.DENY),
        ("CAD", "USD", Outcome.DENY),
    ],
)
def test_a_rule_reads_the_proposals_currency(
    tmp_path: Path, currency: str, billed: str, outcome: Outcome
) -> None:
    decision = decide(tmp_path, currency, billed)
    assert decision.outcome is outcome
    if outcome is Outcome.DENY:
        assert decision.rules == ["not-the-bills-currency"]
