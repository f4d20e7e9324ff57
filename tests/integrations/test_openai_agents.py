"""`AgentTools` in an OpenAI Agents SDK run, driven by the SDK's scripted model (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from agents import Agent, RunConfig, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call

from conftest import good_facts
from discretion import ConfigurationError
from discretion.integrations import AgentTools

from ._integration_support import BOT, MARIA, ledger_kinds, refund_args

OFFLINE = RunConfig(tracing_disabled=True)


class Shop:
    def __init__(self) -> None:
        self.refunds: list[str] = []
        self.lookups: list[str] = []

        @function_tool
        def issue_refund(
            amount: str, currency: str, customer_id: str, case_id: str, order_id: str
        ) -> str:
            """Refund an order to the customer's card."""
            self.refunds.append(amount)
            return f"refunded {currency} {amount}"

        @function_tool
        def lookup_order(order_id: str) -> str:
            """Look up an order."""
            self.lookups.append(order_id)
            return f"order {order_id}: delivered"

        self.tools = [issue_refund, lookup_order]


def agent_for(guard, shop: Shop, *steps: Any) -> tuple[Agent, AgentTools]:
    governed = AgentTools(guard, actor=BOT)
    model = ScriptedModel([list(step) if isinstance(step, tuple) else [step] for step in steps])
    return Agent(name="support", model=model, tools=governed.wrap(shop.tools)), governed


def refund_call(call_id: str, amount: str = "40.00", **extra: Any) -> Any:
    return function_call("issue_refund", refund_args(amount, **extra), call_id=call_id)


def outputs(result) -> dict[str, str]:
    return {
        item.raw_item["call_id"]: item.output
        for item in result.new_items
        if item.type == "tool_call_output_item"
    }


@pytest.mark.anyio
async def test_an_allowed_call_runs_once_and_an_ungoverned_lookup_runs_untouched(guard):
    shop = Shop()
    turn = (
        refund_call("call_1"),
        function_call("lookup_order", {"order_id": "o-3"}, call_id="call_2"),
    )
    agent, _ = agent_for(guard, shop, turn, assistant_message("Done."))
    result = await Runner.run(agent, "refund please", run_config=OFFLINE)
    assert outputs(result) == {"call_1": "refunded USD 40.00", "call_2": "order o-3: delivered"}
    assert result.final_output == "Done."
    assert shop.refunds == ["40.00"]
    assert shop.lookups == ["o-3"]
    assert ledger_kinds(guard) == ["decision", "execution.started", "execution.succeeded"]


@pytest.mark.anyio
async def test_a_denied_call_never_runs_and_the_model_is_told_why(make_guard):
    guard = make_guard(good_facts(**{"customer.fraud_flag": True}))
    shop = Shop()
    agent, _ = agent_for(guard, shop, refund_call("call_1"), assistant_message("Sorry."))
    result = await Runner.run(agent, "refund please", run_config=OFFLINE)
    assert outputs(result)["call_1"].startswith("Not permitted")
    assert result.final_output == "Sorry."
    assert result.interruptions == []
    assert shop.refunds == []
    assert "execution.started" not in ledger_kinds(guard)


@pytest.mark.anyio
async def test_a_bad_argument_is_refused_with_a_message_the_model_can_act_on(guard):
    shop = Shop()
    turn = refund_call("call_1", currency="EUR")
    agent, _ = agent_for(guard, shop, turn, assistant_message("Let me fix that."))
    result = await Runner.run(agent, "refund please", run_config=OFFLINE)
    assert "EUR" in outputs(result)["call_1"]
    assert "Correct the arguments" in outputs(result)["call_1"]
    assert result.final_output == "Let me fix that."
    assert shop.refunds == []


