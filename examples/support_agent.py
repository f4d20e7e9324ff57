"""A LangChain support agent whose refund, store-credit and replacement tools are governed.

Run offline (a scripted chat model answers six sample tickets):

    python examples/support_agent.py

With `OPENAI_API_KEY` set (and optionally `OPENAI_BASE_URL`, `OPENAI_MODEL`) and
`pip install langchain-openai`, a real model reads the same tickets. `--db sqlite:///support.db`
keeps the ledger: run it twice and the second run replays each tool call by its id instead of
moving money again.

For every ticket it prints each tool call, the decision on it, what the tool returned, and what
the agent told the customer. Then a supervisor approves the routed refund for a lower amount,
the approved call runs once through the outbox, and the ledger is verified.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool, tool
from pydantic import BaseModel

from discretion import Actor, Guard, Money, SqlStore, load_pack
from discretion.context import SqliteCaseStore
from discretion.integrations import tool_callables

ACME = Path(__file__).resolve().parent / "acme"
# The acme case database describes the world as of this moment.
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
AGENT = Actor(id="acme-assist", role="ai_agent")
SUPERVISOR = Actor(id="dana.reyes", role="tier2", is_ai=False)

SYSTEM_PROMPT = """You are Acme's customer-support agent. Resolve the ticket with one tool call
when money or goods must move: issue_refund, issue_store_credit or create_replacement_order,
with the customer, case and order ids from the ticket and amounts as decimal strings in USD.
Cite an exception reason id (such as refund.carrier-lost) in `reason` only when the facts
support it, and explain in `rationale`. Use lookup_order to read an order first if needed.
A tool answer is the company's decision: follow what it tells you to say, never promise more,
and never call a tool again for a request that is awaiting approval. Then answer the customer
in two sentences."""


# The tools. In production these call the payment and order systems with the idempotency key.

LEDGER: list[str] = []


class CaseArguments(BaseModel):
    """What every money-moving tool is told: the case, and why (the pack reads these)."""

    currency: str
    customer_id: str
    case_id: str
    reason: str | None = None
    rationale: str = ""


class MoneyArguments(CaseArguments):
    """A refund or a store credit: an amount of money against an order."""

    amount: str
    order_id: str


class ReplacementArguments(CaseArguments):
    """A replacement: the order shipped again; item_value is what the goods are worth."""

    item_value: str
    original_order_id: str


@tool(args_schema=MoneyArguments)
def issue_refund(amount: str, currency: str, order_id: str, **_: Any) -> str:
    """Refund money to the customer's original payment method for an order."""
    LEDGER.append(f"refund {currency} {amount} on {order_id}")
    return f"Refunded {currency} {amount} on order {order_id} (ref RF-{len(LEDGER):04d})."


@tool(args_schema=MoneyArguments)
def issue_store_credit(amount: str, currency: str, customer_id: str, **_: Any) -> str:
    """Add goodwill store credit to the customer's Acme account."""
    LEDGER.append(f"credit {currency} {amount} to {customer_id}")
    return f"Added {currency} {amount} store credit to {customer_id} (ref SC-{len(LEDGER):04d})."


@tool(args_schema=ReplacementArguments)
def create_replacement_order(
    item_value: str, currency: str, original_order_id: str, **_: Any
) -> str:
    """Ship the same goods again at no charge; item_value is what the goods are worth."""
    LEDGER.append(f"replacement of {original_order_id} worth {currency} {item_value}")
    return f"Replacement order R-{len(LEDGER):04d} for {original_order_id} ships today."


def lookup_order(database: sqlite3.Connection) -> BaseTool:
    """A read-only look-up: it moves no money, so it is not governed."""

    @tool
    def lookup_order(order_id: str) -> str:
        """Read an order's description, total and newest shipment status."""
        row = database.execute(
            "SELECT o.description, o.total, s.status FROM orders o"
            " LEFT JOIN shipments s ON s.order_id = o.id WHERE o.id = ?"
            " ORDER BY s.status_at DESC LIMIT 1",
            (order_id,),
        ).fetchone()
        if row is None:
            return f"No order {order_id}."
        return f"{order_id}: {row[0]}, USD {row[1] / 100:.2f}, shipment {row[2] or 'none'}."

    return lookup_order


@dataclass(frozen=True)
class Ticket:
    case_id: str
    customer_id: str
    order_id: str
    text: str
    # What the scripted model proposes when running offline: (tool, arguments).
    script: tuple[str, dict[str, Any]]


TICKETS = [
    Ticket(
        "K-70003",
        "C-1003",
        "A-50003",
        "My wireless earbuds (delivered ten days ago) stopped charging. I'd like my 64.99 back.",
        ("issue_refund", {"amount": "64.99"}),
    ),
    Ticket(
        "K-70012",
        "C-1012",
        "A-50012",
        "OnTrac says my running shoes were lost. Please refund the shoes and the shipping.",
        (
            "issue_refund",
            {
                "amount": "89.99",
                "reason": "refund.carrier-lost",
                "rationale": "The carrier confirmed the parcel lost; refund goods and shipping.",
            },
        ),
    ),
    Ticket(
        "K-70007",
        "C-1007",
        "A-50007",
        "The espresso machine I got on Nov 12 leaks from the group head. Full refund please.",
        ("issue_refund", {"amount": "649.00"}),
    ),
    Ticket(
        "K-70031",
        "C-1031",
        "A-50031",
        "The smartwatch box arrived empty! Refund the 199 now.",
        ("issue_refund", {"amount": "199.00"}),
    ),
    Ticket(
        "K-70015",
        "C-1015",
        "A-50015",
        "The mixer bowl arrived cracked. Can you send a new mixer?",
        ("create_replacement_order", {"item_value": "179.00"}),
    ),
    Ticket(
        "K-70042",
        "C-1042",
        "A-50042",
        "My duvet cover has been stuck at the Reno hub for days. This is frustrating.",
        ("issue_store_credit", {"amount": "15.00"}),
    ),
]


