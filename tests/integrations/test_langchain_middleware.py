"""`DiscretionMiddleware` in a LangChain v1 `create_agent` agent, both modes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from conftest import good_facts, shop_pack_with
from discretion import ApprovalError, ConfigurationError
from discretion.integrations import ApprovalAnswer, DiscretionMiddleware, tool_callables

from ._integration_support import (
    BOT,
    MARIA,
    async_refund_tool,
    calls,
    ledger_kinds,
    refund_args,
    scripted,
)


class Shop:
    def __init__(self) -> None:
        self.refunds: list[str] = []
        self.lookups: list[str] = []

        @tool
        def issue_refund(
            amount: str, currency: str, customer_id: str, case_id: str, order_id: str
        ) -> str:
            """Refund an order to the customer's card."""
            self.refunds.append(amount)
            return f"refunded {currency} {amount}"

        @tool
        def lookup_order(order_id: str) -> str:
            """Look up an order."""
            self.lookups.append(order_id)
            return f"order {order_id}: delivered"

        self.tools = [issue_refund, lookup_order]


@pytest.fixture
def shop() -> Shop:
    return Shop()


def agent_for(guard, shop, *replies, mode="async", checkpointer=None):
    return create_agent(
        scripted(*replies),
        shop.tools,
        middleware=[DiscretionMiddleware(guard, mode=mode, actor=BOT)],
        checkpointer=checkpointer,
    )


def tool_messages(result: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in result["messages"] if isinstance(m, ToolMessage)]


def ask(text: str = "please refund my order") -> dict[str, Any]:
    return {"messages": [HumanMessage(text)]}


THREAD = {"configurable": {"thread_id": "ticket-1"}}


def test_allowed_routed_denied_and_ungoverned_calls_in_one_turn(make_guard, shop):
    guard = make_guard()
    agent = agent_for(
        guard,
        shop,
        calls(
            ("issue_refund", refund_args(), "c-allow"),
            ("issue_refund", refund_args("60.00", order_id="o-2"), "c-route"),
            ("lookup_order", {"order_id": "o-3"}, "c-lookup"),
        ),
        "All done.",
    )
    result = agent.invoke(ask())
    by_id = {m.tool_call_id: m for m in tool_messages(result)}
    assert by_id["c-allow"].content == "refunded USD 40.00"
    assert by_id["c-route"].artifact["approval_id"] in by_id["c-route"].content
    assert by_id["c-lookup"].content == "order o-3: delivered"
    assert shop.refunds == ["40.00"]
    assert shop.lookups == ["o-3"]
    # The ungoverned lookup left no decision.
    assert guard.store.find_decision(BOT.id, "lookup_order:c-lookup") is None
    assert ledger_kinds(guard).count("decision") == 2


def test_a_denied_call_returns_an_error_tool_message(make_guard, shop):
    guard = make_guard(good_facts(**{"customer.fraud_flag": True}))
    agent = agent_for(guard, shop, calls(("issue_refund", refund_args(), "c-1")), "Sorry.")
    [message] = tool_messages(agent.invoke(ask()))
    assert message.status == "error"
    assert message.artifact["outcome"] == "deny"
    assert shop.refunds == []


def test_a_replayed_tool_call_does_not_run_the_tool_again(guard, shop):
    turn = calls(("issue_refund", refund_args(), "c-1"))
    agent_for(guard, shop, turn, "Refunded.").invoke(ask())
    # The same model turn replayed (a retried run, another worker): the tool does not run again.
    result = agent_for(guard, shop, turn, "Refunded.").invoke(ask())
    [message] = tool_messages(result)
    assert message.content == "refunded USD 40.00"
    assert shop.refunds == ["40.00"]
    assert ledger_kinds(guard).count("execution.started") == 1


def test_async_mode_approved_call_runs_later_through_the_outbox(guard, shop):
    agent = agent_for(guard, shop, calls(("issue_refund", refund_args("60.00"), "c-1")), "Sent.")
    [message] = tool_messages(agent.invoke(ask()))
    approval_id = message.artifact["approval_id"]
    assert shop.refunds == []
    guard.approvals.approve(approval_id, approver=MARIA, note="loyal customer")
    [execution] = guard.executions.run_pending(tool_callables(shop.tools))
    assert execution.result == "refunded USD 60.00"
    assert guard.executions.run_pending(tool_callables(shop.tools)) == []
    assert shop.refunds == ["60.00"]


def test_an_unknown_tool_governed_by_default_routes(make_guard, tmp_path, shop):
    pack = shop_pack_with(tmp_path, "ungoverned_tools: [lookup_order]\n", "")
    guard = make_guard(policy=pack)
    agent = agent_for(guard, shop, calls(("lookup_order", {"order_id": "o-1"}, "c-1")), "Ok.")
    [message] = tool_messages(agent.invoke(ask()))
    assert shop.lookups == []
    assert message.artifact["rules"] == ["discretion.unknown-action"]
    assert message.artifact["outcome"] == "route"


