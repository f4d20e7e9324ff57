"""Attacks from the second security review, against the shipped acme pack and case data.

Each test states the behaviour wanted, through outcomes, rule ids, ledger rows and HTTP
answers: it fails while the attack still works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from discretion import Outcome, SqlStore
from discretion.api import Tokens, create_app

from .acme_attacks import ALLOWED, BOT, acme_guard, acme_pack_with

A_50003 = {"customer_id": "C-1003", "case_id": "K-70003", "order_id": "A-50003"}


def unmapped(tool: str, arguments: dict[str, Any], *, key: str, **fields: Any) -> dict[str, Any]:
    """A proposal of a 20.00 refund on A-50003 carried by a call to a tool the pack does not map."""
    return {
        "actor": BOT,
        "amount": {"amount": "20.00", "currency": "USD"},
        **A_50003,
        "tool": {"name": tool, "arguments": arguments},
        "idempotency_key": key,
        **fields,
    }


# A tool the pack does not map is never decided as an action ------------------------------------


@pytest.mark.parametrize(
    ("tool", "fields"),
    [
        ("wire_transfer", {"action": "refund"}),  # a tool of its own, the action named
        ("lookup_order", {"action": "refund"}),  # a read-only tool, the action named
        ("refund", {}),  # a tool named like the action
    ],
)
def test_an_unmapped_tool_is_never_decided_on_the_proposals_own_fields(
    store: SqlStore, tool: str, fields: dict[str, Any]
) -> None:
    # Its arguments say 5,000.00 to another order; the proposal's fields say 20.00 on
    # A-50003. Nothing reads the arguments, so the call must not be allowed as that refund.
    guard = acme_guard(store)
    arguments = {"amount": "5000.00", "currency": "USD", "order_id": "A-50001", "to": "x"}
    governed = guard.pipeline.govern(unmapped(tool, arguments, key=f"k-{tool}", **fields))
    decision = governed.decision
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.unknown-action"]
    assert decision.required_role == guard.pack.highest_human.id
    assert governed.arguments == arguments  # what a person approves is what would run
    if fields:
        assert decision.causes == [
            f"tool {tool!r} is not mapped by pack 'acme-support', so its arguments cannot be"
            " read and it is not decided as 'refund'; map it under the action's tools"
        ]
    [row] = store.export()
    assert row["body"]["decision"]["outcome"] == "route"
    assert row["body"]["proposal"]["tool"] == {"name": tool, "arguments": arguments}


def test_an_unmapped_tool_is_denied_where_the_pack_denies_unknown_tools(
    store: SqlStore, tmp_path: Path
) -> None:
    pack = acme_pack_with(tmp_path, "pack.yaml", "unknown_tools: route", "unknown_tools: deny")
    guard = acme_guard(store, pack=pack)
    decision = guard.decide(
        unmapped("wire_transfer", {"amount": "5000.00"}, key="k-deny", action="refund")
    )
    assert decision.outcome is Outcome.DENY
    assert decision.rules == ["discretion.unknown-action"]


def test_an_unmapped_tool_with_an_action_is_routed_over_http(store: SqlStore) -> None:
    guard = acme_guard(store)
    token, _ = Tokens(store, clock=guard.now).create(
        subject_id=BOT["id"], role=BOT["role"], is_ai=True
    )
    with TestClient(create_app(guard)) as client:
        answer = client.post(
            "/v1/decisions",
            json=unmapped("wire_transfer", {"amount": "5000.00"}, key="k-http", action="refund"),
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["outcome"] == "route"
    assert body["outcome"] not in {o.value for o in ALLOWED}
    assert body["rules"] == ["discretion.unknown-action"]
