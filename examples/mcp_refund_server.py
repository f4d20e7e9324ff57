"""A payments MCP server exposing `issue_refund`: the upstream the MCP gateway example governs.

    discretion mcp --pack examples/acme/pack --actor acme-assist:ai_agent \
        -- python examples/mcp_refund_server.py
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

payments = MCPServer("acme-payments")


@payments.tool()
def issue_refund(
    amount: str,
    currency: str,
    customer_id: str,
    case_id: str,
    order_id: str,
    reason: str = "",
    rationale: str = "",
) -> str:
    """Refund money to the customer's original payment method for an order."""
    return f"refunded {currency} {amount} on {order_id}"


if __name__ == "__main__":
    payments.run()