def ticket_message(ticket: Ticket) -> str:
    return (
        f"Ticket {ticket.case_id} from customer {ticket.customer_id} about order"
        f" {ticket.order_id}:\n{ticket.text}"
    )


class ScriptedSupportModel(GenericFakeChatModel):
    """The offline model: proposes each ticket's scripted tool call, then answers the customer
    from what the tool (or the guard) said, as a real model following the prompt would."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedSupportModel:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(content=customer_reply(last))
            return ChatResult(generations=[ChatGeneration(message=reply)])
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kw)


def customer_reply(message: ToolMessage) -> str:
    outcome = (message.artifact or {}).get("outcome")
    if outcome == "route":
        return (
            "Thanks for your patience: a specialist is reviewing your request and will get back"
            " to you shortly. I can't confirm the outcome yet."
        )
    if message.status == "error":
        return (
            "I'm sorry, but we can't do that for this order. Our accounts team will contact you"
            " if anything more is needed."
        )
    return f"All set: {message.content} Is there anything else I can help with?"


def scripted_turns(ticket: Ticket) -> Iterator[AIMessage]:
    name, extra = ticket.script
    ids = {"customer_id": ticket.customer_id, "case_id": ticket.case_id}
    order_key = "original_order_id" if name == "create_replacement_order" else "order_id"
    args = {**extra, "currency": "USD", **ids, order_key: ticket.order_id}
    call = {"name": name, "args": args, "id": f"call-{ticket.case_id}", "type": "tool_call"}
    yield AIMessage(content="", tool_calls=[call])


def chat_model(ticket: Ticket) -> BaseChatModel:
    if not os.environ.get("OPENAI_API_KEY"):
        return ScriptedSupportModel(messages=scripted_turns(ticket))
    from langchain_openai import ChatOpenAI  # pip install langchain-openai (in discretion[dev])

    return ChatOpenAI(
        model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
        base_url=os.environ.get("OPENAI_BASE_URL") or None,
        temperature=0,
    )


def show_turn(guard: Guard, thread: str, messages: list[BaseMessage], *, has_run: bool) -> None:
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                args = ", ".join(f"{k}={v!r}" for k, v in call["args"].items())
                print(f"  tool call   {call['name']}({args})")
                decision = guard.store.find_decision(
                    AGENT.id, f"{call['name']}:{thread}:{call['id']}"
                )
                if decision is not None:
                    rules = ", ".join(decision.rules)
                    role = f" -> {decision.required_role}" if decision.required_role else ""
                    print(f"  decision    {decision.outcome.value}{role}  [{rules}]")
        elif isinstance(message, ToolMessage):
            outcome = (message.artifact or {}).get("outcome")
            label = "tool result" if outcome is None else "told agent "
            replayed = " (replayed from the ledger: not run again)"
            print(
                f"  {label} {message.content}{replayed if outcome is None and not has_run else ''}"
            )
    final = messages[-1]
    if isinstance(final, AIMessage) and final.content:
        print(f"  agent said  {final.content}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite://", help="ledger database URL (in memory)")
    args = parser.parse_args(argv)

    moved_before = len(LEDGER)
    cases = SqliteCaseStore.from_sql(ACME / "cases.sql")
    guard = Guard(
        load_pack(ACME / "pack"), store=SqlStore(args.db), context=cases, clock=lambda: NOW
    )
    money_tools = guard.wrap_tools(
        [issue_refund, issue_store_credit, create_replacement_order], actor=AGENT
    )
    # The acme pack routes every tool it does not map, so only money-moving tools are wrapped.
    orders = sqlite3.connect(":memory:", check_same_thread=False)
    orders.executescript((ACME / "cases.sql").read_text(encoding="utf-8"))
    tools = [*money_tools, lookup_order(orders)]
    mode = "OpenAI model" if os.environ.get("OPENAI_API_KEY") else "scripted model (offline)"
    print(f"Acme support agent on pack {guard.pack.name} ({mode}), ledger {args.db}\n")

    for ticket in TICKETS:
        agent = create_agent(chat_model(ticket), tools, system_prompt=SYSTEM_PROMPT)
        print(f"Ticket {ticket.case_id} ({ticket.customer_id}): {ticket.text}")
        ran_before = len(LEDGER)
        # One thread per ticket: tool-call ids are unique within it.
        thread = {"configurable": {"thread_id": ticket.case_id}}
        result = agent.invoke({"messages": [HumanMessage(ticket_message(ticket))]}, thread)
        messages = result["messages"][1:]
        show_turn(guard, ticket.case_id, messages, has_run=len(LEDGER) > ran_before)
        print()

    for approval in guard.approvals.list(status="pending"):
        amount = approval.requested_amount
        edited = Money.of("500.00", "USD") if amount and amount.amount > 500 else None
        guard.approvals.approve(
            approval.id,
            approver=SUPERVISOR,
            note="Leak confirmed on video; partial refund agreed with the customer",
            amount=edited,
        )
        shown = edited or amount
        print(f"Supervisor {SUPERVISOR.id} ({SUPERVISOR.role}) approved {approval.id} for {shown}")
    for execution in guard.executions.run_pending(tool_callables(money_tools)):
        print(f"  approved call ran once: {execution.tool} -> {execution.result}")

    records = guard.store.verify()
    moved = len(LEDGER) - moved_before
    print(f"\nLedger verified: {records} records; money moved {moved} times in this run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