def run_interactive(guard, shop, answer: dict[str, Any]):
    saver = InMemorySaver()
    agent = agent_for(
        guard,
        shop,
        calls(("issue_refund", refund_args("60.00"), "c-1")),
        "Your refund is on its way.",
        mode="interactive",
        checkpointer=saver,
    )
    paused = agent.invoke(ask(), THREAD)
    [pending] = paused["__interrupt__"]
    assert shop.refunds == []
    resumed = agent.invoke(Command(resume=answer), THREAD)
    return agent, pending, resumed


def test_interactive_resume_with_an_edited_amount_runs_once_and_records_the_approver(guard, shop):
    answer = ApprovalAnswer(approve=True, approver=MARIA, note="goodwill", amount="45.00")
    agent, pending, resumed = run_interactive(guard, shop, answer.model_dump(mode="json"))
    question = pending.value
    assert question["type"] == "discretion.approval"
    assert question["required_role"] == "tier1"
    assert question["amount"] == {"amount": "60.00", "currency": "USD"}
    assert question["arguments"]["amount"] == "60.00"
    approval_id = question["approval_id"]

    assert shop.refunds == ["45.00"]
    [message] = tool_messages(resumed)
    assert message.content == "refunded USD 45.00"
    assert resumed["messages"][-1].content == "Your refund is on its way."

    approval = guard.approvals.get(approval_id)
    assert approval.status == "approved"
    assert approval.decided_by == "maria"
    assert approval.decided_role == "tier1"
    assert str(approval.amount.amount) == "45.00"

    records = list(guard.store.export())
    kinds = [r["kind"] for r in records]
    assert kinds == [
        "decision",
        "approval.approved",
        "execution.queued",
        "execution.started",
        "execution.succeeded",
    ]
    approved = records[1]["body"]
    assert approved["by"]["id"] == "maria"
    assert approved["amount"] == {"amount": "45.00", "currency": "USD"}
    assert approved["requested_amount"] == {"amount": "60.00", "currency": "USD"}
    assert records[2]["body"]["arguments"]["amount"] == "45.00"
    assert records[4]["body"]["result"] == "refunded USD 45.00"
    assert {r["subject_id"] for r in records} == {approval_id}
    assert guard.store.verify() == 5

    # Resuming the finished thread again runs nothing more.
    state = agent.get_state(THREAD)
    assert not state.next
    assert shop.refunds == ["45.00"]


def test_interactive_reject_never_runs_the_tool(guard, shop):
    answer = {"approve": False, "approver": json.loads(MARIA.model_dump_json()), "note": "abuse"}
    _, pending, resumed = run_interactive(guard, shop, answer)
    [message] = tool_messages(resumed)
    assert shop.refunds == []
    assert message.status == "error"
    assert "rejected by maria (tier1): abuse" in message.content
    assert guard.approvals.get(pending.value["approval_id"]).status == "rejected"
    assert "execution.started" not in ledger_kinds(guard)


def test_interactive_answer_from_an_approver_without_authority_fails(guard, shop):
    bob = {"id": "bob", "role": "ai_agent", "is_ai": True}
    with pytest.raises(ApprovalError):
        run_interactive(guard, shop, {"approve": True, "approver": bob, "note": "ok"})
    assert shop.refunds == []


def test_interactive_mode_needs_an_answer_from_a_person_with_a_name(guard, shop):
    with pytest.raises(ValueError, match="approver"):
        run_interactive(guard, shop, {"approve": True, "note": "ok"})
    assert shop.refunds == []


def test_a_middleware_mode_must_be_known(guard):
    with pytest.raises(ConfigurationError, match="mode"):
        DiscretionMiddleware(guard, mode="later")


@pytest.mark.anyio
async def test_async_agent_interactive_resume_runs_the_tool_once(guard):
    ran: list[str] = []
    issue_refund = async_refund_tool(ran)
    agent = create_agent(
        scripted(calls(("issue_refund", refund_args("60.00"), "c-1")), "Done."),
        [issue_refund],
        middleware=[DiscretionMiddleware(guard, mode="interactive", actor=BOT)],
        checkpointer=InMemorySaver(),
    )
    paused = await agent.ainvoke(ask(), THREAD)
    assert paused["__interrupt__"]
    assert ran == []
    answer = ApprovalAnswer(approve=True, approver=MARIA, note="ok", amount="50.00")
    resumed = await agent.ainvoke(Command(resume=answer.model_dump(mode="json")), THREAD)
    assert ran == ["50.00"]
    assert tool_messages(resumed)[0].content == "refunded 50.00"
    assert ledger_kinds(guard).count("execution.succeeded") == 1


def test_call_ids_repeated_in_another_thread_are_other_calls(guard, shop):
    # Some models number their calls call_0, call_1 in every conversation.
    saver = InMemorySaver()
    for thread, amount in (("ticket-1", "40.00"), ("ticket-2", "30.00")):
        agent = agent_for(
            guard,
            shop,
            calls(("issue_refund", refund_args(amount), "call_0")),
            "Done.",
            checkpointer=saver,
        )
        agent.invoke(ask(), {"configurable": {"thread_id": thread}})
    assert shop.refunds == ["40.00", "30.00"]
    assert guard.executions.get("bot-1:issue_refund:ticket-1:call_0").result == "refunded USD 40.00"
    assert guard.executions.get("bot-1:issue_refund:ticket-2:call_0").result == "refunded USD 30.00"
