"""Async callers: where `adecide` and the async integrations do their work.

A decision that waits on nothing but an embedded database runs on the caller's event loop;
one that waits on the network (a context provider, an LLM judge, a database server) runs in a
worker thread, so the loop never waits on it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from conftest import LoopFacts, good_facts, refund
from discretion import Actor, CallRouted, Guard, Outcome, SqlStore
from discretion.context import StaticContextProvider

BOT = Actor(id="bot-1", role="ai_agent")


def _on_a_loop(coroutine: Any) -> tuple[Any, int]:
    """Run `coroutine` on a new event loop; its result and the loop's thread."""

    async def main() -> tuple[Any, int]:
        return await coroutine, threading.get_ident()

    return asyncio.run(main())


def test_an_async_decision_on_an_embedded_store_runs_on_the_callers_loop(make_guard, store):
    context = LoopFacts()
    guard = make_guard(context=context)
    decision, loop = _on_a_loop(guard.adecide(refund("40.00")))
    assert decision.outcome is Outcome.ALLOW
    recorded = store.find_decision("bot-1", "k-1")
    assert recorded is not None
    assert recorded.id == decision.id
    assert guard.pipeline.decides_inline is store.embedded
    if store.embedded:
        assert context.threads == [loop]
    else:
        # PostgreSQL is across the network: the loop does not wait on it.
        assert len(context.threads) == 1
        assert context.threads != [loop]


def test_an_async_decision_whose_provider_waits_on_the_network_runs_in_a_worker_thread(
    pack, clock, sqlite_store
):
    context = LoopFacts(in_process=False)
    guard = Guard(pack, store=sqlite_store, context=context, clock=clock)
    assert not guard.pipeline.decides_inline
    governed, loop = _on_a_loop(guard.pipeline.agovern(refund("40.00")))
    assert governed.decision.outcome is Outcome.ALLOW
    assert governed.arguments["amount"] == "40.00"
    assert len(context.threads) == 1
    assert context.threads != [loop]
    assert sqlite_store.find_decision("bot-1", "k-1") is not None


def test_an_async_tool_call_on_an_embedded_store_never_hops_to_a_thread(
    pack, clock, sqlite_store: SqlStore, monkeypatch: pytest.MonkeyPatch
):
    guard = Guard(
        pack, store=sqlite_store, context=StaticContextProvider(good_facts()), clock=clock
    )

    def no_hop(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("an embedded, in-process guard sent work to a thread")

    monkeypatch.setattr(asyncio, "to_thread", no_hop)
    ran: list[str] = []

    @guard.governed(action="refund", actor=BOT)
    async def refund_order(order_id: str, amount: str, customer_id: str, case_id: str) -> str:
        ran.append(amount)
        return f"refunded {amount}"

    async def calls() -> Any:
        result = await refund_order.call("o-1", "40.00", "c-1", "case-1")
        with pytest.raises(CallRouted):  # the look for a queued execution, on the loop too
            await refund_order("o-2", "60.00", "c-1", "case-1")
        return result

    result = asyncio.run(calls())
    assert result.value == "refunded 40.00"
    assert ran == ["40.00"]
    assert result.decision.outcome is Outcome.ALLOW
    executions = guard.executions.for_decision(result.decision.id)
    assert [e.status.value for e in executions] == ["succeeded"]
