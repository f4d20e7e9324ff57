"""Two actors' execution keys can meet (`bot` with `x:1`, `bot:x` with `1`): never one run."""

from __future__ import annotations

from typing import Any

import pytest

from discretion import SqlStore
from discretion.errors import ProposalError

from .acme_attacks import ALLOWED, BOT, acme_guard, refund

A_50003 = {"order": "A-50003", "customer": "C-1003", "case": "K-70003"}
COLON_BOT = {**BOT, "id": f"{BOT['id']}:x"}


def test_another_actor_s_run_under_the_same_key_is_never_this_call_s(store: SqlStore) -> None:
    guard = acme_guard(store)
    first = guard.decide(refund(**A_50003, amount="10.00", key="x:1"))
    second = guard.decide(refund(**A_50003, amount="10.00", key="1", actor=COLON_BOT))
    assert first.outcome in ALLOWED
    assert second.outcome in ALLOWED
    assert first.execution_key == second.execution_key  # the two ids joined meet
    calls: list[dict[str, Any]] = []

    def pay(arguments: dict[str, Any], key: str) -> str:
        calls.append(arguments)
        return f"refunded {arguments['amount']}"

    arguments = {"order_id": "A-50003", "amount": "10.00"}
    ran = guard.executions.run(
        decision_id=first.id,
        key=first.execution_key,
        tool="issue_refund",
        arguments=arguments,
        call=pay,
    )
    assert ran.result == "refunded 10.00"
    assert not ran.is_replay
    with pytest.raises(ProposalError, match="another idempotency key") as raised:
        guard.executions.run(
            decision_id=second.id,
            key=second.execution_key,
            tool="issue_refund",
            arguments=arguments,
            call=pay,
        )
    assert raised.value.field == "idempotency_key"
    assert len(calls) == 1
    # The first actor's own retry still replays its run.
    again = guard.executions.run(
        decision_id=first.id,
        key=first.execution_key,
        tool="issue_refund",
        arguments=arguments,
        call=pay,
    )
    assert again.is_replay
    assert len(calls) == 1
