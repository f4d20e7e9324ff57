"""A claim may name a member of a record fact: `line.device.liquid_damage`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.context import StaticContextProvider
from discretion.errors import ProposalError

PACK = """
pack: devices
currency: USD
records:
  device:
    fields:
      model: string
      liquid_damage: bool
      cost: money
context:
  line.device: device
roles:
  - id: ai_agent
    ai: true
    authority:
      replace_device: {standard: "0", exception: "900.00"}
  - id: rep
    authority:
      replace_device: {standard: "2000.00", exception: "2000.00"}
actions:
  replace_device:
    tools:
      - {name: replace_device, amount: amount}
    reads: [line.device]
    exceptions:
      - id: warranty
        when: "!line.device.liquid_damage"
        max_amount: line.device.cost
"""

DEVICE = {"model": "L9", "liquid_damage": False, "cost": {"amount": "800.00", "currency": "USD"}}


def decide(tmp_path: Path, claims: list[dict[str, Any]]) -> Any:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    guard = Guard(
        load_pack(path),
        store=SqlStore(f"sqlite:///{tmp_path}/ledger.db"),
        context=StaticContextProvider({"line.device": DEVICE}),
        clock=lambda: datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
    )
    return guard.decide(
        {
            "actor": {"id": "bot", "role": "ai_agent"},
            "tool": {"name": "replace_device", "arguments": {"amount": "800.00"}},
            "rationale": {"reason": "warranty", "claims": claims},
        }
    )


@pytest.mark.parametrize(
    ("claim", "rule"),
    [
        ({"field": "line.device.liquid_damage", "value": False}, "discretion.claim.grounded"),
        ({"field": "line.device.cost", "value": "800.00"}, "discretion.claim.grounded"),
        ({"field": "line.device.model", "value": "L9"}, "discretion.claim.grounded"),
        (
            {"field": "line.device.liquid_damage", "value": True},
            "discretion.claim.contradicts-fact",
        ),
        ({"field": "line.device.colour", "value": "red"}, "discretion.claim.unknown-fact"),
    ],
)
def test_a_claim_on_a_record_member_is_checked_against_it(
    tmp_path: Path, claim: dict[str, Any], rule: str
) -> None:
    decision = decide(tmp_path, [claim])
    assert [check.rule for check in decision.judge.claims] == [rule]
    if rule == "discretion.claim.grounded":
        assert decision.outcome is Outcome.ALLOW_EXCEPTION
    else:
        assert decision.outcome is not Outcome.ALLOW_EXCEPTION


def test_a_claim_may_state_money_in_its_json_form(tmp_path: Path) -> None:
    claim = {"field": "line.device.cost", "value": {"amount": "800.00", "currency": "USD"}}
    decision = decide(tmp_path, [claim])
    assert [check.rule for check in decision.judge.claims] == ["discretion.claim.grounded"]


def test_a_claim_of_a_whole_record_is_refused_saying_what_a_claim_holds(tmp_path: Path) -> None:
    with pytest.raises(ProposalError, match="a claim's value is one string, number or bool"):
        decide(tmp_path, [{"field": "line.device", "value": DEVICE}])


def test_a_claim_of_money_in_another_currency_contradicts_the_fact(tmp_path: Path) -> None:
    claim = {"field": "line.device.cost", "value": {"amount": "800.00", "currency": "EUR"}}
    decision = decide(tmp_path, [claim])
    assert [check.rule for check in decision.judge.claims] == ["discretion.claim.contradicts-fact"]
