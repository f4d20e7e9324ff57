"""Gaps found by reviewing the pack-language and integration fronts, each closed.

- A call that leaves out the amount (or an id) its mapping reads, while the proposal names it
  apart, was decided on the proposal's value and run without it.
- An assertion's unlock cap was measured per call under cumulative authority, so a split
  unlocked piece by piece what the whole could not.
- A name written with space around its dot (`asserted .customer.stated_reason`, valid CEL) hid
  the assertion a rule rests on from the cap.
- A number from the provider too large for CEL's 64 bits crashed the decision.
- An id sent with space around it was decided stripped while the tool received it as sent.
- A literal argument named like a nested path (`"order.id"` beside `order: {id}`) left the
  tool free to read the one that was not decided.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import NOW, FakeClock, good_facts
from discretion import Guard, Outcome, ProposalError, SqlStore, load_pack
from discretion.context import StaticContextProvider

PACKS = Path(__file__).resolve().parent.parent / "packs"
BOT = {"id": "bot-1", "role": "ai_agent", "is_ai": True}


def guard_on(pack: Any, store: SqlStore, facts: dict[str, Any]) -> Guard:
    return Guard(pack, store=store, context=StaticContextProvider(facts), clock=FakeClock(NOW))


@pytest.mark.parametrize(
    ("left_out", "named"),
    [
        ("amount", {"amount": {"amount": "5.00", "currency": "USD"}}),
        ("order_id", {"order_id": "o-1"}),
    ],
)
def test_a_call_leaving_out_what_its_mapping_reads_is_refused(store, left_out, named):
    guard = guard_on(load_pack(PACKS / "shop.yaml"), store, good_facts())
    arguments = {"amount": "5.00", "currency": "USD", "customer_id": "c-1", "order_id": "o-1"}
    del arguments[left_out]
    with pytest.raises(ProposalError, match=f"argument '{left_out}' is missing") as caught:
        guard.decide(
            {
                "actor": BOT,
                "tool": {"name": "issue_refund", "arguments": arguments},
                "idempotency_key": "k-1",
                **named,
            }
        )
    assert caught.value.field == f"tool.arguments.{left_out}"
    assert store.count() == 0


@pytest.mark.parametrize("currency", [None, "usd"])
def test_the_tool_runs_in_the_currency_that_was_decided(store, currency):
    guard = guard_on(load_pack(PACKS / "shop.yaml"), store, good_facts())
    arguments = {"amount": "5.00", "currency": currency, "customer_id": "c-1", "order_id": "o-1"}
    call = {"name": "issue_refund", "arguments": arguments}
    decision = guard.decide({"actor": BOT, "tool": call, "idempotency_key": "k"})
    assert decision.outcome is Outcome.ALLOW
    # What the lineage records is what the integrations hand the tool (`Admission.arguments`).
    governed = store.decision_body(decision.id)["proposal"]["tool"]["arguments"]
    assert governed["currency"] == "USD"


def test_an_assertions_unlock_is_measured_on_the_whole_under_cumulative_authority(store):
    facts = {
        "order.total": {"amount": "500.00", "currency": "USD"},
        "customer.id": "c",
        "order.id": "o-1",
        "order.customer_id": "c",
    }
    guard = guard_on(load_pack(PACKS / "asserted_cumulative.yaml"), store, facts)
    outcomes = [
        guard.decide(
            {
                "actor": BOT,
                "tool": {
                    "name": "issue_refund",
                    "arguments": {"amount": "25.00", "customer_id": "c", "order_id": "o-1"},
                },
                "rationale": {"text": "x", "asserted": {"customer.stated_reason": "damaged"}},
                "idempotency_key": f"k-{n}",
            }
        )
        for n in range(3)
    ]
    # A 30.00 cap: the first 25.00 stands on the assertion; 50.00 on the order does not.
    assert [d.outcome for d in outcomes] == [Outcome.ALLOW, Outcome.ROUTE, Outcome.ROUTE]
    assert "discretion.asserted.unlock-exceeded" in outcomes[1].rules


def test_an_asserted_name_spaced_around_its_dot_is_still_capped(store, tmp_path):
    source = (PACKS / "asserted.yaml").read_text(encoding="utf-8")
    spaced = source.replace(
        "asserted.customer.stated_reason == 'damaged'",
        "asserted .customer.stated_reason == 'damaged'",
    )
    assert spaced != source
    path = tmp_path / "asserted.yaml"
    path.write_text(spaced, encoding="utf-8")
    facts = {
        "order.total": {"amount": "500.00", "currency": "USD"},
        "order.delivered_at": (NOW - timedelta(days=40)).isoformat(),
        "shipment.status": "delivered",
    }
    decision = guard_on(load_pack(path), store, facts).decide(
        {
            "actor": BOT,
            "tool": {
                "name": "issue_refund",
                "arguments": {"amount": "70.00", "customer_id": "c", "order_id": "o"},
            },
            "rationale": {
                "reason": "damaged-on-arrival",
                "text": "x",
                "asserted": {"customer.stated_reason": "damaged"},
            },
            "idempotency_key": "k",
        }
    )
    assert decision.outcome is Outcome.ROUTE
    assert "discretion.asserted.unlock-exceeded" in decision.rules


def test_a_provider_number_too_large_for_the_rules_routes(store):
    def usd(amount: str) -> dict[str, str]:
        return {"amount": amount, "currency": "USD"}

    item = {
        "sku": "shoe-42",
        "product": "shoe",
        "price": usd("80.00"),
        "delivered_at": (NOW - timedelta(days=5)).isoformat(),
        "options": ["shoe-43"],
    }
    facts = {
        "order.items": [item],
        "order.payments": [{"method": "gift_card", "amount": usd("9" * 17)}],
    }
    decision = guard_on(load_pack(PACKS / "returns.yaml"), store, facts).decide(
        {
            "actor": BOT,
            "tool": {
                "name": "refund_return",
                "arguments": {"amount": "80.00", "order_id": "o-1", "sku": "shoe-42"},
            },
            "rationale": {"text": "x"},
            "idempotency_key": "k",
        }
    )
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.context-unavailable"]
    assert "too large" in decision.causes[0]


def test_the_tool_runs_with_the_ids_as_they_were_decided(store):
    guard = guard_on(load_pack(PACKS / "shop.yaml"), store, good_facts())
    arguments = {"amount": "5.00", "currency": "USD", "customer_id": " c-1 ", "order_id": "o-1\n"}
    call = {"name": "issue_refund", "arguments": arguments}
    decision = guard.decide({"actor": BOT, "tool": call, "idempotency_key": "k"})
    assert decision.outcome is Outcome.ALLOW
    governed = store.decision_body(decision.id)["proposal"]["tool"]["arguments"]
    assert (governed["customer_id"], governed["order_id"]) == ("c-1", "o-1")


def test_an_argument_named_like_a_nested_path_is_refused(store, tmp_path):
    source = (PACKS / "shop.yaml").read_text(encoding="utf-8")
    assert source.count("order: order_id") == 1
    path = tmp_path / "nested.yaml"
    path.write_text(source.replace("order: order_id", "order: order.id"), encoding="utf-8")
    guard = guard_on(load_pack(path), store, good_facts())
    arguments = {
        "amount": "5.00",
        "currency": "USD",
        "customer_id": "c-1",
        "order": {"id": "o-1"},
        "order.id": "o-2",
    }
    with pytest.raises(ProposalError, match="name of its own") as caught:
        guard.decide(
            {
                "actor": BOT,
                "tool": {"name": "issue_refund", "arguments": arguments},
                "idempotency_key": "k",
            }
        )
    assert caught.value.field == "tool.arguments.order.id"
    assert store.count() == 0
