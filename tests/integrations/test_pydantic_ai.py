"""`GovernedToolset` in a Pydantic AI agent, driven by its `FunctionModel` (no network)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from pydantic_ai import (
    Agent,
    DeferredToolRequests,
    FunctionToolset,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import FunctionModel

from conftest import good_facts
from discretion import Actor, ConfigurationError, Money
from discretion.integrations import GovernedToolset

from ._integration_support import BOT, MARIA, ledger_kinds, refund_args


@dataclass
class Deps:
    actor: Actor


class Shop:
    def __init__(self) -> None:
        self.refunds: list[str] = []
        self.lookups: list[str] = []
        self.toolset: FunctionToolset[Deps] = FunctionToolset()

        @self.toolset.tool_plain
        def issue_refund(
            amount: str, currency: str, customer_id: str, case_id: str, order_id: str
        ) -> str:
            """Refund an order to the customer's card."""
            self.refunds.append(amount)
            return f"refunded {currency} {amount}"

        @self.toolset.tool_plain
        def lookup_order(order_id: str) -> str:
            """Look up an order."""
            self.lookups.append(order_id)
            return f"order {order_id}: delivered"


def scripted(*replies: ModelResponse) -> FunctionModel:
    script: Iterator[ModelResponse] = iter(replies)
    return FunctionModel(lambda messages, info: next(script))


def calls(*parts: tuple[str, dict[str, Any], str]) -> ModelResponse:
    return ModelResponse(parts=[ToolCallPart(n, a, tool_call_id=i) for n, a, i in parts])


def said(text: str) -> ModelResponse:
    return ModelResponse(parts=[TextPart(text)])


def agent_for(guard, shop: Shop) -> tuple[Agent[Deps, str | DeferredToolRequests], GovernedToolset]:
    governed = GovernedToolset(shop.toolset, guard=guard)
    agent = Agent(deps_type=Deps, output_type=[str, DeferredToolRequests], toolsets=[governed])
    return agent, governed


def answers(messages) -> dict[str, ToolReturnPart]:
    """Each tool call's answer: its result, a failure (`ToolFailed`) or a retry request."""
    return {
        part.tool_call_id: part
        for message in messages
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    }


def returns(messages) -> dict[str, Any]:
    return {call_id: part.content for call_id, part in answers(messages).items()}


DEPS = Deps(actor=BOT)


@pytest.mark.anyio
async def test_an_allowed_call_runs_once_and_an_ungoverned_lookup_runs_untouched(guard):
    shop = Shop()
    agent, _ = agent_for(guard, shop)
    model = scripted(
        calls(("issue_refund", refund_args(), "c-1"), ("lookup_order", {"order_id": "o-3"}, "c-2")),
        said("Done."),
    )
    result = await agent.run("refund please", model=model, deps=DEPS)
    assert result.output == "Done."
    assert returns(result.all_messages()) == {
        "c-1": "refunded USD 40.00",
        "c-2": "order o-3: delivered",
    }
    assert shop.refunds == ["40.00"]
    assert shop.lookups == ["o-3"]
    assert ledger_kinds(guard) == ["decision", "execution.started", "execution.succeeded"]


@pytest.mark.anyio
async def test_a_denied_call_never_runs_and_the_model_is_told_why(make_guard):
    guard = make_guard(good_facts(**{"customer.fraud_flag": True}))
    shop = Shop()
    agent, _ = agent_for(guard, shop)
    model = scripted(calls(("issue_refund", refund_args(), "c-1")), said("Sorry."))
    result = await agent.run("refund please", model=model, deps=DEPS)
    assert result.output == "Sorry."
    told = answers(result.all_messages())["c-1"]
    assert told.outcome == "failed"
    assert str(told.content).startswith("Not permitted")
    assert shop.refunds == []
    assert "execution.started" not in ledger_kinds(guard)


@pytest.mark.anyio
async def test_a_bad_argument_asks_the_model_to_correct_it(guard):
    shop = Shop()
    agent, _ = agent_for(guard, shop)
    model = scripted(
        calls(("issue_refund", refund_args(currency="EUR"), "c-1")),
        calls(("issue_refund", refund_args(), "c-2")),
        said("Fixed."),
    )
    result = await agent.run("refund please", model=model, deps=DEPS)
    retry = answers(result.all_messages())["c-1"]
    assert retry.outcome == "retried"
    assert "EUR" in str(retry.content)
    assert "Correct the arguments" in str(retry.content)
    assert result.output == "Fixed."
    assert shop.refunds == ["40.00"]


