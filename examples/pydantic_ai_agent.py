"""A Pydantic AI support agent whose refund tool is governed, run offline.

    python examples/pydantic_ai_agent.py

A `FunctionModel` proposes three refunds from acme's sample cases: one inside policy runs at
once, one the pack routes to a tier2 supervisor is deferred until she approves it (for a lower
amount) and then runs once, and one on a fraud hold never runs.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

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

from discretion import Actor, Guard, Money, SqlStore, load_pack
from discretion.context import SqliteCaseStore
from discretion.integrations import GovernedToolset

ACME = Path(__file__).resolve().parent / "acme"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # the acme cases describe this moment
SUPERVISOR = Actor(id="dana.reyes", role="tier2", is_ai=False)
REFUNDS: list[str] = []

toolset: FunctionToolset[None] = FunctionToolset()


@toolset.tool_plain
def issue_refund(amount: str, currency: str, customer_id: str, case_id: str, order_id: str) -> str:
    """Refund money to the customer's original payment method for an order."""
    REFUNDS.append(f"{currency} {amount} on {order_id}")
    return f"Refunded {currency} {amount} on order {order_id}."


def model_for(case: str, customer: str, order: str, amount: str) -> FunctionModel:
    arguments = {"amount": amount, "currency": "USD", "customer_id": customer}
    arguments |= {"case_id": case, "order_id": order}
    replies = iter(
        [
            ModelResponse(parts=[ToolCallPart("issue_refund", arguments, tool_call_id=case)]),
            ModelResponse(parts=[TextPart(f"Ticket {case} handled.")]),
        ]
    )
    return FunctionModel(lambda messages, info: next(replies))


def told(messages: list, case: str) -> str:
    for message in messages:
        for part in message.parts:
            if isinstance(part, ToolReturnPart) and part.tool_call_id == case:
                return str(part.content)
    return ""


async def main() -> int:
    guard = Guard(
        load_pack(ACME / "pack"),
        store=SqlStore("sqlite://"),
        context=SqliteCaseStore.from_sql(ACME / "cases.sql"),
        clock=lambda: NOW,
    )
    actor = Actor(id="acme-assist", role="ai_agent")
    governed = GovernedToolset(toolset, guard=guard, actor=actor)
    agent = Agent(toolsets=[governed], output_type=[str, DeferredToolRequests])
    for case, customer, order, amount in [
        ("K-70003", "C-1003", "A-50003", "64.99"),
        ("K-70007", "C-1007", "A-50007", "649.00"),
        ("K-70031", "C-1031", "A-50031", "199.00"),
    ]:
        model = model_for(case, customer, order, amount)
        result = await agent.run(f"Please help with ticket {case}.", model=model)
        if isinstance(result.output, DeferredToolRequests):
            approval_id = result.output.metadata[case]["approval_id"]
            print(f"{case}: deferred for approval {approval_id}")
            guard.approvals.approve(
                approval_id,
                approver=SUPERVISOR,
                note="leak on video",
                amount=Money.of("500", "USD"),
            )
            results = await governed.results(result.output)
            result = await agent.run(
                model=model, message_history=result.all_messages(), deferred_tool_results=results
            )
            ran = told(result.new_messages(), case)
            print(f"{case}: approved by {SUPERVISOR.id}, ran once: {ran}")
        else:
            print(f"{case}: told the agent: {told(result.all_messages(), case)}")
    print(f"Money moved {len(REFUNDS)} times: {'; '.join(REFUNDS)}")
    print(f"Ledger verified: {guard.store.verify()} records")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
