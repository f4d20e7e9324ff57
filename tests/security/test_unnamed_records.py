"""A fact of a record the proposal does not name is unknown, never absent.

An optional fact (`has(order.chargeback)`) of an order the agent leaves out was read as absent:
the agent chose the outcome by omitting an id, a deny turned into an allow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.context import StaticContextProvider

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

PACK = """
pack: unnamed
currency: USD
entities:
  customer: {}
  order: {belongs_to: [customer]}
  case: {belongs_to: [customer, order]}
records:
  chargeback:
    fields: {opened_at: timestamp}
context:
  customer.fraud_hold: bool
  order.chargeback: {type: chargeback, optional: true}
roles:
  - id: ai_agent
    ai: true
    authority: {refund: {standard: "100.00"}}
  - id: manager
    authority: {refund: {standard: "1000.00"}}
actions:
  refund:
    tools:
      - {name: refund_order, amount: amount, customer: customer_id, order: order_id, case: case_id}
    reads: [customer.fraud_hold, order.chargeback]
    hard_limits:
      - id: open-chargeback
        when: has(order.chargeback)
    standard:
      - id: no-chargeback
        when: "!has(order.chargeback)"
"""


def refund(**ids: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
        "tool": {"name": "refund_order", "arguments": {"amount": "40.00", **ids}},
    }


def test_an_optional_fact_of_an_order_left_out_is_unknown_not_absent(
    tmp_path: Path, store: SqlStore
) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    context = StaticContextProvider(
        customers={"C-1": {"customer.id": "C-1", "customer.fraud_hold": False}},
        orders={
            "O-1": {
                "order.customer_id": "C-1",
                "order.chargeback": {"opened_at": "2026-11-20T09:00:00+00:00"},
            },
            "O-2": {"order.customer_id": "C-1"},
        },
        cases={
            "K-1": {"case.customer_id": "C-1", "case.order_id": "O-1"},
            "K-2": {"case.customer_id": "C-1", "case.order_id": None},
        },
    )
    guard = Guard(load_pack(path), store=store, context=context, clock=lambda: NOW)

    named = guard.decide(refund(customer_id="C-1", order_id="O-1"))
    unnamed = guard.decide(refund(customer_id="C-1"))
    clean = guard.decide(refund(customer_id="C-1", order_id="O-2"))

    assert (named.outcome, named.rules) == (Outcome.DENY, ["open-chargeback"])
    # Leaving the order out does not make its chargeback go away: a person looks.
    assert (unnamed.outcome, unnamed.rules) == (Outcome.ROUTE, ["discretion.context-unavailable"])
    assert "names no order" in unnamed.causes[0]
    assert clean.outcome is Outcome.ALLOW
    # Through its case, the order is named; a case about no order has no order's facts.
    via_case = guard.decide(refund(customer_id="C-1", case_id="K-1"))
    no_order = guard.decide(refund(customer_id="C-1", case_id="K-2"))
    assert (via_case.outcome, via_case.rules) == (Outcome.DENY, ["open-chargeback"])
    assert (no_order.outcome, no_order.rules) == (Outcome.ALLOW, ["no-chargeback"])
