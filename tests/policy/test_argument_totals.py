"""Totals kept per a tool argument: what was refunded on this item of the order, not the order."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.context import StaticContextProvider
from discretion.errors import LedgerIntegrityError, PolicyError
from discretion.store._schema import decisions

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

PACK = """
pack: market
currency: USD
records:
  item:
    fields: {sku: string, price: money}
context:
  customer.id: string
  order.id: string
  order.customer_id: string
  order.items: list[item]
entities:
  customer: {}
  order: {belongs_to: [customer]}
totals:
  order.item_refunded:
    actions: [refund_item]
    per: order
    args: [sku]
    window: 365d
roles:
  - id: ai_agent
    ai: true
    authority:
      refund_item: {standard: "50.00"}
  - id: tier1
    authority:
      refund_item: {standard: "1000.00"}
actions:
  refund_item:
    tools:
      - name: refund_item
        amount: amount
        customer: customer_id
        order: order_id
    args:
      sku: string
    reads: [order.items, order.item_refunded]
    hard_limits:
      # Each call is within the item's price; together they must be too.
      - id: above-item-price
        when: >-
          order.items.exists(i, i.sku == args.sku
                                && amount + order.item_refunded > i.price)
    standard:
      - id: item-return
        when: order.items.exists(i, i.sku == args.sku)
"""

ITEMS = [
    {"sku": "SKU-9", "price": {"amount": "40.00", "currency": "USD"}},
    {"sku": "SKU-7", "price": {"amount": "90.00", "currency": "USD"}},
]


class Orders:
    """The order system: two orders of one customer, with the same items."""

    in_process = True

    def fetch(self, request: Any, /) -> dict[str, Any]:
        return {
            "customer.id": request.customer_id,
            "order.id": request.order_id,
            "order.customer_id": "c-1",
            "order.items": ITEMS,
        }


def guard(store: SqlStore, tmp_path: Path, text: str = PACK) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
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


def test_one_item_is_never_refunded_past_its_price_in_pieces(store, tmp_path: Path) -> None:
    g = guard(store, tmp_path)
    first = g.decide(refund("o-1", "SKU-9", "30.00", "a"))
    assert (first.outcome, first.rules) == (Outcome.ALLOW, ["item-return"])
    # Each call is under the item's 40.00; the second would make 60.00 on it.
    again = g.decide(refund("o-1", "SKU-9", "30.00", "b"))
    assert (again.outcome, again.rules) == (Outcome.DENY, ["above-item-price"])
    # What is left of it is still allowed; another item and another order count apart.
    assert g.decide(refund("o-1", "SKU-9", "10.00", "c")).outcome is Outcome.ALLOW
    assert g.decide(refund("o-1", "SKU-7", "30.00", "d")).outcome is Outcome.ALLOW
    assert g.decide(refund("o-2", "SKU-9", "30.00", "e")).outcome is Outcome.ALLOW
    assert store.verify() > 0


def test_a_pending_case_on_the_item_counts(store, tmp_path: Path) -> None:
    g = guard(store, tmp_path)
    # Over the AI's standard 50.00: routed, and pending on the item.
    routed = g.decide(refund("o-1", "SKU-7", "60.00", "a"))
    assert (routed.outcome, routed.required_role) == (Outcome.ROUTE, "tier1")
    denied = g.decide(refund("o-1", "SKU-7", "40.00", "b"))
    assert (denied.outcome, denied.rules) == (Outcome.DENY, ["above-item-price"])


def test_the_record_holds_the_keys_and_the_total_read(store, tmp_path: Path) -> None:
    g = guard(store, tmp_path)
    g.decide(refund("o-1", "SKU-9", "30.00", "a"))
    second = g.decide(refund("o-1", "SKU-9", "5.00", "b"))
    body = json.loads(store.history(second.id)[0].body)
    assert body["keys"] == {"sku": "SKU-9"}
    assert body["context"]["order.item_refunded"] == {"amount": "30.00", "currency": "USD"}


def test_a_decision_no_total_keys_records_no_keys(store, tmp_path: Path) -> None:
    text = PACK.replace("    args: [sku]\n", "")
    g = guard(store, tmp_path, text)
    decision = g.decide(refund("o-1", "SKU-9", "30.00", "a"))
    assert "keys" not in json.loads(store.history(decision.id)[0].body)


def test_an_edited_key_column_is_found(store, tmp_path: Path) -> None:
    g = guard(store, tmp_path)
    decision = g.decide(refund("o-1", "SKU-9", "40.00", "a"))
    # Moving the refund to another item would let the item be refunded again: found.
    with store.engine.begin() as connection:
        connection.execute(
            update(decisions)
            .where(decisions.c.id == decision.id)
            .values(arg_keys='{"sku":"SKU-0"}')
        )
    with pytest.raises(LedgerIntegrityError, match="arg_keys"):
        store.verify()


def test_a_total_kept_per_an_argument_an_action_lacks_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK.replace("args: [sku]", "args: [colour]"), encoding="utf-8")
    with pytest.raises(PolicyError, match="kept per argument 'colour'") as raised:
        load_pack(path)
    assert raised.value.line == 19  # the total's args


def test_static_context_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    context = StaticContextProvider(
        {"customer.id": "c-1", "order.id": "o-1", "order.customer_id": "c-1", "order.items": ITEMS}
    )
    g = Guard(load_pack(path), context=context, clock=lambda: NOW)
    assert g.decide(refund("o-1", "SKU-9", "40.00", "a")).outcome is Outcome.ALLOW
    assert g.decide(refund("o-1", "SKU-9", "0.01", "b")).outcome is Outcome.DENY


def test_a_call_without_the_argument_leaves_the_total_without_a_value(
    store, tmp_path: Path
) -> None:
    g = guard(
        store,
        tmp_path,
        PACK.replace("      sku: string\n", "      sku: {type: string, optional: true}\n"),
    )
    proposal = refund("o-1", "SKU-9", "30.00", "a")
    del proposal["tool"]["arguments"]["sku"]
    decision = g.decide(proposal)
    assert (decision.outcome, decision.rules) == (Outcome.ROUTE, ["discretion.evaluation-error"])
    assert "has no value, so it cannot be decided" in decision.causes[0]
