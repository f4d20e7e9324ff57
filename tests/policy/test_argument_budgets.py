"""Budgets kept per a tool argument and per combinations: one cap per item of each order."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from discretion import Actor, Guard, Outcome, SqlStore, load_pack
from discretion.approvals import ApprovalStatus
from discretion.context import StaticContextProvider
from discretion.errors import PolicyError
from discretion.store._schema import reservations

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

PACK = """
pack: market
currency: USD
context:
  customer.id: string
  order.id: string
  order.customer_id: string
entities:
  customer: {}
  order: {belongs_to: [customer]}
roles:
  - id: ai_agent
    ai: true
    authority:
      refund_item: {standard: "100.00"}
  - id: tier1
    authority:
      refund_item: {standard: "1000.00"}
budgets:
  # One item of an order is refunded at most 40.00 in all, however many calls ask.
  - id: budget.per-item
    key: [order, args.sku]
    window: 365d
    limit: "40.00"
actions:
  refund_item:
    tools:
      - name: refund_item
        amount: amount
        customer: customer_id
        order: order_id
    args:
      sku: string
    standard:
      - id: item-return
        when: "true"
"""

ORDERS = {"o-1": "c-1", "o-2": "c-1"}


class Orders:
    """The order system: each order is the customer's."""

    in_process = True

    def fetch(self, request: Any, /) -> dict[str, Any]:
        facts: dict[str, Any] = {"customer.id": request.customer_id}
        if request.order_id is not None:
            facts |= {"order.id": request.order_id, "order.customer_id": ORDERS[request.order_id]}
        return facts


def guard(tmp_path: Path, text: str = PACK) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    store = SqlStore(f"sqlite:///{tmp_path}/ledger.db")
    return Guard(load_pack(path), store=store, context=Orders(), clock=lambda: NOW)


def refund(order: str, sku: str, amount: str, key: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent"},
        "tool": {
            "name": "refund_item",
            "arguments": {"amount": amount, "customer_id": "c-1", "order_id": order, "sku": sku},
        },
        "idempotency_key": key,
    }


def test_one_cap_per_item_of_each_order(tmp_path: Path) -> None:
    g = guard(tmp_path)
    first = g.decide(refund("o-1", "SKU-9", "30.00", "a"))
    assert first.outcome is Outcome.ALLOW
    assert [(r.budget, r.key) for r in first.reservations] == [
        ("budget.per-item", '["o-1","SKU-9"]')
    ]
    # The same item again: 30.00 + 30.00 is over its 40.00, though each call is under it.
    again = g.decide(refund("o-1", "SKU-9", "30.00", "b"))
    assert again.outcome is Outcome.ROUTE
    assert again.rules == ["item-return", "budget.per-item"]
    # Another item of the order, and the same item on another order, have their own caps.
    assert g.decide(refund("o-1", "SKU-7", "30.00", "c")).outcome is Outcome.ALLOW
    assert g.decide(refund("o-2", "SKU-9", "30.00", "d")).outcome is Outcome.ALLOW


def test_values_that_join_alike_are_different_keys(tmp_path: Path) -> None:
    text = PACK.replace("key: [order, args.sku]", "key: [args.sku, args.lot]").replace(
        "      sku: string\n", "      sku: string\n      lot: string\n"
    )
    g = guard(tmp_path, text)

    def call(sku: str, lot: str, key: str) -> dict[str, Any]:
        proposal = refund("o-1", sku, "30.00", key)
        proposal["tool"]["arguments"]["lot"] = lot
        return proposal

    assert g.decide(call("a,b", "c", "1")).outcome is Outcome.ALLOW
    # "a" and "b,c" would read "a,b,c" joined by commas, as "a,b" and "c" do: not here.
    assert g.decide(call("a", "b,c", "2")).outcome is Outcome.ALLOW
    assert g.decide(call("a,b", "c", "3")).outcome is Outcome.ROUTE


def test_a_key_longer_than_a_reservation_holds_is_kept_by_its_hash(tmp_path: Path) -> None:
    g = guard(tmp_path)
    sku = "S" * 250
    first = g.decide(refund("o-1", sku, "30.00", "a"))
    expected = "sha256:" + hashlib.sha256(f'["o-1","{sku}"]'.encode()).hexdigest()
    assert [r.key for r in first.reservations] == [expected]
    assert g.decide(refund("o-1", sku, "30.00", "b")).outcome is Outcome.ROUTE


def test_an_approval_reserves_under_the_same_key(tmp_path: Path) -> None:
    g = guard(tmp_path)
    assert g.decide(refund("o-1", "SKU-9", "30.00", "a")).outcome is Outcome.ALLOW
    over = g.decide(refund("o-1", "SKU-9", "30.00", "b"))
    assert (over.outcome, over.required_role) == (Outcome.ROUTE, "tier1")
    # The budget routes to tier1, who may grant past it: the approval reserves the amount
    # under the item's key, where the next call on the item finds it.
    tina = Actor(id="tina", role="tier1", is_ai=False)
    approved = g.approvals.approve(over.id, approver=tina, note="damaged in two places")
    assert approved.status is ApprovalStatus.APPROVED
    with g.store.engine.connect() as connection:
        held = connection.execute(
            select(reservations.c.budget_key, reservations.c.amount_minor).where(
                reservations.c.decision_id == over.id
            )
        ).all()
    assert held == [('["o-1","SKU-9"]', 3000)]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "key: [order, args.sku]",
            "key: [order, args.colour]",
            "budget is kept per 'args.colour', which action 'refund_item' does not declare as a"
            " string or int argument",
        ),
        (
            "      sku: string\n",
            "      sku: money\n",
            "budget is kept per 'args.sku', which action 'refund_item' does not declare as a"
            " string or int argument",
        ),
        (
            "key: [order, args.sku]",
            "key: [organisation, args.sku]",
            "budget key combines organisation with other parts",
        ),
        ("key: [order, args.sku]", "key: [order, order]", "names a part twice"),
        ("key: [order, args.sku]", "key: []", "key"),
    ],
)
def test_a_budget_key_the_actions_cannot_give_is_refused(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK.replace(old, new), encoding="utf-8")
    with pytest.raises(PolicyError, match=message) as raised:
        load_pack(path)
    assert raised.value.line is not None


def test_a_single_argument_key_is_its_value(tmp_path: Path) -> None:
    g = guard(tmp_path, PACK.replace("key: [order, args.sku]", "key: args.sku"))
    first = g.decide(refund("o-1", "SKU-9", "30.00", "a"))
    assert [r.key for r in first.reservations] == ["SKU-9"]
    # Across orders now: one cap per SKU.
    assert g.decide(refund("o-2", "SKU-9", "30.00", "b")).outcome is Outcome.ROUTE


def test_static_context_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    context = StaticContextProvider(
        {"customer.id": "c-1", "order.id": "o-1", "order.customer_id": "c-1"}
    )
    g = Guard(load_pack(path), context=context, clock=lambda: NOW)
    assert g.decide(refund("o-1", "SKU-9", "40.00", "a")).outcome is Outcome.ALLOW
    assert g.decide(refund("o-1", "SKU-9", "0.01", "b")).outcome is Outcome.ROUTE
