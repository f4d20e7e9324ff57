"""An OpenAI Agents SDK support agent whose refund tool is governed, run offline.

    python examples/openai_agents_agent.py

A scripted model (the SDK's `ScriptedModel`) proposes three refunds from acme's sample cases:
one inside policy runs at once, one the pack routes to a tier2 supervisor pauses the run until
she approves it (for a lower amount) and then runs once, and one on a fraud hold never runs.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from agents import Agent, RunConfig, Runner, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call

from discretion import Actor, Guard, Money, SqlStore, load_pack
from discretion.context import SqliteCaseStore
from discretion.integrations import AgentTools

ACME = Path(__file__).resolve().parent / "acme"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # the acme cases describe this moment
SUPERVISOR = Actor(id="dana.reyes", role="tier2", is_ai=False)
OFFLINE = RunConfig(tracing_disabled=True)
REFUNDS: list[str] = []


@function_tool
def issue_refund(amount: str, currency: str, customer_id: str, case_id: str, order_id: str) -> str:
    """Refund money to the customer's original payment method for an order."""
    REFUNDS.append(f"{currency} {amount} on {order_id}")
    return f"Refunded {currency} {amount} on order {order_id}."


def refund(case: str, customer: str, order: str, amount: str) -> object:
    arguments = {"amount": amount, "currency": "USD", "customer_id": customer}
    arguments |= {"case_id": case, "order_id": order}
    return function_call("issue_refund", arguments, call_id=f"call-{case}")


async def main() -> int:
    guard = Guard(
        load_pack(ACME / "pack"),
        store=SqlStore("sqlite://"),
        context=SqliteCaseStore.from_sql(ACME / "cases.sql"),
        clock=lambda: NOW,
    )
    governed = AgentTools(guard, actor=Actor(id="acme-assist", role="ai_agent"))
    tickets = [
        ("K-70003", refund("K-70003", "C-1003", "A-50003", "64.99")),
        ("K-70007", refund("K-70007", "C-1007", "A-50007", "649.00")),
        ("K-70031", refund("K-70031", "C-1031", "A-50031", "199.00")),
    ]
    for case, call in tickets:
        model = ScriptedModel([[call], [assistant_message(f"Ticket {case} handled.")]])
        agent = Agent(name="support", model=model, tools=governed.wrap([issue_refund]))
        result = await Runner.run(agent, f"Please help with ticket {case}.", run_config=OFFLINE)
        for item in result.new_items:
            if item.type == "tool_call_output_item":
                print(f"{case}: told the agent: {item.output}")
        if result.interruptions:
            [pending] = guard.approvals.list(status="pending")
            print(f"{case}: paused for approval {pending.id} by a {pending.required_role}")
            guard.approvals.approve(
                pending.id, approver=SUPERVISOR, note="leak on video", amount=Money.of("500", "USD")
            )
            result = await Runner.run(agent, await governed.resume(result), run_config=OFFLINE)
            for item in result.new_items:
                if item.type == "tool_call_output_item":
                    print(f"{case}: approved by {SUPERVISOR.id}, ran once: {item.output}")
    print(f"Money moved {len(REFUNDS)} times: {'; '.join(REFUNDS)}")
    print(f"Ledger verified: {guard.store.verify()} records")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
