"""Cumulative authority counts what a person approved, and an approver is measured on the whole.

A refund split in four pieces, the first allowed and three routed, was approved piece by piece by
a role whose authority covers each piece but not the whole: the approver's re-check measured
the approver's own role's grants on the order (none), and approved cases were never counted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from discretion import Actor, Guard, Money, Outcome, SqlStore, load_pack
from discretion.approvals import ApprovalStatus
from discretion.context import StaticContextProvider
from discretion.errors import ApprovalError

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

PACK = """
pack: split
currency: USD
entities:
  order: {}
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {standard: "200.00"}
  - id: tier1
    authority:
      refund: {standard: "400.00"}
  - id: tier2
    authority:
      refund: {standard: "1000.00"}
actions:
  refund:
    cumulative: {per: order, window: 365d}
    tools:
      - {name: issue_refund, amount: amount, currency: currency, order: order_id}
    standard:
      - id: any
"""

TIA = Actor(id="tia", role="tier1", is_ai=False)
TOM = Actor(id="tom", role="tier2", is_ai=False)


@pytest.fixture
def guard(tmp_path: Path, store: SqlStore) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK, encoding="utf-8")
    return Guard(
        load_pack(path),
        store=store,
        context=StaticContextProvider({"order.id": "o-1"}),
        clock=lambda: NOW,
    )


def ask(amount: str, key: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
        "tool": {
            "name": "issue_refund",
            "arguments": {"amount": amount, "currency": "USD", "order_id": "o-1"},
        },
        "idempotency_key": key,
    }


def test_an_approver_is_measured_on_the_whole_of_a_split(guard: Guard) -> None:
    whole = guard.preview(ask("649.00", "whole"))
    assert whole.required_role == "tier2"
    first = guard.decide(ask("162.25", "p1"))
    assert first.outcome is Outcome.ALLOW
    pieces = [guard.decide(ask("162.25", f"p{n}")) for n in (2, 3, 4)]
    assert [piece.outcome for piece in pieces] == [Outcome.ROUTE] * 3
    # Each piece after the second counts those pending before it: tier2 grants that whole.
    assert [piece.required_role for piece in pieces] == ["tier1", "tier2", "tier2"]

    # Approved out of order: the third piece first (162.25 allowed + 162.25).
    assert guard.approvals.approve(pieces[1].id, approver=TOM, note="ok").status is (
        ApprovalStatus.APPROVED
    )
    # 324.50 granted + 162.25 = 486.75: above tier1, as the whole would be.
    with pytest.raises(ApprovalError, match="it needs 'tier2'"):
        guard.approvals.approve(pieces[0].id, approver=TIA, note="ok")
    assert guard.approvals.approve(pieces[0].id, approver=TOM, note="ok").status is (
        ApprovalStatus.APPROVED
    )


def test_an_approved_piece_counts_in_the_next_proposal(guard: Guard) -> None:
    first = guard.decide(ask("150.00", "a"))
    assert first.outcome is Outcome.ALLOW
    second = guard.decide(ask("150.00", "b"))
    assert (second.outcome, second.required_role) == (Outcome.ROUTE, "tier1")
    guard.approvals.approve(second.id, approver=TIA, note="ok")

    # 150.00 allowed and 150.00 approved: a third 150.00 is a whole of 450.00.
    third = guard.decide(ask("150.00", "c"))
    assert (third.outcome, third.required_role) == (Outcome.ROUTE, "tier2")
    assert "discretion.cumulative-authority" in third.rules
    body = guard.store.decision_body(third.id)
    assert body is not None
    assert body["context"]["cumulative"] == {"amount": "300.00", "currency": "USD"}


def test_an_approval_at_a_lower_amount_counts_what_was_approved(guard: Guard) -> None:
    guard.decide(ask("150.00", "a"))
    second = guard.decide(ask("150.00", "b"))
    lowered = Money.of("20.00", "USD")
    guard.approvals.approve(second.id, approver=TIA, note="part of it", amount=lowered)

    third = guard.decide(ask("20.00", "c"))  # 150.00 + 20.00 approved + 20.00 = 190.00
    assert third.outcome is Outcome.ALLOW


def test_a_piece_routed_while_another_waits_goes_where_the_whole_can_be_approved(
    guard: Guard,
) -> None:
    assert guard.decide(ask("150.00", "a")).outcome is Outcome.ALLOW
    second = guard.decide(ask("150.00", "b"))  # 300.00 on the order: tier1's
    assert (second.outcome, second.required_role) == (Outcome.ROUTE, "tier1")

    # 150.00 allowed, 150.00 pending and 150.00 asked: once the second is approved, tier1's
    # 400.00 no longer covers the third, so it goes to tier2 at once, saying why.
    third = guard.decide(ask("150.00", "c"))
    assert (third.outcome, third.required_role) == (Outcome.ROUTE, "tier2")
    assert any("still pending" in cause for cause in third.causes)
    # What the ledger holds is unchanged: cumulative authority counts what was granted.
    body = guard.store.decision_body(third.id)
    assert body is not None
    assert body["context"]["cumulative"] == {"amount": "150.00", "currency": "USD"}

    assert guard.approvals.approve(second.id, approver=TIA, note="ok").status is (
        ApprovalStatus.APPROVED
    )
    assert guard.approvals.approve(third.id, approver=TOM, note="ok").status is (
        ApprovalStatus.APPROVED
    )


def test_a_rejected_piece_no_longer_raises_the_next(guard: Guard) -> None:
    assert guard.decide(ask("150.00", "a")).outcome is Outcome.ALLOW
    second = guard.decide(ask("150.00", "b"))
    guard.approvals.reject(second.id, approver=TIA, note="no")
    third = guard.decide(ask("150.00", "c"))
    assert (third.outcome, third.required_role) == (Outcome.ROUTE, "tier1")
    assert not any("still pending" in cause for cause in third.causes)
