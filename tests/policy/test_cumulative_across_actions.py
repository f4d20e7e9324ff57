"""Cumulative authority across actions: "the assistant gives at most 40.00 per order, in
refunds, credits and fee refunds together"."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import FakeClock
from discretion import Guard, Outcome, SqlStore, load_pack
from discretion.context import ContextRequest
from discretion.errors import PolicyError

PACK = """
pack: per-order
currency: USD
entities:
  order: {}
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {standard: "40.00"}
      credit: {standard: "40.00"}
  - id: lead
    authority:
      refund: {standard: "150.00"}
      credit: {standard: "150.00"}
actions:
  refund:
    tools:
      - {name: refund, amount: amount, order: order_id}
    cumulative: {per: order, window: 30d, actions: [credit]}
    standard:
      - id: refund.ok
  credit:
    tools:
      - {name: credit, amount: amount, order: order_id}
    cumulative: {per: order, window: 30d, actions: [refund]}
    standard:
      - id: credit.ok
"""


class Orders:
    """Every order is on record under the id it is asked for."""

    in_process = True

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        return {"order.id": request.order_id}


def guard(tmp_path: Path, text: str = PACK) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    return Guard(
        load_pack(path),
        store=SqlStore(f"sqlite:///{tmp_path}/ledger.db"),
        context=Orders(),
        clock=FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC)),
    )


def call(tool: str, amount: str, key: str, order: str = "o-1") -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent"},
        "tool": {"name": tool, "arguments": {"amount": amount, "order_id": order}},
        "idempotency_key": key,
    }


def test_a_refund_after_a_credit_on_the_same_order_is_measured_with_it(tmp_path: Path) -> None:
    g = guard(tmp_path)
    assert g.decide(call("credit", "30.00", "c1")).outcome is Outcome.ALLOW
    over = g.decide(call("refund", "10.01", "r1"))
    assert over.outcome is Outcome.ROUTE
    assert over.required_role == "lead"
    assert "discretion.cumulative-authority" in over.rules
    assert g.decide(call("refund", "10.00", "r2")).outcome is Outcome.ALLOW
    # And the other way: the credit's own authority counts the refund.
    assert g.decide(call("credit", "0.01", "c2")).outcome is Outcome.ROUTE


def test_another_order_is_measured_on_its_own(tmp_path: Path) -> None:
    g = guard(tmp_path)
    assert g.decide(call("credit", "40.00", "c1")).outcome is Outcome.ALLOW
    assert g.decide(call("refund", "40.00", "r1", order="o-2")).outcome is Outcome.ALLOW


def test_cumulative_authority_over_an_unknown_action_is_refused_with_its_line(
    tmp_path: Path,
) -> None:
    text = PACK.replace("actions: [credit]}", "actions: [credits]}")
    with pytest.raises(PolicyError, match="counts action 'credits', which is not an action") as e:
        guard(tmp_path, text)
    assert e.value.line == 1 + next(
        n for n, line in enumerate(text.splitlines()) if "[credits]" in line
    )
