"""MCP: a gateway in front of an MCP server that decides every tool call before it reaches it.

The gateway is an MCP server to the agent (on stdio, or over streamable HTTP) and an MCP client
to the upstream server (a command it starts, or a streamable HTTP URL). It lists
the upstream's tools unchanged, decides each `tools/call` with the pack, forwards an allowed
call to the upstream exactly once (a retry replays the first result), and answers a routed or
denied call itself: a tool result with `isError` set and the text every integration gives the
agent (with the approval id when routed). Once a person approves, the agent's retry of the
same call runs it, once, with the approved arguments.

MCP has no call ids: a call is keyed by its case, tool and arguments, so an identical call on
the same case by the same actor is the same call.

Over HTTP each request names its actor with a bearer token (`Authorization: Bearer ...`): the
`Authenticate` callable turns the token into the actor, per request, so a revoked token stops
working at once, and nothing in a call's arguments can change who proposes it. A request
without a live token of an AI role of the pack is refused (401, 403) before any MCP is read.

Needs the `mcp` extra: `pip install 'discretion[mcp]'`.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, TextIO, TypeAlias

import anyio.to_thread
from pydantic import ValidationError

from discretion.errors import ConfigurationError, ExecutionError, ProposalError
from discretion.integrations._call import (
    KEY_ARGUMENT,
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
from discretion.integrations._setup import (
    SchemaParameters,
    UnreadableSchema,
    schema_parameters,
)
from discretion.proposal import Actor

try:
    import httpx2
    import mcp.types as mcp_types
    import uvicorn
    from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.datastructures import Headers
    from starlette.requests import Request
    from starlette.types import ASGIApp, Receive, Scope, Send
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        f"discretion's MCP gateway needs {exc.name}: pip install 'discretion[mcp]'"
    ) from exc

if TYPE_CHECKING:
    from discretion.guard import Guard
    from discretion.policy import PolicyPack

__all__ = [
    "MCP_PATH",
    "Authenticate",
    "MCPGateway",
    "TokenAuthentication",
    "Upstream",
    "connect_upstream",
    "http_app",
    "is_loopback",
    "serve_http",
    "serve_stdio",
]

Upstream: TypeAlias = "StdioServerParameters | str"
"""The upstream MCP server: a command to start and speak stdio to, or a streamable HTTP URL."""

Authenticate: TypeAlias = Callable[[str], Actor | None]
"""The actor a bearer token stands for; None for an unknown or revoked token. It is called
for every HTTP request, in a worker thread (it may read a database)."""

MCP_PATH = "/mcp"
"""Where the gateway serves streamable HTTP."""


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


def _schema(tool: mcp_types.Tool) -> SchemaParameters | None:
    """The arguments an upstream tool's schema lists, for a tool the pack does not map.

    None when it lists none, or in a shape that cannot be read: nothing is checked for it.
    """
    try:
        return schema_parameters(tool.input_schema)
    except UnreadableSchema:
        return None


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
        self._keyed: set[str] = set()
        """Upstream tools that take an `idempotency_key` argument: each run is given its key."""
        self._takes: dict[str, frozenset[str]] = {}
        """The arguments each governed upstream tool's schema lists (`check`): a call carrying
        another is refused, since nothing decided it and the upstream may read it."""

    async def check(self) -> None:
        """Check the upstream's tools against the pack before serving any call.

        Raises:
            ConfigurationError: the pack maps a tool whose amount, currency or ids are read
                from an argument the upstream tool does not take, which takes a currency the
                mapping does not read, or whose input schema cannot be read.
        """
        cursor: str | None = None
        while True:
            params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
            listed = await self.upstream.list_tools(params=params)
            for tool in listed.tools:
                # A tool the pack does not map is decided as an unknown one when it is called;
                # its schema is read only for its key argument.
                mapped = tool.name in self.guard.pack.tools
                if mapped:
                    _, read = self.governor.check_schema(tool.name, tool.input_schema)
                else:
                    read = _schema(tool)
                if read is not None and KEY_ARGUMENT in read.names:
                    self._keyed.add(tool.name)
                if mapped and read is not None and read.is_closed:
                    # An MCP tool's schema lists what its function takes (unless it says it
                    # takes others too): a call carrying another argument is refused.
                    self._takes[tool.name] = frozenset(
                        name for name in read.names if "." not in name
                    )
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
        """Decide a call; forward it once when allowed or approved, else answer it here.

        Over HTTP with tokens, the actor is the one the request's token stands for.
        """
        arguments = dict(params.arguments or {})
        return await self.decide_and_call(params.name, arguments, actor=_token_actor(ctx))

    async def decide_and_call(
        self, name: str, arguments: dict[str, Any], *, actor: Actor | None = None
    ) -> mcp_types.CallToolResult:
        """Decide the call `name(arguments)`; forward it once when allowed or approved.

        `actor` is who makes this call (an authenticated connection's actor), when the
        gateway was not given one actor for every call.
        """
        governor = self.governor
        if not governor.governs(name):
            return await self.upstream.call_tool(name, arguments)
        # The run's context is where the governor looks for the actor when no fixed one was
        # given; the call's arguments are never read for it.
        takes = self._takes.get(name)
        unknown = sorted(set(arguments) - takes) if takes is not None else []
        if unknown:
            # Nothing would decide them, and the upstream server may read them all the same.
            return _text_result(
                f"The call to {name} was not made: the tool takes no argument"
                f" {', '.join(map(repr, unknown))}; leave"
                f" {'them' if len(unknown) > 1 else 'it'} out and call it again."
            )
        context = {"actor": actor} if actor is not None else None
        info = ToolCallInfo(tool=name, arguments=arguments, context=context)
        try:
            decision, queued, governed = await governor.aadmit(info)
        except ProposalError as exc:
            if not is_correctable(exc):
                raise
            return _text_result(proposal_error_message(name, exc))
        if not decision.is_allowed and queued is None:
            return _text_result(agent_message(decision))

        async def forward(approved: dict[str, Any], key: str) -> mcp_types.CallToolResult:
            # A tool that takes the key deduplicates on it: a run retried after an error result
            # (the payment made, the receipt not sent) pays once.
            sent = {**approved, KEY_ARGUMENT: key} if name in self._keyed else approved
            return await self.upstream.call_tool(name, sent)

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


@asynccontextmanager
async def connect_upstream(
    upstream: Upstream, *, errlog: TextIO = sys.stderr
) -> AsyncIterator[ClientSession]:
    """An initialised client session to the upstream server, closed on exit.

    Raises:
        ConfigurationError: the upstream command cannot be started, the URL is not an
            http(s) URL, or the server at the URL cannot be reached or refuses to initialise.
    """
    if isinstance(upstream, str) and not upstream.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"mcp gateway: upstream URL {upstream!r} is not an http:// or https:// URL;"
            " give the streamable HTTP endpoint, such as http://127.0.0.1:8000/mcp"
        )
    connected = False
    try:
        async with AsyncExitStack() as stack:
            if isinstance(upstream, str):
                read, write = await stack.enter_async_context(streamable_http_client(upstream))
            else:
                try:
                    read, write = await stack.enter_async_context(
                        stdio_client(upstream, errlog=errlog)
                    )
                except OSError as exc:
                    raise ConfigurationError(
                        f"mcp gateway: cannot start the upstream command {upstream.command!r}:"
                        f" {exc}"
                    ) from exc
            session = await stack.enter_async_context(ClientSession(read, write))
            await session.initialize()
            connected = True
            yield session
    except* (httpx2.HTTPError, MCPError) as failed:
        if connected:
            raise
        # Before the first answer, a failure means the URL is wrong or the server is down.
        first: BaseException = failed
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise ConfigurationError(
            f"mcp gateway: cannot connect to the upstream at {upstream!r}: {first};"
            " check the URL (the server's streamable HTTP endpoint) and that it is serving"
        ) from None


async def serve_stdio(
    guard: Guard,
    upstream: Upstream,
    *,
    actor: ActorSource,
    case_id: TextSource = None,
    customer_id: TextSource = None,
    errlog: TextIO = sys.stderr,
) -> None:
    """Serve MCP on this process's stdin and stdout in front of an upstream server.

    Connects to the upstream (starting its command, or at its URL), checks its tools against
    the pack, then serves until the agent closes the connection.

    Raises:
        ConfigurationError: the upstream's tools do not fit the pack's mappings, or the
            upstream command cannot be started.
    """
    async with connect_upstream(upstream, errlog=errlog) as session:
        gateway = MCPGateway(guard, session, actor=actor, case_id=case_id, customer_id=customer_id)
        await gateway.check()
        server = gateway.server()
        async with stdio_server() as (agent_read, agent_write):
            await server.run(agent_read, agent_write, server.create_initialization_options())


class _TokenUser(AuthenticatedUser):
    """A request's authenticated actor, where the MCP SDK looks for the requester.

    The SDK binds each HTTP session to the principal that opened it, so another actor's
    request on that session id is answered as for an unknown session.
    """

    def __init__(self, actor: Actor) -> None:
        super().__init__(
            AccessToken(token="", client_id=actor.id, scopes=[], subject=f"{actor.role}:{actor.id}")
        )
        self.actor = actor


def _token_actor(ctx: ServerRequestContext[Any]) -> Actor | None:
    """The actor of the HTTP request that carried this MCP request, when a token named one."""
    request = ctx.request
    if not isinstance(request, Request):
        return None
    user = request.scope.get("user")
    return user.actor if isinstance(user, _TokenUser) else None


async def _refuse(send: Send, status: int, error: str, description: str) -> None:
    body = json.dumps({"error": error, "error_description": description}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        value = f'Bearer error="{error}", error_description="{description}"'
        headers.append((b"www-authenticate", value.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class TokenAuthentication:
    """ASGI middleware: serve an HTTP request only with a live token of an AI role of the pack.

    Answers 401 to a request without a bearer token or with an unknown or revoked one, and 403
    to a live token whose subject is not an AI agent in a role the pack gives an AI; nothing
    reaches the MCP app before that. Every request is checked, so a token revoked while its
    agent is connected stops working at its next request.

    Args:
        app: the MCP app.
        authenticate: the actor a token stands for (see `Authenticate`).
        pack: the pack whose AI roles may call through the gateway.
    """

    def __init__(self, app: ASGIApp, *, authenticate: Authenticate, pack: PolicyPack) -> None:
        self.app = app
        self.authenticate = authenticate
        self.pack = pack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate an HTTP request, then hand it to the MCP app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        token = token.strip()
        actor = None
        if scheme.lower() == "bearer" and token:
            actor = await anyio.to_thread.run_sync(self.authenticate, token)
        if actor is None:
            await _refuse(
                send,
                401,
                "invalid_token",
                "send a live discretion token: Authorization: Bearer dsc_..."
                " (made by 'discretion token create --ai')",
            )
            return
        role = self.pack.role(actor.role)
        if not actor.is_ai or role is None or not role.is_ai:
            await _refuse(
                send,
                403,
                "insufficient_role",
                f"the token's subject {actor.id!r} ({actor.role}) is not an AI agent in an AI"
                f" role of pack {self.pack.name!r}; the gateway serves AI agents only",
            )
            return
        scope["user"] = _TokenUser(actor)
        await self.app(scope, receive, send)


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1 or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def http_app(gateway: MCPGateway, *, host: str, authenticate: Authenticate | None) -> ASGIApp:
    """The gateway as an ASGI app serving MCP streamable HTTP at `/mcp`.

    With `authenticate`, every request needs a bearer token (see `TokenAuthentication`).
    Bound to a loopback `host`, requests whose Host or Origin header names another host are
    refused (DNS rebinding protection: a web page the operator visits cannot reach it).
    """
    security = None
    if is_loopback(host):
        named = {f"[{host}]" if ":" in host else host, "127.0.0.1", "localhost", "[::1]"}
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=sorted(f"{name}:*" for name in named),
            allowed_origins=sorted(f"http://{name}:*" for name in named),
        )
    app: ASGIApp = gateway.server().streamable_http_app(
        streamable_http_path=MCP_PATH, host=host, transport_security=security
    )
    if authenticate is not None:
        app = TokenAuthentication(app, authenticate=authenticate, pack=gateway.guard.pack)
    return app


async def serve_http(
    guard: Guard,
    upstream: Upstream,
    *,
    host: str,
    port: int,
    authenticate: Authenticate | None = None,
    actor: ActorSource = None,
    case_id: TextSource = None,
    customer_id: TextSource = None,
    errlog: TextIO = sys.stderr,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve MCP streamable HTTP at `http://HOST:PORT/mcp` in front of an upstream server.

    Give `authenticate` to take each request's actor from its bearer token (the usual way),
    or `actor` for one actor on every call, which is allowed on a loopback address only.
    Connects to the upstream, checks its tools against the pack, binds the port (0 picks a
    free one), calls `on_ready(url)`, and serves until interrupted.

    Raises:
        ConfigurationError: both or neither of `authenticate` and `actor`; `actor` on an
            address other than loopback; the upstream's tools do not fit the pack's
            mappings; the upstream cannot be started; the port cannot be bound.
    """
    if (authenticate is None) == (actor is None):
        raise ConfigurationError(
            "mcp gateway over HTTP: give authenticate= (each request's actor from its token)"
            " or actor= (one actor, loopback only), not both and not neither"
        )
    if authenticate is None and not is_loopback(host):
        raise ConfigurationError(
            f"mcp gateway over HTTP: serving without tokens is allowed on a loopback address"
            f" only, not {host!r}; bind 127.0.0.1, or require tokens"
        )
    async with connect_upstream(upstream, errlog=errlog) as session:
        gateway = MCPGateway(guard, session, actor=actor, case_id=case_id, customer_id=customer_id)
        await gateway.check()
        app = http_app(gateway, host=host, authenticate=authenticate)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            # An agent's open event stream must not hold a stop (Ctrl-C, SIGTERM) for ever.
            timeout_graceful_shutdown=10,
        )
        try:
            listening = config.bind_socket()
            # Listening before the ready message: a client that connects at once waits in the
            # backlog until the server accepts, instead of being refused.
            listening.listen(config.backlog)
        except (OSError, SystemExit) as exc:
            # uvicorn logs why and exits when it cannot bind.
            raise ConfigurationError(
                f"mcp gateway over HTTP: cannot listen on {host}:{port}: {exc}"
            ) from None
        with listening:
            bound = listening.getsockname()[1]
            shown = f"[{host}]" if listening.family == socket.AF_INET6 else host
            if on_ready is not None:
                on_ready(f"http://{shown}:{bound}{MCP_PATH}")
            await uvicorn.Server(config).serve(sockets=[listening])
