"""The tool receives nothing that was not governed: a stray currency, an argument not declared."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from discretion import Guard, Outcome, ProposalError, SqlStore, load_pack
from discretion.context import StaticContextProvider
from discretion.errors import ConfigurationError
from discretion.integrations import check_tool

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

PACK = """
pack: credits
currency: USD
roles:
  - id: ai_agent
    ai: true
    authority:
      credit: {standard: "50.00"}
      ship: {standard: "900.00"}
      replace: {standard: "900.00"}
  - id: tier1
    authority:
      credit: {standard: "500.00"}
      ship: {standard: "2000.00"}
      replace: {standard: "2000.00"}
actions:
  credit:
    tools:
      - {name: add_credit, amount: amount, customer: customer_id}
      - {name: add_nested_credit, amount: credit.amount, customer: customer_id}
    standard:
      - id: any-credit
  ship:
    tools:
      - name: ship_replacement
        amount: item.value
        customer: customer.id
        extra_arguments: refuse
    standard:
      - id: any-shipment
  replace:
    args:
      serial: {type: string}
    tools:
      - name: create_replacement
        amount: item_value
        customer: customer_id
        extra_arguments: refuse
    standard:
      - id: any-replacement
"""


class Credit(BaseModel):
    """A credit as a tool takes it: the amount with a currency of its own beside it."""

    amount: str
    currency: str = "USD"


@pytest.fixture
def guard(tmp_path: Path, store: SqlStore) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    return Guard(load_pack(path), store=store, context=StaticContextProvider({}), clock=lambda: NOW)


def call(tool: str, key: str, **arguments: Any) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
        "tool": {"name": tool, "arguments": {"customer_id": "c-1", **arguments}},
        "idempotency_key": key,
    }


@pytest.mark.parametrize("name", ["currency", "currency_code"])
def test_a_currency_the_mapping_does_not_read_is_refused_when_it_differs(guard, name):
    with pytest.raises(ProposalError, match=f"argument '{name}' is 'KWD'") as refused:
        guard.decide(call("add_credit", "a", amount="25.00", **{name: "KWD"}))
    assert refused.value.field == "currency"  # the call's currency, whatever the tool calls it
    assert guard.store.verify() == 0  # nothing recorded

    # The currency it is decided in is no trouble.
    same = guard.decide(call("add_credit", "b", amount="25.00", **{name: "USD"}))
    assert same.outcome is Outcome.ALLOW


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"refund_amount": "5000.00"}, "tool.arguments.refund_amount"),
        ({"refundTotal": 5000}, "tool.arguments.refundTotal"),
        ({"payout": {"amount": "5000.00", "currency": "USD"}}, "tool.arguments.payout"),
        ({"credit": {"amount": "1.00", "payout": "4999.00"}}, "tool.arguments.credit.payout"),
        # However dressed, nested or listed.
        ({"amt": "$5,000.00"}, "tool.arguments.amt"),
        ({"refund_amount": "5000.00 USD"}, "tool.arguments.refund_amount"),
        ({"refund_amount": ["5e3"]}, "tool.arguments.refund_amount"),
        ({"details": {"refund_amount": "+5000"}}, "tool.arguments.details.refund_amount"),
        ({"lines": [{"amount": "5000.00"}]}, "tool.arguments.lines.0.amount"),
        ({"meta": {"x.refundAmount": 5000}}, "tool.arguments.meta.x.refundAmount"),
    ],
)
def test_a_second_amount_beside_the_one_decided_is_refused(guard, extra, field):
    # Decided on 1.00, the tool would have been handed 5,000.00 beside it to pay.
    tool = "add_nested_credit" if "credit" in extra else "add_credit"
    arguments = extra if "credit" in extra else {"amount": "1.00", **extra}
    with pytest.raises(ProposalError, match="holds an amount beside") as refused:
        guard.decide(call(tool, "a", **arguments))
    assert refused.value.field == field
    assert guard.store.verify() == 0  # nothing recorded


def test_arguments_that_are_no_second_amount_still_pass(guard):
    # Named otherwise, or not holding an amount: a note, a flag, a count.
    allowed = guard.decide(
        call(
            "add_credit",
            "b",
            amount="25.00",
            note="refund for the late parcel",
            fee_waived=True,
            refund_reason="late",
            items=3,
            # Ids, codes and scores whose names hold an amount's word, or a part of one.
            refund_id="98765",
            consumer_id="12345",
            cost_center="4410",
            feedback_score=5,
            credit_card_last4="4242",
            # What describes the case, not what is paid.
            order_total="120.00",
            item_price=45.5,
            fee="3.99",
            credit_limit="500.00",
        )
    )
    assert allowed.outcome is Outcome.ALLOW


def test_wrapping_a_tool_that_takes_a_currency_the_mapping_does_not_read_is_refused(guard):
    with pytest.raises(ConfigurationError, match=r"Add `currency: currency` to its mapping"):
        check_tool(guard.pack, "add_credit", ["amount", "currency", "customer_id"])
    assert check_tool(guard.pack, "add_credit", ["amount", "customer_id"]) is True


def test_extra_arguments_refuse_sends_back_what_the_policy_does_not_govern(guard):
    with pytest.raises(ProposalError, match="no argument 'manager_approved', 'quantity'") as sent:
        guard.decide(
            call(
                "create_replacement",
                "a",
                item_value="899.00",
                serial="SN-1",
                quantity=3,
                manager_approved=True,
            )
        )
    assert sent.value.field == "tool.arguments.manager_approved"

    governed = guard.decide(call("create_replacement", "b", item_value="899.00", serial="SN-1"))
    assert governed.outcome is Outcome.ALLOW
    # Where it is not asked for, an undeclared argument passes as before.
    note = guard.decide(call("add_credit", "c", amount="5.00", note="sorry"))
    assert note.outcome is Outcome.ALLOW


def test_a_currency_beside_the_one_the_mapping_reads_is_refused_when_it_differs(tmp_path, store):
    # Decided in USD from `currency`, paid in the `currency_code` the tool may read instead.
    path = tmp_path / "pack.yaml"
    path.write_text(
        PACK.replace("amount: amount, customer:", "amount: amount, currency: currency, customer:"),
        encoding="utf-8",
    )
    guard = Guard(
        load_pack(path), store=store, context=StaticContextProvider({}), clock=lambda: NOW
    )
    with pytest.raises(ProposalError, match="argument 'currency_code' is 'KWD'") as refused:
        guard.decide(call("add_credit", "a", amount="25.00", currency="USD", currency_code="KWD"))
    assert refused.value.field == "tool.arguments.currency_code"
    assert "the currency its mapping reads from 'currency'" in str(refused.value)
    assert guard.store.verify() == 0
    same = guard.decide(
        call("add_credit", "b", amount="25.00", currency="USD", currency_code="usd")
    )
    assert same.outcome is Outcome.ALLOW


def test_extra_arguments_refuse_looks_inside_the_objects_it_reads_paths_from(guard):
    def ship(key: str, **item: Any) -> dict[str, Any]:
        proposal = call("ship_replacement", key, item={"value": "120.00", **item})
        proposal["tool"]["arguments"]["customer"] = {"id": "c-1"}
        del proposal["tool"]["arguments"]["customer_id"]
        return proposal

    with pytest.raises(ProposalError, match=r"no argument 'item\.itemValue'") as sent:
        guard.decide(ship("a", itemValue="9000.00"))
    assert sent.value.field == "tool.arguments.item.itemValue"
    assert "(it reads: customer.id, item.value)" in str(sent.value)
    assert guard.store.verify() == 0
    assert guard.decide(ship("b")).outcome is Outcome.ALLOW


def test_extra_arguments_refuse_looks_inside_a_record_argument(tmp_path, store):
    # The record is read member by member; a key its type does not declare reached the tool.
    path = tmp_path / "pack.yaml"
    path.write_text(
        """