@pytest.mark.anyio
async def test_a_routed_call_pauses_and_runs_once_after_a_person_approves(guard):
    shop = Shop()
    agent, governed = agent_for(
        guard, shop, refund_call("call_1", "60.00"), assistant_message("Refunded.")
    )
    paused = await Runner.run(agent, "refund please", run_config=OFFLINE)
    [item] = paused.interruptions
    assert item.name == "issue_refund"
    assert shop.refunds == []
    [pending] = guard.approvals.list(status="pending")

    # Nobody has answered yet: the run stays paused.
    still = await governed.resume(paused)
    assert len(still.get_interruptions()) == 1

    guard.approvals.approve(pending.id, approver=MARIA, note="photos", amount=None)
    state = await governed.resume(paused)
    done = await Runner.run(agent, state, run_config=OFFLINE)
    assert outputs(done)["call_1"] == "refunded USD 60.00"
    assert done.final_output == "Refunded."
    assert shop.refunds == ["60.00"]
    assert ledger_kinds(guard) == [
        "decision",
        "approval.approved",
        "execution.queued",
        "execution.started",
        "execution.succeeded",
    ]


@pytest.mark.anyio
async def test_an_approved_lower_amount_is_what_runs(guard):
    from discretion import Money

    shop = Shop()
    agent, governed = agent_for(
        guard, shop, refund_call("call_1", "60.00"), assistant_message("Refunded.")
    )
    paused = await Runner.run(agent, "refund please", run_config=OFFLINE)
    [pending] = guard.approvals.list(status="pending")
    guard.approvals.approve(
        pending.id, approver=MARIA, note="partial", amount=Money.of("45.00", "USD")
    )
    done = await Runner.run(agent, await governed.resume(paused), run_config=OFFLINE)
    assert outputs(done)["call_1"] == "refunded USD 45.00"
    assert shop.refunds == ["45.00"]


@pytest.mark.anyio
async def test_a_rejected_call_never_runs_and_the_model_is_told_who_refused(guard):
    shop = Shop()
    agent, governed = agent_for(
        guard, shop, refund_call("call_1", "60.00"), assistant_message("Sorry.")
    )
    paused = await Runner.run(agent, "refund please", run_config=OFFLINE)
    [pending] = guard.approvals.list(status="pending")
    guard.approvals.reject(pending.id, approver=MARIA, note="abuse")
    done = await Runner.run(agent, await governed.resume(paused), run_config=OFFLINE)
    assert "rejected by maria (tier1): abuse" in outputs(done)["call_1"]
    assert done.final_output == "Sorry."
    assert shop.refunds == []
    assert "execution.started" not in ledger_kinds(guard)


def test_wrapping_a_tool_the_pack_neither_maps_nor_lists_is_refused(guard):
    @function_tool
    def wire_money(amount: str) -> str:
        """Wire money."""
        return amount

    with pytest.raises(ConfigurationError, match="tool 'wire_money' is neither mapped"):
        AgentTools(guard, actor=BOT).wrap([wire_money])


def failing_refund(attempts: list[str], **options: Any) -> Any:
    @function_tool(**options)
    def issue_refund(
        amount: str, currency: str, customer_id: str, case_id: str, order_id: str
    ) -> str:
        """Refund an order to the customer's card."""
        attempts.append(amount)
        raise RuntimeError("payment provider timeout: refund not issued")

    return issue_refund


@pytest.mark.anyio
async def test_a_tool_that_raises_is_recorded_as_failed_and_its_retry_runs_again(guard):
    attempts: list[str] = []
    governed = AgentTools(guard, actor=BOT)
    [tool] = governed.wrap([failing_refund(attempts)])
    for _ in range(2):
        model = ScriptedModel([[refund_call("call_1")], [assistant_message("Sorry.")]])
        result = await Runner.run(
            Agent(name="support", model=model, tools=[tool]), "refund", run_config=OFFLINE
        )
        # The model is answered as the SDK answers a tool that raises.
        assert "error occurred" in outputs(result)["call_1"]
    assert attempts == ["40.00", "40.00"]
    assert ledger_kinds(guard) == [
        "decision",
        "execution.started",
        "execution.failed",
        "execution.started",
        "execution.failed",
    ]


