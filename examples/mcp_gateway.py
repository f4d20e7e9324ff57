"""An agent's MCP client talking to a payments MCP server through `discretion mcp`, offline.

    python examples/mcp_gateway.py

Starts the gateway (`discretion mcp ... -- python examples/mcp_refund_server.py`) with the
official MCP client, as an agent would, and calls `issue_refund` for three of acme's sample
cases: one inside policy is forwarded at once, one the pack routes waits for a tier2 supervisor
and, once she approves it, the agent's retry runs it once; one on a fraud hold never runs.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

from discretion import Actor, Guard, Money, SqlStore, load_pack
from discretion.context import SqliteCaseStore

HERE = Path(__file__).resolve().parent
ACME = HERE / "acme"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # the acme cases describe this moment
SUPERVISOR = Actor(id="dana.reyes", role="tier2", is_ai=False)


def refund(case: str, customer: str, order: str, amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD", "customer_id": customer, "case_id": case} | {
        "order_id": order
    }


async def main(errlog: TextIO = sys.stderr) -> int:
    with tempfile.TemporaryDirectory() as folder:
        db = f"sqlite:///{Path(folder) / 'ledger.db'}"
        gateway = StdioServerParameters(
            command=sys.executable,
            args=[
                *("-m", "discretion.cli", "mcp", "--pack", str(ACME / "pack"), "--db", db),
                *("--actor", "acme-assist:ai_agent", "--now", NOW.isoformat()),
                *("--", sys.executable, str(HERE / "mcp_refund_server.py")),
            ],
        )
        # The approver's side: the same ledger, read and written through the Approvals API.
        cases = SqliteCaseStore.from_sql(ACME / "cases.sql")
        guard = Guard(
            load_pack(ACME / "pack"), store=SqlStore(db), context=cases, clock=lambda: NOW
        )
        async with (
            stdio_client(gateway, errlog=errlog) as streams,
            ClientSession(*streams) as agent,
        ):
            await agent.initialize()
            tools = await agent.list_tools()
            print(f"tools through the gateway: {', '.join(t.name for t in tools.tools)}")
            for arguments in (
                refund("K-70003", "C-1003", "A-50003", "64.99"),
                refund("K-70007", "C-1007", "A-50007", "649.00"),
                refund("K-70031", "C-1031", "A-50031", "199.00"),
            ):
                case = arguments["case_id"]
                result = await agent.call_tool("issue_refund", arguments)
                text = " ".join(block.text for block in result.content)
                print(f"{case}: {'error' if result.is_error else 'result'}: {text}")
                pending = guard.approvals.list(status="pending")
                if pending:
                    amount = Money.of("500", "USD")
                    guard.approvals.approve(
                        pending[0].id, approver=SUPERVISOR, note="leak on video", amount=amount
                    )
                    again = await agent.call_tool("issue_refund", arguments)
                    text = " ".join(block.text for block in again.content)
                    print(f"{case}: approved by {SUPERVISOR.id}; the retry ran once: {text}")
        print(f"Ledger verified: {guard.store.verify()} records")
        guard.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main))
