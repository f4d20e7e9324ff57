"""Shared pieces of the integration tests: tools that count their runs, a scripted chat model."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool, tool
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from discretion import Actor

BOT = Actor(id="bot-1", role="ai_agent")
MARIA = Actor(id="maria", role="tier1", is_ai=False)


def refund_args(amount: str = "40.00", **extra: Any) -> dict[str, Any]:
    """Arguments of the shop pack's `issue_refund` tool."""
    return {
        "amount": amount,
        "currency": "USD",
        "customer_id": "c-1",
        "case_id": "case-1",
        "order_id": "o-1",
        **extra,
    }


def async_refund_tool(ran: list[str]) -> BaseTool:
    """An async langchain-core `issue_refund` tool that appends each amount it refunds to `ran`."""

    @tool
    async def issue_refund(
        amount: str, currency: str, customer_id: str, case_id: str, order_id: str
    ) -> str:
        """Refund an order."""
        ran.append(amount)
        return f"refunded {amount}"

    return issue_refund


class ScriptedChatModel(GenericFakeChatModel):
    """Answers with scripted messages, one per model call; tools are taken and ignored."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:
        return self


def scripted(*messages: AIMessage | str) -> ScriptedChatModel:
    replies: Iterator[AIMessage | str] = iter(messages)
    return ScriptedChatModel(messages=replies)


def calls(*tool_calls: tuple[str, dict[str, Any], str]) -> AIMessage:
    """An AI message calling tools: (name, args, call id) each."""
    return AIMessage(
        content="",
        tool_calls=[{"name": n, "args": a, "id": i, "type": "tool_call"} for n, a, i in tool_calls],
    )


def ledger_kinds(guard: Any) -> list[str]:
    return [record["kind"] for record in guard.store.export()]


class CamelRefundArgs(BaseModel):
    """The shop's refund arguments as a tool that also reads them in camelCase declares them."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
    amount: str
    currency: str
    customer_id: str
    case_id: str
    order_id: str


def camel_refund_tool(paid: list[str]) -> BaseTool:
    """`issue_refund` whose schema takes each argument by name or by its camelCase alias."""

    @tool(args_schema=CamelRefundArgs)
    def issue_refund(
        amount: str, currency: str, customer_id: str, case_id: str, order_id: str
    ) -> str:
        """Refund an order to the customer's card."""
        paid.append(f"{currency} {amount} on {order_id}")
        return f"refunded {currency} {amount}"

    return issue_refund