@pytest.mark.anyio
async def test_a_tool_without_a_failure_message_raises_out_of_the_run_recorded_as_failed(guard):
    attempts: list[str] = []
    [tool] = AgentTools(guard, actor=BOT).wrap(
        [failing_refund(attempts, failure_error_function=None)]
    )
    model = ScriptedModel([[refund_call("call_1")], [assistant_message("Sorry.")]])
    with pytest.raises(Exception, match="payment provider timeout"):
        await Runner.run(
            Agent(name="support", model=model, tools=[tool]), "refund", run_config=OFFLINE
        )
    assert attempts == ["40.00"]
    assert ledger_kinds(guard)[-1] == "execution.failed"


@pytest.fixture
def traced(monkeypatch):
    """Runs traced with no processor: trace ids are made, nothing is exported."""
    from agents.tracing import get_trace_provider

    monkeypatch.setattr(get_trace_provider()._multi_processor, "_processors", ())
    return RunConfig()


async def conversation(governed: AgentTools, shop: Shop, call: Any, config: RunConfig) -> str:
    model = ScriptedModel([[call], [assistant_message("Done.")]])
    agent = Agent(name="support", model=model, tools=governed.wrap(shop.tools))
    return outputs(await Runner.run(agent, "refund please", run_config=config))["call_0"]


@pytest.mark.anyio
async def test_a_call_id_another_traced_run_used_is_a_new_call(guard, traced):
    shop = Shop()
    governed = AgentTools(guard, actor=BOT)
    first = refund_call("call_0")
    other = refund_call("call_0", case_id="case-2", order_id="o-7")
    assert await conversation(governed, shop, first, traced) == "refunded USD 40.00"
    assert await conversation(governed, shop, other, traced) == "refunded USD 40.00"
    assert await conversation(governed, shop, first, traced) == "refunded USD 40.00"
    assert shop.refunds == ["40.00", "40.00", "40.00"]


@pytest.mark.anyio
async def test_without_tracing_a_reused_call_id_is_keyed_by_its_case_and_arguments(guard):
    shop = Shop()
    governed = AgentTools(guard, actor=BOT)
    first = refund_call("call_0")
    other = refund_call("call_0", case_id="case-2", order_id="o-7")
    assert await conversation(governed, shop, first, OFFLINE) == "refunded USD 40.00"
    assert await conversation(governed, shop, other, OFFLINE) == "refunded USD 40.00"
    # The same refund on the same case again: a retry, replayed, as for any call keyed so.
    assert await conversation(governed, shop, first, OFFLINE) == "refunded USD 40.00"
    assert shop.refunds == ["40.00", "40.00"]


@pytest.mark.anyio
async def test_a_traced_run_paused_for_approval_runs_its_call_once_when_resumed(guard, traced):
    shop = Shop()
    agent, governed = agent_for(
        guard, shop, refund_call("call_0", "60.00"), assistant_message("Refunded.")
    )
    paused = await Runner.run(agent, "refund please", run_config=traced)
    [pending] = guard.approvals.list(status="pending")
    guard.approvals.approve(pending.id, approver=MARIA, note="photos", amount=None)
    done = await Runner.run(agent, await governed.resume(paused), run_config=traced)
    assert outputs(done)["call_0"] == "refunded USD 60.00"
    assert shop.refunds == ["60.00"]
    assert [d.id for d in guard.approvals.list()] == [pending.id]


def test_a_read_only_tools_schema_is_not_read_so_a_shape_not_read_is_no_error(guard):
    """Conditional keywords make a governed tool's schema unreadable; a lookup's is never read."""
    import dataclasses

    @function_tool
    def lookup_order(order_id: str) -> str:
        """Look an order up."""
        return order_id

    conditional = dataclasses.replace(
        lookup_order,
        params_json_schema={
            **lookup_order.params_json_schema,
            "if": {"properties": {"order_id": {"const": "x"}}},
            "then": {"required": ["order_id"]},
        },
    )
    [wrapped] = AgentTools(guard, actor=BOT).wrap([conditional])
    assert wrapped is conditional
