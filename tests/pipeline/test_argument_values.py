"""An argument's allowed values (`values:`): a call with another is refused, naming them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.context import StaticContextProvider
from discretion.errors import PolicyError, ProposalError

PACK = """
pack: item-refunds
currency: USD
roles:
  - id: ai_agent
    ai: true
    authority:
      refund_item: {standard: "40.00"}
  - id: lead
    authority:
      refund_item: {standard: "400.00"}
actions:
  refund_item:
    tools:
      - {name: refund_item, amount: amount}
    args:
      reason: {type: string, values: [missing, damaged]}
      quantity: {type: int, values: [1, 2, 3], optional: true}
    standard:
      - id: item.ok
        when: args.reason == 'missing' || args.reason == 'damaged'
"""


def guard(tmp_path: Path, text: str = PACK) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    return Guard(
        load_pack(path),
        store=SqlStore(f"sqlite:///{tmp_path}/ledger.db"),
        context=StaticContextProvider({}),
        clock=lambda: datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    )


def call(**arguments: Any) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent"},
        "tool": {"name": "refund_item", "arguments": {"amount": "5.00", **arguments}},
    }


def test_an_allowed_value_is_decided_by_the_rules(tmp_path: Path) -> None:
    g = guard(tmp_path)
    assert g.decide(call(reason="damaged", quantity=2)).outcome is Outcome.ALLOW


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"reason": "changed my mind"},
            "'changed my mind' is not one of the values the pack allows ('missing', 'damaged')",
        ),
        ({"reason": "Missing"}, "'Missing' is not one of"),
        (
            {"reason": "missing", "quantity": 4},
            "4 is not one of the values the pack allows (1, 2, 3)",
        ),
    ],
)
def test_a_value_outside_the_list_is_refused_and_nothing_recorded(
    tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    g = guard(tmp_path)
    with pytest.raises(ProposalError, match="tool 'refund_item' argument") as refused:
        g.decide(call(**arguments))
    assert message in str(refused.value)
    assert g.store.verify() == 0


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("values: [1, 2, 3]", "values: [1, '2']", "values lists '2'; list int values only"),
        (
            "{type: string, values: [missing, damaged]}",
            "{type: bool, values: [true]}",
            "only a string or int argument takes a values list",
        ),
    ],
)
def test_values_of_another_type_are_refused_at_load(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    with pytest.raises(PolicyError, match=message) as raised:
        guard(tmp_path, PACK.replace(old, new))
    assert raised.value.line is not None


def test_a_currency_the_values_leave_out_is_an_error_of_the_calls_currency(tmp_path: Path) -> None:
    """The call's currency is `currency` in the error, whatever the tool calls it."""
    text = PACK.replace(
        "{name: refund_item, amount: amount}",
        "{name: refund_item, amount: amount, currency: pay_in}",
    ).replace("      reason:", "      pay_in: {type: string, values: [USD]}\n      reason:")
    g = guard(tmp_path, text)
    with pytest.raises(ProposalError, match="'GBP' is not one of the values") as refused:
        g.decide(call(reason="damaged", pay_in="GBP"))
    assert refused.value.field == "currency"
    with pytest.raises(ProposalError) as other:
        g.decide(call(reason="lost", pay_in="USD"))
    assert other.value.field == "tool.arguments.reason"
    # Left out, or of another type: the call's currency still, as the evals docs say.
    with pytest.raises(ProposalError, match="'pay_in' is missing") as missing:
        g.decide(call(reason="damaged"))
    assert missing.value.field == "currency"
    with pytest.raises(ProposalError, match="a currency is a code") as typed:
        g.decide(call(reason="damaged", pay_in=840))
    assert typed.value.field == "currency"
