"""What governing a tool adds per call: each front-end against calling the tool directly.

Run: python benchmarks/tools.py [--n 2000]

For the decorator (on a plain function, and on an `async def` one awaited on an event loop), a
langchain-core tool (`Guard.wrap_tools`) and the OpenAI tool-call helper, prints p50/p99
latency and calls/s of the governed call and of the direct call, and the p50 the guard adds:
decide (validate, context, policy, budgets, lineage record) plus the exactly-once claim and
result records. The store is SQLite in a WAL file in a temporary folder; the acme pack decides;
facts come from an in-memory provider so the figures are discretion's own cost.
Every measured call is allowed and runs its tool, with a new tool-call id each time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from typing import Any

from decide import NOW, PACK, Records, ameasure, facts_for, measure
from langchain_core.tools import tool

from discretion import Actor, Guard, SqlStore, load_pack
from discretion.integrations import OpenAITools, ToolCallInfo

TARGET_MS = 1.0

FACTS: dict[str, Any] = {
    "customer.fraud_flag": False,
    "customer.tier": "gold",
    "customer.lifetime_value": {"amount": "4200.00", "currency": "USD"},
    "order.total": {"amount": "120.00", "currency": "USD"},
    "order.shipping_fee": {"amount": "9.99", "currency": "USD"},
    "order.refunded": {"amount": "0.00", "currency": "USD"},
    "order.delivered_at": "2026-11-20T10:00:00+00:00",
    "shipment.status": "delivered",
    "shipment.status_at": "2026-11-20T10:00:00+00:00",
    "customer.since": "2020-01-01T00:00:00+00:00",
    "exposure.all_count_30d": 0,
}

RAN: list[str] = []


def issue_refund(
    amount: str, currency: str, customer_id: str, case_id: str, order_id: str
) -> dict[str, str]:
    """Refund an order (the work is a list append: the figures are the guard's cost)."""
    RAN.append(order_id)
    return {"refund_id": f"rf-{len(RAN)}", "amount": amount}


async def aissue_refund(
    amount: str, currency: str, customer_id: str, case_id: str, order_id: str
) -> dict[str, str]:
    """`issue_refund` as an async tool."""
    return issue_refund(amount, currency, customer_id, case_id, order_id)


def arguments(i: int) -> dict[str, Any]:
    return {
        "amount": "25.00",
        "currency": "USD",
        "customer_id": f"c-{i % 500}",
        "case_id": f"case-{i}",
        "order_id": f"o-{i}",
    }


def actor(info: ToolCallInfo) -> Actor:
    # One actor per call keeps the acme pack's per-actor daily budget from routing the run.
    return Actor(id=f"bench-{info.call_id or info.arguments['case_id']}", role="ai_agent")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    n = args.n
    pack = load_pack(PACK)
    rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{tmp}/bench.db")
        # The case system knows each order and case `arguments` names, and whose they are.
        context = Records(facts_for(pack.fields, FACTS))
        guard = Guard(pack, store=store, context=context, clock=lambda: NOW)

        # The decorator.
        governed = guard.governed(tool="issue_refund", actor=actor)(issue_refund)
        direct = measure("function, direct", lambda i: issue_refund(**arguments(i)), n, 0)
        wrapped = measure(
            "function, @guard.governed", lambda i: governed(**arguments(i)), n, 1_000_000
        )
        rows.append((direct, wrapped))

        # The decorator on an async function, awaited on an event loop.
        agoverned = guard.governed(tool="issue_refund", actor=actor)(aissue_refund)
        direct = ameasure(
            "async function, direct", lambda i: aissue_refund(**arguments(i)), n, 6_000_000
        )
        wrapped = ameasure(
            "async function, @guard.governed",
            lambda i: agoverned(**arguments(i)),
            n,
            7_000_000,
        )
        rows.append((direct, wrapped))

        # A langchain-core tool.
        lc_tool = tool(issue_refund)
        [lc_governed] = guard.wrap_tools([lc_tool], actor=actor)

        def call(i: int) -> dict[str, Any]:
            return {
                "type": "tool_call",
                "name": "issue_refund",
                "args": arguments(i),
                "id": f"lc-{i}",
            }

        direct = measure("langchain tool, direct", lambda i: lc_tool.invoke(call(i)), n, 2_000_000)
        wrapped = measure(
            "langchain tool, wrap_tools", lambda i: lc_governed.invoke(call(i)), n, 3_000_000
        )
        rows.append((direct, wrapped))

        # OpenAI Chat Completions tool calls.
        openai_tools = OpenAITools(guard, {"issue_refund": issue_refund}, actor=actor)

        def chat_call(i: int) -> dict[str, Any]:
            return {
                "id": f"oa-{i}",
                "type": "function",
                "function": {"name": "issue_refund", "arguments": json.dumps(arguments(i))},
            }

        def openai_direct(i: int) -> dict[str, Any]:
            item = chat_call(i)
            result = issue_refund(**json.loads(item["function"]["arguments"]))
            return {"role": "tool", "tool_call_id": item["id"], "content": json.dumps(result)}

        direct = measure("openai tool call, direct", openai_direct, n, 4_000_000)
        wrapped = measure(
            "openai tool call, OpenAITools",
            lambda i: openai_tools.run([chat_call(i)]),
            n,
            5_000_000,
        )
        rows.append((direct, wrapped))

        warmups = min(200, n)
        if len(RAN) != 8 * (n + warmups):
            raise SystemExit(f"expected every call to run; {len(RAN)} ran")
        if (executions := guard.store.verify()) < 4 * 3 * n:
            raise SystemExit(f"the ledger holds {executions} records; expected more")
    print(
        f"{'benchmark':32} {'p50 ms':>8} {'p99 ms':>8} {'calls/s':>9} {'added p50 ms':>13}"
        f"   (n={n}, SQLite WAL file)"
    )
    for direct, wrapped in rows:
        added = wrapped["p50_ms"] - direct["p50_ms"]
        for r in (direct, wrapped):
            extra = f"{added:13.3f}" if r is wrapped else ""
            print(
                f"{r['label']:32} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['per_s']:9.0f} {extra}"
            )
    worst = max(w["p50_ms"] - d["p50_ms"] for d, w in rows)
    verdict = "within" if worst < TARGET_MS else "OVER"
    print(f"largest p50 added per call: {worst:.3f} ms ({verdict} the {TARGET_MS} ms target)")


if __name__ == "__main__":
    main()
