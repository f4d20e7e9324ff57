"""`discretion check`: decide proposal files and record the decisions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

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
    from discretion.decision import Decision

__all__ = ["check"]


def check(
    proposals: Annotated[
        list[Path], typer.Argument(help="Proposal JSON files.", exists=True, dir_okay=False)
    ],
    pack: Annotated[Path, typer.Option("--pack", help="Pack file or folder.")],
    db: DbOption = DEFAULT_DB,
    context: ContextOption = None,
    context_factory: ContextFactoryOption = None,
    judge: JudgeOption = None,
    now: Annotated[
        str | None, typer.Option(help="Decide as of this ISO 8601 time instead of the clock.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print decisions as JSON.")] = False,
) -> None:
    """Decide proposals and record the decisions."""
    from discretion.settings import build_guard

    try:
        guard = build_guard(
            _common.settings(
                pack, db, context=context, context_factory=context_factory, judge=judge, now=now
            )
        )
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    decided: list[tuple[Path, Decision]] = []
    failed = False
    for path in proposals:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            decision = guard.decide(data)
            decided.append((path, decision))
            if decision.policy_version != guard.pack.version:
                # Its key was decided before, under another pack: the answer is that record.
                _common.err.print(
                    f"[yellow]note:[/yellow] {escape(str(path))}: this proposal was decided"
                    f" before under policy {decision.policy_version[:19]}, and that recorded"
                    f" decision is shown, not one under {guard.pack.version[:19]}. Give it an"
                    " idempotency_key of its own, or use another --db, to decide it anew",
                    highlight=False,
                    soft_wrap=True,
                )
        except ValueError as exc:
            _common.error(f"{path}: not valid JSON: {exc}")
            failed = True
        except DiscretionError as exc:
            _common.error(f"{path}: {exc}")
            failed = True
    if as_json:
        items = [d.model_dump(mode="json") for _, d in decided]
        text = json.dumps(items[0] if len(items) == 1 else items, indent=2)
        sys.stdout.write(text + "\n")
    else:
        _print_decisions(decided, guard.pack.version)
    if failed:
        raise typer.Exit(2)


def _print_decisions(decided: list[tuple[Path, Decision]], version: str) -> None:
    from rich.table import Table

    from discretion.decision import Outcome

    styles = {
        Outcome.ALLOW: "green",
        Outcome.ALLOW_EXCEPTION: "cyan",
        Outcome.ROUTE: "yellow",
        Outcome.DENY: "red",
    }
    table = Table(title=f"decisions (policy {version[:19]})", show_lines=True)
    table.add_column("proposal")
    table.add_column("action")
    table.add_column("amount", justify="right")
    table.add_column("actor")
    table.add_column("outcome")
    table.add_column("role")
    table.add_column("rules")
    for path, decision in decided:
        style = styles[decision.outcome]
        table.add_row(
            escape(path.stem),
            escape(decision.action),
            str(decision.amount) if decision.amount is not None else "",
            decision.actor_role,
            f"[{style}]{decision.outcome.value}[/{style}]",
            decision.required_role or "",
            escape("\n".join(decision.rules)),
        )
    _common.out.print(table)
    if len(decided) == 1:
        _common.out.print(decided[0][1].explanation, highlight=False, markup=False)
