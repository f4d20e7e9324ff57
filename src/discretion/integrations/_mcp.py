"""MCP: a gateway in front of an MCP server that decides every tool call before it reaches it.

The gateway is an MCP server to the agent and an MCP client to the upstream server. It lists
the upstream's tools unchanged, decides each `tools/call` with the pack, forwards an allowed
call to the upstream exactly once (a retry replays the first result), and answers a routed or
denied call itself: a tool result with `isError` set and the text every integration gives the
agent (with the approval id when routed). Once a person approves, the agent's retry of the
same call runs it, once, with the approved arguments.

MCP has no call ids: a call is keyed by its case, tool and arguments, so an identical call on
the same case is the same call.

Needs the `mcp` extra: `pip install 'discretion[mcp]'`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from discretion.errors import ConfigurationError, ExecutionError, ProposalError
from discretion.integrations._call import (
    ActorSource,
    Governor,
    RationaleSource,
    TextSource,
    ToolCallInfo,
    agent_message,
    in_progress_message,
    is_correctable,
    proposal_error_message,
)

try:
    import mcp.types as mcp_types
    from mcp import ClientSession, StdioServerParameters, stdio_client
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        f"discretion's MCP gateway needs {exc.name}: pip install 'discretion[mcp]'"
    ) from exc

if TYPE_CHECKING:
    from discretion.guard import Guard

__all__ = ["MCPGateway", "serve_stdio"]


def _text_result(text: str, *, is_error: bool = True) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=text)], is_error=is_error
    )


def _stored(result: mcp_types.CallToolResult) -> dict[str, Any]:
    """What the ledger keeps of an upstream result: the result as MCP JSON."""
    stored: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return stored


def _failure(result: mcp_types.CallToolResult) -> str | None:
    """What went wrong when the upstream answered with an error result (it may be retried)."""
    if not result.is_error:
        return None
    texts = [block.text for block in result.content if isinstance(block, mcp_types.TextContent)]
    return " ".join(texts) or "the upstream tool reported an error"


def _input_parameters(tool: mcp_types.Tool) -> frozenset[str] | None:
    properties = tool.input_schema.get("properties")
    return frozenset(properties) if isinstance(properties, Mapping) else None


class MCPGateway:
    """Decides an agent's MCP tool calls and forwards the allowed ones to an upstream session.

    Args:
        guard: decides and records.
        upstream: an initialised MCP client session to the upstream server.
        actor: who proposes the calls (see `ActorSource`).
        case_id: the support case, when the tools' arguments do not carry it.
        customer_id: the customer, when the tools' arguments do not carry it.
        rationale: why; by default the tool's own `reason` and `rationale` arguments.
    """

    def __init__(
        self,
        guard: Guard,
        upstream: ClientSession,
        *,
        actor: ActorSource,
        case_id: TextSource = None,
        customer_id: TextSource = None,
        rationale: RationaleSource = None,
    ) -> None:
        self.guard = guard
        self.upstream = upstream
        self.governor = Governor(
            guard, actor=actor, case_id=case_id, customer_id=customer_id, rationale=rationale
        )

    async def check(self) -> None:
        """Check the upstream's tools against the pack before serving any call.

        Raises:
            ConfigurationError: the pack maps a tool whose amount, currency or ids are read
                from an argument the upstream tool does not take.
        """
        cursor: str | None = None
        while True:
            params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
            listed = await self.upstream.list_tools(params=params)
            for tool in listed.tools:
                if tool.name in self.guard.pack.tools:
                    self.governor.check(tool.name, _input_parameters(tool))
            cursor = listed.next_cursor
            if not cursor:
                return

    async def list_tools(
        self, ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        """The upstream's tools, unchanged."""
        return await self.upstream.list_tools(params=params)

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        """Decide a call; forward it once when allowed or approved, else answer it here."""
        return await self.decide_and_call(params.name, dict(params.arguments or {}))

    async def decide_and_call(
        self, name: str, arguments: dict[str, Any]
    ) -> mcp_types.CallToolResult:
        """Decide the call `name(arguments)`; forward it once when allowed or approved."""
        governor = self.governor
        if not governor.governs(name):
            return await self.upstream.call_tool(name, arguments)
        info = ToolCallInfo(tool=name, arguments=arguments)
        try:
            decision, queued, governed = await governor.aadmit(info)
        except ProposalError as exc:
            if not is_correctable(exc):
                raise
            return _text_result(proposal_error_message(name, exc))
        if not decision.is_allowed and queued is None:
            return _text_result(agent_message(decision))

        async def forward(approved: dict[str, Any], key: str) -> mcp_types.CallToolResult:
            return await self.upstream.call_tool(name, approved)

        try:
            result = await governor.arun(
                decision,
                info,
                forward,
                record=_stored,
                failed=_failure,
                execution=queued,
                arguments=governed,
            )
        except ExecutionError as exc:
            return _text_result(in_progress_message(exc))
        if isinstance(result.value, mcp_types.CallToolResult):
            return result.value
        try:
            # A replay: the first run's result, as the ledger stored it.
            return mcp_types.CallToolResult.model_validate(result.value)
        except ValidationError:
            return _text_result(str(result.value), is_error=False)

    def server(self) -> Server[Any]:
        """An MCP server answering `tools/list` and `tools/call` through this gateway."""
        return Server(
            f"discretion gateway ({self.guard.pack.name})",
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
        )


async def serve_stdio(
    guard: Guard,
    upstream: StdioServerParameters,
    *,
    actor: ActorSource,
    case_id: TextSource = None,
    customer_id: TextSource = None,
    errlog: TextIO = sys.stderr,
) -> None:
    """Serve MCP on this process's stdin and stdout in front of an upstream stdio server.

    Starts the upstream command, checks its tools against the pack, then serves until the
    agent closes the connection.

    Raises:
        ConfigurationError: the upstream's tools do not fit the pack's mappings, or the
            upstream command cannot be started.
    """
    async with AsyncExitStack() as stack:
        try:
            read, write = await stack.enter_async_context(stdio_client(upstream, errlog=errlog))
        except OSError as exc:
            raise ConfigurationError(
                f"mcp gateway: cannot start the upstream command {upstream.command!r}: {exc}"
            ) from exc
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        gateway = MCPGateway(guard, session, actor=actor, case_id=case_id, customer_id=customer_id)
        await gateway.check()
        server = gateway.server()
        async with stdio_server() as (agent_read, agent_write):
            await server.run(agent_read, agent_write, server.create_initialization_options())
