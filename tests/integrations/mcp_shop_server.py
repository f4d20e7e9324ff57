"""A small upstream MCP server for the gateway tests: a shop whose tools log each run.

Run as `python mcp_shop_server.py RUNS_FILE` to serve stdio, or with `--http` to serve
streamable HTTP on a free loopback port, whose URL it prints as its first line; every tool run
appends one JSON line to RUNS_FILE.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

RUNS = Path(sys.argv[1])
shop = MCPServer("shop")


def _log(tool: str, **arguments: str) -> None:
    with RUNS.open("a", encoding="utf-8") as runs:
        runs.write(json.dumps({"tool": tool, **arguments}) + "\n")


@shop.tool()
def issue_refund(amount: str, currency: str, customer_id: str, case_id: str, order_id: str) -> str:
    """Refund an order to the customer's card."""
    _log("issue_refund", amount=amount, customer_id=customer_id, order_id=order_id)
    return f"refunded {currency} {amount} on {order_id}"


@shop.tool()
def give_credit(value: str, customer: str, ticket: str, idempotency_key: str) -> str:
    """Credit the customer's account; the first run of each key fails after crediting."""
    ran = RUNS.read_text(encoding="utf-8") if RUNS.exists() else ""
    _log("give_credit", value=value, customer=customer, idempotency_key=idempotency_key)
    if f'"idempotency_key": {json.dumps(idempotency_key)}' not in ran:
        raise RuntimeError("credited, but the receipt e-mail failed")
    return f"credited {value} to {customer}"


@shop.tool()
def lookup_order(order_id: str) -> str:
    """Look up an order."""
    _log("lookup_order", order_id=order_id)
    return f"order {order_id}: delivered"


def serve_http() -> None:
    import uvicorn

    app = shop.streamable_http_app()
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    listening = config.bind_socket()
    listening.listen(config.backlog)
    print(f"http://127.0.0.1:{listening.getsockname()[1]}/mcp", flush=True)
    uvicorn.Server(config).run(sockets=[listening])


if __name__ == "__main__":
    if "--http" in sys.argv[2:]:
        serve_http()
    else:
        shop.run()