async def route(guard, shop):
    agent, governed = agent_for(guard, shop)
    model = scripted(calls(("issue_refund", refund_args("60.00"), "c-1")), said("Refunded."))
    paused = await agent.run("refund please", model=model, deps=DEPS)
    assert isinstance(paused.output, DeferredToolRequests)
    assert [call.tool_call_id for call in paused.output.approvals] == ["c-1"]
    approval_id = paused.output.metadata["c-1"]["approval_id"]
    assert shop.refunds == []
    return agent, governed, model, paused, approval_id


@pytest.mark.anyio
async def test_a_routed_call_is_deferred_and_runs_once_after_a_person_approves(guard):
    shop = Shop()
    agent, governed, model, paused, approval_id = await route(guard, shop)
    assert paused.output.metadata["c-1"]["required_role"] == "tier1"
    # Nobody has answered: nothing to resume with yet.
    assert (await governed.results(paused.output)).approvals == {}

    guard.approvals.approve(
        approval_id, approver=MARIA, note="partial", amount=Money.of("45.00", "USD")
    )
    results = await governed.results(paused.output)
    done = await agent.run(
        model=model, deps=DEPS, message_history=paused.all_messages(), deferred_tool_results=results
    )
    assert done.output == "Refunded."
    assert returns(done.new_messages())["c-1"] == "refunded USD 45.00"
    assert shop.refunds == ["45.00"]
    assert ledger_kinds(guard) == [
        "decision",
        "approval.approved",
        "execution.queued",
        "execution.started",
        "execution.succeeded",
    ]


@pytest.mark.anyio
async def test_a_rejected_call_never_runs_and_the_model_is_told_who_refused(guard):
    shop = Shop()
    agent, governed, model, paused, approval_id = await route(guard, shop)
    guard.approvals.reject(approval_id, approver=MARIA, note="abuse")
    results = await governed.results(paused.output)
    done = await agent.run(
        model=model, deps=DEPS, message_history=paused.all_messages(), deferred_tool_results=results
    )
    assert "rejected by maria (tier1): abuse" in returns(done.new_messages())["c-1"]
    assert shop.refunds == []
    assert "execution.started" not in ledger_kinds(guard)


@pytest.mark.anyio
async def test_call_ids_are_keyed_within_their_conversation(guard):
    shop = Shop()
    agent, _ = agent_for(guard, shop)
    for customer, amount in (("c-1", "40.00"), ("c-2", "30.00")):
        turn = calls(("issue_refund", refund_args(amount, customer_id=customer), "call_0"))
        model = scripted(turn, said("Done."))
        result = await agent.run("refund", model=model, deps=DEPS, conversation_id=customer)
        assert returns(result.all_messages())["call_0"] == f"refunded USD {amount}"
    assert shop.refunds == ["40.00", "30.00"]
    assert guard.executions.get("bot-1:issue_refund:c-2:call_0").result == "refunded USD 30.00"


@pytest.mark.anyio
async def test_a_tool_the_pack_neither_maps_nor_lists_is_refused_before_any_call(guard):
    toolset: FunctionToolset[Deps] = FunctionToolset()

    @toolset.tool_plain
    def wire_money(amount: str) -> str:
        """Wire money."""
        return amount

    agent = Agent(deps_type=Deps, toolsets=[GovernedToolset(toolset, guard=guard)])
    with pytest.raises(ConfigurationError, match="tool 'wire_money' is neither mapped"):
        await agent.run("hi", model=scripted(said("hi")), deps=DEPS)


@pytest.mark.anyio
async def test_a_decided_amount_reaches_the_tool_in_the_type_it_declares(guard):
    """The amount written out as decided (41 -> "41.00") is validated again, not passed as text."""
    seen: list[Any] = []
    toolset: FunctionToolset[Deps] = FunctionToolset()

    @toolset.tool_plain
    def issue_refund(
        amount: Decimal, currency: str, customer_id: str, case_id: str, order_id: str
    ) -> str:
        """Refund an order to the customer's card."""
        seen.append(amount)
        return f"refunded {amount * 2}"

    agent = Agent(deps_type=Deps, toolsets=[GovernedToolset(toolset, guard=guard)])
    model = scripted(calls(("issue_refund", refund_args(amount=41), "c-1")), said("Done."))
    result = await agent.run("refund please", model=model, deps=DEPS)
    assert seen == [Decimal("41.00")]
    assert type(seen[0]) is Decimal
    assert returns(result.all_messages()) == {"c-1": "refunded 82.00"}
