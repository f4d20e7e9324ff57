"""`discretion mcp`: an MCP gateway on stdio in front of an upstream MCP server."""

from __future__ import annotations

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
    from discretion.proposal import Actor

__all__ = ["mcp"]


def _actor(text: str) -> Actor:
    from discretion.proposal import Actor

    name, sep, role = text.partition(":")
    if not sep or not name or not role:
        raise _common.fail(f"--actor {text!r}: write ID:ROLE, such as support-bot:ai_agent")
    return Actor(id=name, role=role)


def _first(group: BaseException) -> BaseException:
    # anyio's task groups wrap what failed inside them; report the error itself.
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


def mcp(
    upstream: Annotated[
        list[str],
        typer.Argument(
            help="The upstream MCP server's command and its arguments, after --.",
            metavar="-- UPSTREAM_COMMAND [ARGS...]",
        ),
    ],
    pack: Annotated[Path, typer.Option("--pack", help="Pack file or folder.")],
    actor: Annotated[
        str,
        typer.Option(
            "--actor",
            metavar="ID:ROLE",
            help="Who proposes the agent's calls: an AI actor's id and its role in the pack.",
        ),
    ],
    db: DbOption = DEFAULT_DB,
    context: ContextOption = None,
    context_factory: ContextFactoryOption = None,
    judge: JudgeOption = None,
    now: Annotated[
        str | None,
        typer.Option(help="Decide as of this ISO 8601 time instead of the clock (tests, replays)."),
    ] = None,
) -> None:
    """Serve MCP on stdio in front of an upstream MCP server, deciding every tool call.

    Lists the upstream's tools unchanged; an allowed call is forwarded once, a routed or
    denied one is answered with an error result that says why (and the approval id).
    """
    try:
        from mcp import StdioServerParameters

        from discretion.integrations._mcp import serve_stdio
    except ImportError as exc:
        raise _common.fail(f"{exc}. The MCP gateway needs: pip install 'discretion[mcp]'") from None
    import anyio

    from discretion.settings import build_guard

    proposer = _actor(actor)
    try:
        guard = build_guard(
            _common.settings(
                pack, db, context=context, context_factory=context_factory, judge=judge, now=now
            )
        )
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    role = guard.pack.role(proposer.role)
    if role is None or not role.is_ai:
        guard.store.close()
        known = ", ".join(r.id for r in guard.pack.roles if r.is_ai)
        raise _common.fail(
            f"--actor {actor!r}: {proposer.role!r} is not an AI role of pack"
            f" {guard.pack.name!r}; its AI roles: {known}"
        )
    command, *arguments = upstream
    parameters = StdioServerParameters(command=command, args=arguments)
    try:
        anyio.run(lambda: serve_stdio(guard, parameters, actor=proposer))
    except* DiscretionError as failed:
        raise _common.fail(str(_first(failed))) from None
    finally:
        guard.store.close()
