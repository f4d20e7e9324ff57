"""Totals, cumulative authority and budgets key a record by its own id, not the agent's spelling.

A system of record that matches ids loosely (a case-insensitive column, most REST APIs) answers
order `A-1` for `a-1`. Keyed by what the agent typed, each spelling started a fresh total.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from discretion import Actor, Guard, Outcome, SqlStore, load_pack
from discretion.context import ContextRequest

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

PACK = """
pack: spelled
currency: USD
entities:
  customer: {}
  order: {belongs_to: [customer]}
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {standard: "200.00"}
  - id: tier1
    authority:
      refund: {standard: "1000.00"}
actions:
  refund:
    cumulative: {per: order, window: 365d}
    tools:
      - {name: issue_refund, amount: amount, currency: currency, order: order_id}
    standard:
      - id: any
budgets:
  - id: per-customer
    key: customer
    window: 30d
    limit: "300.00"
"""


class Loose:
    """A case system whose ids match whatever their case, width or spaces."""

    in_process = True

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        order = request.order_id or ""
        if "".join(unicodedata.normalize("NFKC", order).casefold().split()) != "a-1":
            return {"order.id": None}
        return {"order.id": "A-1", "order.customer_id": "C-1", "customer.id": "C-1"}


def ask(order: str, amount: str, key: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
        "tool": {
            "name": "issue_refund",
            "arguments": {"amount": amount, "currency": "USD", "order_id": order},
        },
        "idempotency_key": key,
    }


def test_two_spellings_of_one_order_share_its_totals(tmp_path: Path, store: SqlStore) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    guard = Guard(load_pack(path), store=store, context=Loose(), clock=lambda: NOW)

    first = guard.decide(ask("A-1", "120.00", "a"))
    second = guard.decide(ask("a-1", "120.00", "b"))
    third = guard.decide(ask(" \uff21-1 ", "120.00", "c"))  # a full-width A, padded

    assert first.outcome is Outcome.ALLOW
    # 120.00 + 120.00 on the one order: above the AI's 200.00, as the whole is.
    assert (second.outcome, second.required_role) == (Outcome.ROUTE, "tier1")
    assert "discretion.cumulative-authority" in second.rules
    assert third.outcome is Outcome.ROUTE
    assert {d.entities.get("order") for d in (first, second, third)} == {"A-1"}


class Accentless:
    """A case system matching ids on their letters and digits, accents aside (`*_ai_ci`)."""

    in_process = True

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        order = unicodedata.normalize("NFKD", request.order_id or "")
        if "".join(c for c in order if c.isalnum()).casefold() != "a1":
            return {"order.id": None}
        return {"order.id": "A-1", "order.customer_id": "C-1", "customer.id": "C-1"}


def test_an_accented_spelling_of_one_order_shares_its_totals(
    tmp_path: Path, store: SqlStore
) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    guard = Guard(load_pack(path), store=store, context=Accentless(), clock=lambda: NOW)

    first = guard.decide(ask("A-1", "120.00", "a"))
    spelt = [guard.decide(ask(order, "120.00", order)) for order in ("\u00c1-1", "\u00c01")]

    assert first.outcome is Outcome.ALLOW
    # Each accent is the same order to the case system, and so to its totals.
    assert [(d.outcome, d.required_role) for d in spelt] == [(Outcome.ROUTE, "tier1")] * 2
    assert {d.entities.get("order") for d in (first, *spelt)} == {"A-1"}


class IntegerKeys:
    """A case system whose order ids are integers: `01001` is order 1001."""

    in_process = True

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        order = request.order_id or ""
        if not order.isdigit() or int(order) != 1001:
            return {"order.id": None}
        return {"order.id": "1001", "order.customer_id": "C-1", "customer.id": "C-1"}


def test_leading_zeros_of_an_integer_key_are_one_order(tmp_path: Path, store: SqlStore) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    guard = Guard(load_pack(path), store=store, context=IntegerKeys(), clock=lambda: NOW)

    first = guard.decide(ask("1001", "120.00", "a"))
    padded = guard.decide(ask("01001", "120.00", "b"))

    assert first.outcome is Outcome.ALLOW
    assert (padded.outcome, padded.required_role) == (Outcome.ROUTE, "tier1")
    assert padded.entities.get("order") == "1001"


class Aliases:
    """A case system that also finds an order by its alias (`order-50003` is `A-50003`)."""

    in_process = True

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        if request.order_id not in ("A-1", "order-1", "\u0661"):
            return {"order.id": None}
        return {"order.id": "A-1", "order.customer_id": "C-1", "customer.id": "C-1"}


def test_any_id_the_case_system_finds_a_record_by_is_keyed_under_the_records_own(
    tmp_path: Path, store: SqlStore
) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    guard = Guard(load_pack(path), store=store, context=Aliases(), clock=lambda: NOW)

    first = guard.decide(ask("A-1", "120.00", "a"))
    aliased = [guard.decide(ask(order, "120.00", order)) for order in ("order-1", "\u0661")]

    assert first.outcome is Outcome.ALLOW
    assert [(d.outcome, d.required_role) for d in aliased] == [(Outcome.ROUTE, "tier1")] * 2
    assert {d.entities.get("order") for d in (first, *aliased)} == {"A-1"}


TIER1 = Actor(id="tina", role="tier1", is_ai=False)


def test_the_tool_runs_with_the_records_own_id_not_the_spelling_typed(
    tmp_path: Path, store: SqlStore
) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    guard = Guard(load_pack(path), store=store, context=Aliases(), clock=lambda: NOW)
    ran: list[str] = []

    @guard.governed(actor={"id": "bot", "role": "ai_agent", "is_ai": True})
    def issue_refund(amount: str, currency: str, order_id: str) -> str:
        ran.append(order_id)
        return f"refunded {amount} on {order_id}"

    # The case system found order A-1 for its alias; a payment system may not, or may find
    # another order by it: the tool is given the order that was decided.
    assert issue_refund("50.00", "USD", "order-1") == "refunded 50.00 on A-1"
    assert ran == ["A-1"]
    governed = guard.pipeline.govern(ask("order-1", "30.00", "direct"))
    assert governed.arguments["order_id"] == "A-1"
    assert guard.executions.get(governed.decision.execution_key) is None


def test_an_approved_call_runs_with_the_records_own_id(tmp_path: Path, store: SqlStore) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    guard = Guard(load_pack(path), store=store, context=Aliases(), clock=lambda: NOW)

    routed = guard.decide(ask("order-1", "250.00", "big"))
    assert (routed.outcome, routed.required_role) == (Outcome.ROUTE, "tier1")
    guard.approvals.approve(routed.id, approver=TIER1, note="checked the parcel")

    (queued,) = guard.executions.pending(actor_id="bot")
    assert queued.arguments == {"amount": "250.00", "currency": "USD", "order_id": "A-1"}


def test_a_number_the_record_answers_as_the_same_text_stays_a_number(
    tmp_path: Path, store: SqlStore
) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    guard = Guard(load_pack(path), store=store, context=IntegerKeys(), clock=lambda: NOW)
    governed = guard.pipeline.govern(
        {
            "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
            "tool": {
                "name": "issue_refund",
                "arguments": {"amount": "20.00", "currency": "USD", "order_id": 1001},
            },
        }
    )
    padded = guard.pipeline.govern(ask("01001", "20.00", "padded"))

    assert governed.decision.outcome is Outcome.ALLOW
    assert governed.arguments["order_id"] == 1001
    assert padded.arguments["order_id"] == "1001"
