"""`discretion pack ...`: work with policy packs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from discretion.cli import _common
from discretion.errors import DiscretionError
from discretion.integrations import check_tools
from discretion.policy import load_pack
from discretion.settings import load_object

__all__ = ["pack_app"]

pack_app = typer.Typer(help="Work with policy packs.", no_args_is_help=True)


@pack_app.command("validate")
def pack_validate(
    path: Annotated[Path, typer.Argument(help="Pack file or folder.")],
    tools: Annotated[
        str | None,
        typer.Option(
            "--tools",
            help="module:attribute naming the agent's tools (langchain tools, functions, or a"
            " mapping of name to function): each is checked as wrapping would check it.",
        ),
    ] = None,
) -> None:
    """Load a pack, compile every CEL expression, and print its version."""
    try:
        policy = load_pack(path)
        checked = check_tools(policy, load_object(tools, what="tools")) if tools else []
    except DiscretionError as exc:
        raise _common.fail(str(exc), 1) from None
    _common.out.print(
        f"[green]valid[/green] {escape(policy.name)} {policy.version}", highlight=False
    )
    _common.out.print(
        f"{len(policy.actions)} actions, {len(policy.roles)} roles, {len(policy.rule_ids())} rules,"
        f" {len(policy.budgets)} budgets, from {len(policy.sources)} file(s)",
        highlight=False,
    )
    for name, is_governed in checked:
        kind = "governed" if is_governed else "read-only (ungoverned_tools)"
        _common.out.print(f"tool {escape(name)}: {kind}", highlight=False)
