"""Nullable record members: an item not yet delivered has no `delivered_at`, and is never
read as delivered at the epoch, nor its missing price as 0.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.context import StaticContextProvider
from discretion.errors import PolicyError
from discretion.evals import replay

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

PACK = """
pack: shop
currency: USD
records:
  carrier:
    fields: {name: string, tracking: string}
  item:
    fields:
      sku: string
      price: money
      delivered_at: {type: timestamp, nullable: true}
      held_for: {type: duration, nullable: true}
      discount: {type: money, nullable: true}
      gift_note: {type: string, nullable: true}
      quantity: {type: int, nullable: true}
      fragile: {type: bool, nullable: true}
      weight_kg: {type: decimal, places: 1, nullable: true}
      carrier: {type: carrier, nullable: true}
context:
  order.items: list[item]
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {standard: "100.00"}
  - id: tier1
    authority:
      refund: {standard: "1000.00"}
actions:
  refund:
    tools:
      - name: refund_item
        amount: amount
    args:
      sku: string
    reads: [order.items]
    standard:
      - id: delivered-within-30-days
        when: >-
          order.items.exists(i, i.sku == args.sku && has(i.delivered_at)
                                && now - i.delivered_at <= duration('720h'))
      - id: never-delivered
        when: order.items.exists(i, i.sku == args.sku && !has(i.delivered_at))
        max_amount: "5000"
"""

BASE: dict[str, Any] = {
    "sku": "lamp",
    "price": {"amount": "89.00", "currency": "USD"},
    "delivered_at": "2026-11-20T15:00:00+00:00",
    "held_for": 3600,
    "discount": {"amount": "5.00", "currency": "USD"},
    "gift_note": "for Ann",
    "quantity": 2,
    "fragile": True,
    "weight_kg": "1.5",
    "carrier": {"name": "ParcelCo", "tracking": "PC-1"},
}


def guard(tmp_path: Path, text: str = PACK, **item: Any) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    context = StaticContextProvider({"order.items": [{**BASE, **item}]})
    store = SqlStore(f"sqlite:///{tmp_path / 'ledger.db'}")
    return Guard(load_pack(path), store=store, context=context, clock=lambda: NOW)


def refund(amount: str = "40.00", key: str = "k") -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent"},
        "tool": {"name": "refund_item", "arguments": {"amount": amount, "sku": "lamp"}},
        "idempotency_key": key,
    }


def with_rule(when: str) -> str:
    return PACK.replace(
        "    standard:\n",
        f"    hard_limits:\n      - id: probe\n        when: {when}\n    standard:\n",
    )


def test_a_member_with_a_value_is_read_as_it(tmp_path: Path) -> None:
    decision = guard(tmp_path).decide(refund())
    assert (decision.outcome, decision.rules) == (Outcome.ALLOW, ["delivered-within-30-days"])


def test_a_null_member_is_absent_and_has_says_so(tmp_path: Path) -> None:
    g = guard(tmp_path, delivered_at=None)
    assert g.decide(refund("40.00")).rules == ["never-delivered"]
    # Left out entirely, it is the same.
    item = {k: v for k, v in BASE.items() if k != "delivered_at"}
    path = tmp_path / "other"
    path.mkdir()
    g2 = Guard(
        g.pack,
        store=SqlStore(f"sqlite:///{path / 'ledger.db'}"),
        context=StaticContextProvider({"order.items": [item]}),
        clock=lambda: NOW,
    )
    assert g2.decide(refund("40.00")).rules == ["never-delivered"]


@pytest.mark.parametrize(
    ("member", "use"),
    [
        # Never the epoch: a null timestamp compared, subtracted or read fails.
        ("delivered_at", "i.delivered_at < now"),
        ("delivered_at", "now - i.delivered_at > duration('720h')"),
        ("held_for", "i.held_for > duration('1h')"),
        # Never 0, false or "": a null scalar in arithmetic, order or a function fails.
        ("discount", "amount + i.discount > i.price"),
        ("quantity", "i.quantity > 1"),
        ("weight_kg", "i.weight_kg >= 10"),
        ("gift_note", "i.gift_note.startsWith('for')"),
        ("fragile", "i.fragile && amount > 1000"),
        # Nor an empty record.
        ("carrier", "i.carrier.name == ''"),
    ],
)
def test_a_rule_reading_a_null_member_cannot_be_decided_and_routes(
    tmp_path: Path, member: str, use: str
) -> None:
    text = with_rule(f'"order.items.exists(i, {use})"')
    decision = guard(tmp_path, text, **{member: None}).decide(refund())
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.evaluation-error"]


@pytest.mark.parametrize(
    ("use", "outcome"),
    [
        ("amount + i.discount > i.price", Outcome.ALLOW),  # 40 + 5 is not above 89
        ("amount + i.discount >= 4500", Outcome.DENY),
        ("i.quantity == 2 && i.fragile && i.weight_kg == 15", Outcome.DENY),
        ("i.gift_note.startsWith('for')", Outcome.DENY),
        ("i.carrier.name == 'ParcelCo'", Outcome.DENY),
        ("i.held_for == duration('1h')", Outcome.DENY),
    ],
)
def test_a_nullable_member_with_a_value_is_typed(
    tmp_path: Path, use: str, outcome: Outcome
) -> None:
    text = with_rule(f'"order.items.exists(i, {use})"')
    decision = guard(tmp_path, text).decide(refund())
    assert decision.outcome is outcome


def test_a_null_member_is_recorded_as_null_and_replays(tmp_path: Path) -> None:
    g = guard(tmp_path, delivered_at=None, carrier=None)
    decision = g.decide(refund())
    body = json.loads(g.store.history(decision.id)[0].body)
    recorded = body["context"]["order.items"][0]
    assert recorded["delivered_at"] is None
    assert recorded["carrier"] is None
    assert recorded["price"] == {"amount": "89.00", "currency": "USD"}
    report = replay(g.store, g.pack)
    assert (report.replayed, report.changes) == (1, ())


def test_a_required_member_left_null_routes_naming_it(tmp_path: Path) -> None:
    decision = guard(tmp_path, price=None).decide(refund())
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.context-unavailable"]
    assert "order.items[0].price is missing" in " ".join(decision.causes)


def test_a_list_member_cannot_be_nullable(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(
        PACK.replace(
            "      sku: string\n      price",
            "      sku: string\n      tags: {type: 'list[string]', nullable: true}\n      price",
        ),
        encoding="utf-8",
    )
    with pytest.raises(PolicyError, match="is a list and cannot be nullable") as raised:
        load_pack(path)
    assert raised.value.line is not None
