"""`DiscretionMiddleware` in a LangChain v1 `create_agent` agent, both modes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from conftest import good_facts, shop_pack_with
from discretion import ConfigurationError
from discretion.integrations import DiscretionMiddleware, tool_callables

from ._integration_support import (
    BOT,
    MARIA,
    async_refund_tool,
    calls,
    camel_refund_tool,
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
MARIA_JSON = json.loads(MARIA.model_dump_json())


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


def run_interactive(guard, shop, answer: Any, approver: Any = MARIA_JSON):
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
    config = {"configurable": {**THREAD["configurable"], "discretion_approver": approver}}
    resumed = agent.invoke(Command(resume=answer), config)
    return agent, pending, resumed


def edit(amount: str, **changes: Any) -> dict[str, Any]:
    edited = {"name": "issue_refund", "args": refund_args(amount, **changes)}
    return {"decisions": [{"type": "edit", "edited_action": edited, "message": "goodwill"}]}


def test_interactive_interrupt_is_a_langchain_hitl_request(guard, shop):
    _, pending, _ = run_interactive(guard, shop, {"decisions": [{"type": "approve"}]})
    request = pending.value
    [action] = request["action_requests"]
    assert action["name"] == "issue_refund"
    assert action["args"] == refund_args("60.00")
    approval_id = request["discretion"]["approval_id"]
    assert f"Approval id: {approval_id}" in action["description"]
    assert request["review_configs"] == [
        {"action_name": "issue_refund", "allowed_decisions": ["approve", "edit", "reject"]}
    ]
    assert request["discretion"]["required_role"] == "tier1"
    assert request["discretion"]["amount"] == {"amount": "60.00", "currency": "USD"}


def test_interactive_approve_in_hitl_format_runs_once_as_the_approver(guard, shop):
    agent, pending, resumed = run_interactive(guard, shop, {"decisions": [{"type": "approve"}]})
    assert shop.refunds == ["60.00"]
    assert tool_messages(resumed)[0].content == "refunded USD 60.00"
    approval = guard.approvals.get(pending.value["discretion"]["approval_id"])
    assert approval.status == "approved"
    assert approval.decided_by == "maria"
    assert "without a note" in approval.note
    # Resuming the finished thread again runs nothing more.
    assert not agent.get_state(THREAD).next
    assert ledger_kinds(guard).count("execution.started") == 1


def test_interactive_edit_that_lowers_the_amount_runs_once_with_it(guard, shop):
    _, pending, resumed = run_interactive(guard, shop, edit("45.00"))
    approval_id = pending.value["discretion"]["approval_id"]
    assert shop.refunds == ["45.00"]
    [message] = tool_messages(resumed)
    assert message.content == "refunded USD 45.00"
    assert resumed["messages"][-1].content == "Your refund is on its way."

    approval = guard.approvals.get(approval_id)
    assert approval.status == "approved"
    assert approval.decided_role == "tier1"
    assert approval.note == "goodwill"
    assert str(approval.amount.amount) == "45.00"

    records = list(guard.store.export())
    assert [r["kind"] for r in records] == [
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
    assert {r["subject_id"] for r in records} == {approval_id}
    assert guard.store.verify() == 5


def asked_again(resumed: dict[str, Any]) -> str:
    """The reason the run paused again: the answer it was resumed with was not accepted."""
    [pending] = resumed["__interrupt__"]
    error = pending.value["discretion"]["error"]
    assert (
        f"The last answer was not accepted: {error}"
        in (pending.value["action_requests"][0]["description"])
    )
    return error


def test_an_edit_may_not_raise_the_amount(guard, shop):
    agent, _, resumed = run_interactive(guard, shop, edit("90.00"))
    assert "lower" in asked_again(resumed)
    assert shop.refunds == []
    # The thread is not stuck on the refused answer: a corrected one runs the call once.
    config = {"configurable": {**THREAD["configurable"], "discretion_approver": MARIA_JSON}}
    agent.invoke(Command(resume=edit("50.00")), config)
    assert shop.refunds == ["50.00"]


def test_an_edit_may_change_only_the_amount(guard, shop):
    _, _, resumed = run_interactive(guard, shop, edit("45.00", order_id="o-9"))
    assert re.search(r"only the amount .'amount'.*order_id", asked_again(resumed))
    assert shop.refunds == []


def test_interactive_reject_in_hitl_format_never_runs_the_tool(guard, shop):
    answer = {"decisions": [{"type": "reject", "message": "abuse"}]}
    _, pending, resumed = run_interactive(guard, shop, answer)
    [message] = tool_messages(resumed)
    assert shop.refunds == []
    assert message.status == "error"
    assert "rejected by maria (tier1): abuse" in message.content
    assert guard.approvals.get(pending.value["discretion"]["approval_id"]).status == "rejected"
    assert "execution.started" not in ledger_kinds(guard)


def test_a_single_per_call_decision_with_its_own_approver_is_accepted(guard, shop):
    answer = {"type": "approve", "approver": MARIA_JSON, "message": "photos show it"}
    _, pending, _ = run_interactive(guard, shop, answer, approver=None)
    assert shop.refunds == ["60.00"]
    assert guard.approvals.get(pending.value["discretion"]["approval_id"]).note == "photos show it"


def test_the_configured_approver_stands_over_one_the_answer_names(guard, shop):
    # The app sets the signed-in person (maria, tier1); whoever writes the resume value may not
    # approve as someone else, or as a higher role.
    fiona = {"id": "fiona", "role": "manager", "is_ai": False}
    answer = {"decisions": [{"type": "approve", "approver": fiona}]}
    _, pending, resumed = run_interactive(guard, shop, answer)
    assert "names approver fiona (manager)" in asked_again(resumed)
    assert "maria (tier1)" in asked_again(resumed)
    assert shop.refunds == []
    approval = guard.approvals.get(pending.value["discretion"]["approval_id"])
    assert approval.status == "pending"

    # Naming the configured approver again is no conflict.
    same = {"decisions": [{"type": "approve", "approver": MARIA_JSON}]}
    _, _, resumed = run_interactive(guard, shop, same)
    assert tool_messages(resumed)[0].content == "refunded USD 60.00"


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        ({"approve": True}, "resume with LangChain's human-in-the-loop decision"),
        ({"decisions": []}, "exactly one decision"),
        ({"decisions": [{"type": "respond", "message": "hi"}]}, "human-in-the-loop decision"),
        ({"decisions": [{"type": "edit"}]}, 'needs "edited_action"'),
        ("yes", "human-in-the-loop decision"),
    ],
)
def test_a_bad_resume_value_asks_again_saying_why(guard, shop, answer, match):
    _, _, resumed = run_interactive(guard, shop, answer)
    assert match in asked_again(resumed)
    assert shop.refunds == []
    assert ledger_kinds(guard) == ["decision"]


def test_a_resume_without_an_approver_names_where_to_put_one(guard, shop):
    answer = {"decisions": [{"type": "approve"}]}
    _, _, resumed = run_interactive(guard, shop, answer, approver=None)
    assert "discretion_approver" in asked_again(resumed)
    assert shop.refunds == []


def test_an_approver_without_authority_is_refused_and_one_with_it_is_asked(guard, shop):
    bob = {"id": "bob", "role": "ai_agent", "is_ai": True}
    answer = {"decisions": [{"type": "approve"}]}
    agent, _, resumed = run_interactive(guard, shop, answer, approver=bob)
    assert "approver 'bob' (ai_agent) is an AI actor" in asked_again(resumed)
    assert shop.refunds == []
    config = {"configurable": {**THREAD["configurable"], "discretion_approver": MARIA_JSON}}
    done = agent.invoke(Command(resume=answer), config)
    assert tool_messages(done)[0].content == "refunded USD 60.00"
    assert shop.refunds == ["60.00"]


def test_interactive_mode_without_a_checkpointer_fails_before_anything_runs(guard, shop):
    agent = agent_for(
        guard, shop, calls(("issue_refund", refund_args("60.00"), "c-1")), mode="interactive"
    )
    with pytest.raises(ConfigurationError, match="checkpointer"):
        agent.invoke(ask())
    assert ledger_kinds(guard) == []


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
    config = {"configurable": {**THREAD["configurable"], "discretion_approver": MARIA_JSON}}
    resumed = await agent.ainvoke(Command(resume=edit("50.00")), config)
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


def unknown_lookup_guard(make_guard, tmp_path):
    # A pack that does not list lookup_order as read-only: by default its calls route.
    return make_guard(policy=shop_pack_with(tmp_path, "ungoverned_tools: [lookup_order]\n", ""))


def test_exclude_leaves_a_read_only_lookup_alone(make_guard, tmp_path, shop):
    guard = unknown_lookup_guard(make_guard, tmp_path)
    middleware = DiscretionMiddleware(guard, actor=BOT, exclude=["lookup_order"])
    turn = calls(
        ("lookup_order", {"order_id": "o-3"}, "c-lookup"),
        ("issue_refund", refund_args(), "c-refund"),
    )
    agent = create_agent(scripted(turn, "Done."), shop.tools, middleware=[middleware])
    by_id = {m.tool_call_id: m for m in tool_messages(agent.invoke(ask()))}
    assert by_id["c-lookup"].content == "order o-3: delivered"
    assert by_id["c-refund"].content == "refunded USD 40.00"
    assert shop.lookups == ["o-3"]
    assert ledger_kinds(guard).count("decision") == 1


def test_a_tool_left_out_of_tools_is_still_decided_when_the_pack_does_not_list_it(
    make_guard, tmp_path, shop
):
    guard = unknown_lookup_guard(make_guard, tmp_path)
    middleware = DiscretionMiddleware(guard, actor=BOT, tools=["issue_refund"])
    turn = calls(
        ("lookup_order", {"order_id": "o-3"}, "c-lookup"),
        ("issue_refund", refund_args(), "c-refund"),
    )
    agent = create_agent(scripted(turn, "Done."), shop.tools, middleware=[middleware])
    by_id = {m.tool_call_id: m for m in tool_messages(agent.invoke(ask()))}
    assert by_id["c-refund"].content == "refunded USD 40.00"
    # Unmapped and not read-only: it routes as the pack says unknown tools do, and never ran.
    assert shop.lookups == []
    assert "lookup_order" in str(by_id["c-lookup"].content)
    assert ledger_kinds(guard).count("decision") == 2


def test_a_tool_filter_never_exempts_a_tool_the_pack_maps(make_guard, tmp_path, shop):
    guard = unknown_lookup_guard(make_guard, tmp_path)
    middleware = DiscretionMiddleware(guard, actor=BOT, tools=[shop.tools[0]])
    assert middleware.governs("issue_refund")
    # Left out of tools=, a tool the pack neither maps nor lists as read-only is decided still:
    # one added to the agent later and never mapped does not run unasked.
    assert middleware.governs("lookup_order")
    assert not DiscretionMiddleware(guard, actor=BOT, exclude=["lookup_order"]).governs(
        "lookup_order"
    )
    with pytest.raises(ConfigurationError, match="exclude= names issue_refund"):
        DiscretionMiddleware(guard, exclude=["issue_refund"])
    with pytest.raises(ConfigurationError, match="not both"):
        DiscretionMiddleware(guard, tools=["issue_refund"], exclude=["lookup_order"])
    with pytest.raises(ConfigurationError, match="'lookup_order' is neither mapped"):
        DiscretionMiddleware(guard, tools=["lookup_order"])


def test_a_stateless_agent_reusing_call_ids_refunds_each_customer_once(guard, shop):
    # Without a thread or a run id, keys come from the case, tool and arguments.
    for customer, amount in (("c-1", "40.00"), ("c-2", "30.00"), ("c-1", "40.00")):
        turn = calls(("issue_refund", refund_args(amount, customer_id=customer), "call_0"))
        result = agent_for(guard, shop, turn, "Done.").invoke(ask())
        assert tool_messages(result)[0].status == "success"
    assert shop.refunds == ["40.00", "30.00"]


def test_a_run_id_scopes_call_ids_when_there_is_no_thread(guard, shop):
    run = {"run_id": "0b4f7e84-4d4a-4c55-9d3e-5a4ea3f0c001"}
    turn = calls(("issue_refund", refund_args(), "call_0"))
    agent_for(guard, shop, turn, "Done.").invoke(ask(), run)
    key = f"bot-1:issue_refund:{run['run_id']}:call_0"
    assert guard.executions.get(key).result == "refunded USD 40.00"


def test_a_bad_argument_is_an_error_message_and_the_run_goes_on(guard, shop):
    turn = calls(("issue_refund", refund_args(currency="EUR"), "c-1"))
    result = agent_for(guard, shop, turn, "Let me fix that.").invoke(ask())
    [message] = tool_messages(result)
    assert message.status == "error"
    assert "EUR" in message.content
    assert "Correct the arguments" in message.content
    assert result["messages"][-1].content == "Let me fix that."
    assert shop.refunds == []
    assert ledger_kinds(guard) == []


def test_a_call_id_reused_in_a_thread_for_another_call_is_an_error_message(guard, shop):
    saver = InMemorySaver()
    for amount in ("40.00", "30.00"):
        turn = calls(("issue_refund", refund_args(amount), "call_0"))
        result = agent_for(guard, shop, turn, "Done.", checkpointer=saver).invoke(ask(), THREAD)
    message = tool_messages(result)[-1]
    assert message.status == "error"
    assert "already used for a different proposal" in message.content
    assert shop.refunds == ["40.00"]


def test_a_field_given_again_under_its_alias_never_reaches_the_tool(guard):
    paid: list[str] = []
    agent = create_agent(
        scripted(
            calls(("issue_refund", refund_args(orderId="o-9"), "c-twice")),
            "Done.",
        ),
        [camel_refund_tool(paid)],
        middleware=[DiscretionMiddleware(guard, actor=BOT)],
    )
    [message] = tool_messages(agent.invoke(ask()))
    assert message.status == "error"
    assert "given twice" in message.content
    assert paid == []
    assert ledger_kinds(guard) == []
