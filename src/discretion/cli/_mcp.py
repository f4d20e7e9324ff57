"""`discretion mcp`: an MCP gateway, on stdio or streamable HTTP, before an upstream MCP server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from discretion.cli import _common
from discretion.cli._common import (
    DEFAULT_DB,
    ContextFactoryOption,
    ContextOption,
    DbOption,
    JudgeOption,
)
from discretion.errors import DiscretionError

if TYPE_CHECKING:
    from discretion.guard import Guard
    from discretion.proposal import Actor

__all__ = ["mcp"]


def _actor(text: str) -> Actor:
    from discretion.proposal import Actor

    name, sep, role = text.partition(":")
    if not sep or not name or not role:
        raise _common.fail(f"--actor {text!r}: write ID:ROLE, such as support-bot:ai_agent")
    return Actor(id=name, role=role)


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise _common.fail(
            f"--http {text!r}: write HOST:PORT, such as 127.0.0.1:8765 ([::1]:8765 for IPv6;"
            " port 0 picks a free one)"
        )
    return host, int(port)


def _first(group: BaseException) -> BaseException:
    # anyio's task groups wrap what failed inside them; report the error itself.
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


def _check_ai(guard: Guard, proposer: Actor, text: str) -> None:
    role = guard.pack.role(proposer.role)
    if role is None or not role.is_ai:
        known = ", ".join(r.id for r in guard.pack.roles if r.is_ai)
        raise _common.fail(
            f"--actor {text!r}: {proposer.role!r} is not an AI role of pack"
            f" {guard.pack.name!r}; its AI roles: {known}"
        )


def _ready(url: str) -> None:
    _common.err.print(f"discretion mcp: serving MCP on {url}", highlight=False, markup=False)


def mcp(
    pack: Annotated[Path, typer.Option("--pack", help="Pack file or folder.")],
    upstream: Annotated[
        list[str] | None,
        typer.Argument(
            help="The upstream MCP server's command and its arguments, after --"
            " (or give --upstream-url).",
            metavar="-- UPSTREAM_COMMAND [ARGS...]",
            show_default=False,
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--actor",
            metavar="ID:ROLE",
            help="Who proposes the agent's calls: an AI actor's id and its role in the pack."
            " Needed on stdio; over --http only with --no-auth.",
            show_default=False,
        ),
    ] = None,
    upstream_url: Annotated[
        str | None,
        typer.Option(
            "--upstream-url",
            metavar="URL",
            help="The upstream's streamable HTTP endpoint (http://.../mcp), instead of a command.",
            show_default=False,
        ),
    ] = None,
    http: Annotated[
        str | None,
        typer.Option(
            "--http",
            metavar="HOST:PORT",
            help="Serve MCP streamable HTTP at http://HOST:PORT/mcp instead of stdio. Each"
            " request needs 'Authorization: Bearer TOKEN' (discretion token create --ai); its"
            " token's subject and role are the actor of its calls.",
            show_default=False,
        ),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="With --http and --actor: serve without tokens, every call as --actor. Only"
            " on a loopback HOST (127.0.0.1, ::1, localhost).",
        ),
    ] = False,
    db: DbOption = DEFAULT_DB,
    context: ContextOption = None,
    context_factory: ContextFactoryOption = None,
    judge: JudgeOption = None,
    now: Annotated[
        str | None,
        typer.Option(help="Decide as of this ISO 8601 time instead of the clock (tests, replays)."),
    ] = None,
) -> None:
    """Serve MCP in front of an upstream MCP server, deciding every tool call.

    Lists the upstream's tools unchanged; an allowed call is forwarded once, a routed or
    denied one is answered with an error result that says why (and the approval id).
    On stdio (the default) every call is --actor's; with --http every request must carry a
    live token of an AI agent, and its calls are that agent's (--no-auth with --actor serves
    one actor without tokens, on a loopback address only).
    """
    try:
        from mcp import StdioServerParameters

        from discretion.integrations._mcp import is_loopback, serve_http, serve_stdio
    except ImportError as exc:
        raise _common.fail(f"{exc}. The MCP gateway needs: pip install 'discretion[mcp]'") from None
    import anyio

    from discretion.settings import build_guard

    if bool(upstream) == (upstream_url is not None):
        raise _common.fail(
            "give the upstream MCP server once: its command after --, or --upstream-url URL"
            f" ({'both' if upstream else 'neither'} given)"
        )
    address = _address(http) if http is not None else None
    if address is None and no_auth:
        raise _common.fail("--no-auth is for --http; on stdio there are no tokens to skip")
    if address is None and actor is None:
        raise _common.fail("--actor ID:ROLE is required on stdio: who proposes the agent's calls")
    if address is not None and actor is not None and not no_auth:
        raise _common.fail(
            "--actor with --http: over HTTP each request's token names its actor; to serve"
            " every call as --actor without tokens add --no-auth (loopback only)"
        )
    if address is not None and no_auth and actor is None:
        raise _common.fail("--no-auth needs --actor ID:ROLE: who proposes every call")
    if address is not None and no_auth and not is_loopback(address[0]):
        raise _common.fail(
            f"--no-auth on {address[0]!r}: without tokens the gateway serves a loopback"
            " address only (127.0.0.1, ::1, localhost); drop --no-auth to require tokens"
        )
    proposer = _actor(actor) if actor is not None else None
    try:
        guard = build_guard(
            _common.settings(
                pack, db, context=context, context_factory=context_factory, judge=judge, now=now
            )
        )
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    if proposer is not None and actor is not None:
        try:
            _check_ai(guard, proposer, actor)
        except typer.Exit:
            guard.store.close()
            raise
    target: StdioServerParameters | str
    if upstream_url is not None:
        target = upstream_url
    else:
        command, *arguments = upstream or [""]
        target = StdioServerParameters(command=command, args=arguments)
    try:
        if address is None:
            anyio.run(lambda: serve_stdio(guard, target, actor=proposer))
        else:
            from discretion.api import Tokens

            tokens = Tokens(guard.store, clock=guard.now)

            def authenticate(token: str) -> Actor | None:
                found = tokens.authenticate(token)
                return found.actor() if found is not None else None

            host, port = address
            anyio.run(
                lambda: serve_http(
                    guard,
                    target,
                    host=host,
                    port=port,
                    authenticate=None if no_auth else authenticate,
                    actor=proposer if no_auth else None,
                    errlog=sys.stderr,
                    on_ready=_ready,
                )
            )
    except* DiscretionError as failed:
        raise _common.fail(str(_first(failed))) from None
    finally:
        guard.store.close()