pack: exchanges
currency: USD
records:
  swap:
    fields:
      sku: string
      parts: list[part]
      price: {type: money, nullable: true}
  part:
    fields:
      code: string
roles:
  - id: ai_agent
    ai: true
    authority: {exchange: {standard: "100.00"}}
  - id: manager
    authority: {exchange: {standard: "1000.00"}}
actions:
  exchange:
    args:
      item: swap
    tools:
      - {name: exchange_item, amount: amount, extra_arguments: refuse}
    standard:
      - id: ok
        when: args.item.sku != 'GIFTCARD'
""",
        encoding="utf-8",
    )
    guard = Guard(
        load_pack(path), store=store, context=StaticContextProvider({}), clock=lambda: NOW
    )

    def exchange(key: str, **item: Any) -> dict[str, Any]:
        return {
            "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
            "tool": {
                "name": "exchange_item",
                "arguments": {"amount": "50.00", "item": {"sku": "A", "parts": [], **item}},
            },
            "idempotency_key": key,
        }

    with pytest.raises(ProposalError, match=r"'item\.sku_override'") as sent:
        guard.decide(exchange("a", sku_override="GIFTCARD"))
    assert sent.value.field == "tool.arguments.item.sku_override"
    with pytest.raises(ProposalError, match=r"'item\.parts\[0\]\.qty'"):
        guard.decide(exchange("b", parts=[{"code": "P1", "qty": 40}]))
    assert guard.store.verify() == 0
    assert guard.decide(exchange("c", parts=[{"code": "P1"}])).outcome is Outcome.ALLOW
    # Money holds an amount and a currency and nothing else: a clear refusal, not a crash.
    price = {"amount": "5.00", "currency": "USD", "amount_cents": 999999}
    with pytest.raises(ProposalError, match=r"item\.price: money is .* and nothing else"):
        guard.decide(exchange("d", price=price))


@pytest.mark.parametrize("name", ["credit.currency", "credit.currency_code", "currency"])
def test_a_currency_beside_a_nested_amount_is_refused_when_it_differs(guard, name):
    # Decided as USD 45.00 from `credit.amount`; the tool's `credit.currency` would pay KWD.
    credit: dict[str, Any] = {"amount": "45.00"}
    arguments: dict[str, Any] = {"credit": credit}
    if name.startswith("credit."):
        credit[name.removeprefix("credit.")] = "KWD"
    else:
        arguments[name] = "KWD"
    with pytest.raises(ProposalError, match=f"argument '{name}' is 'KWD'") as refused:
        guard.decide(call("add_nested_credit", "a", **arguments))
    assert refused.value.field == "currency"  # the call's currency, whatever the tool calls it
    assert guard.store.verify() == 0

    same = guard.decide(
        call("add_nested_credit", "b", credit={"amount": "45.00", "currency": "usd"})
    )
    assert same.outcome is Outcome.ALLOW


def test_wrapping_a_tool_with_a_currency_beside_its_nested_amount_is_refused(guard):
    takes = ["credit", "credit.amount", "credit.currency", "customer_id"]
    with pytest.raises(ConfigurationError, match=r"Add `currency: credit.currency`"):
        check_tool(guard.pack, "add_nested_credit", takes)
    assert check_tool(guard.pack, "add_nested_credit", ["credit", "credit.amount", "customer_id"])


def test_an_agents_sdk_tool_with_a_currency_in_its_nested_model_is_refused(guard):
    pytest.importorskip("agents")
    from agents import function_tool

    from discretion.integrations import AgentTools

    @function_tool
    def add_nested_credit(credit: Credit, customer_id: str) -> str:
        """Credit the customer."""
        return f"credited {credit.currency} {credit.amount}"

    actor = {"id": "bot", "role": "ai_agent", "is_ai": True}
    with pytest.raises(ConfigurationError, match=r"takes a currency \('credit.currency'\)"):
        AgentTools(guard, actor=actor).wrap([add_nested_credit])


def test_a_schema_referring_to_itself_is_read_once_per_way_down():
    """A tree of nodes, each with three children: read without listing names without end."""
    from discretion.integrations._setup import schema_parameters

    node = {
        "type": "object",
        "properties": {
            "left": {"$ref": "#/$defs/Node"},
            "middle": {"$ref": "#/$defs/Node"},
            "right": {"$ref": "#/$defs/Node"},
            "label": {"type": "string"},
        },
    }
    schema = {
        "type": "object",
        "properties": {"tree": {"$ref": "#/$defs/Node"}, "amount": {"type": "string"}},
        "$defs": {"Node": node},
    }
    read = schema_parameters(schema)
    assert read is not None
    assert read.names == {
        "amount",
        "tree",
        "tree.left",
        "tree.middle",
        "tree.right",
        "tree.label",
    }
