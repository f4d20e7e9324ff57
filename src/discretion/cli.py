"""The `discretion` command line: decide, validate packs, verify and export the lineage."""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from discretion.context import (
    ContextProvider,
    JsonContextProvider,
    SqliteCaseStore,
    StaticContextProvider,
)
from discretion.decision import Decision, Outcome
from discretion.errors import DiscretionError, LedgerIntegrityError
from discretion.guard import Guard
from discretion.policy import load_pack
from discretion.store import SqlStore

app = typer.Typer(
    help="Govern the exceptions AI support agents make.",
    no_args_is_help=True,
    add_completion=False,
)
pack_app = typer.Typer(help="Work with policy packs.", no_args_is_help=True)
ledger_app = typer.Typer(help="Verify and export the lineage.", no_args_is_help=True)
app.add_typer(pack_app, name="pack")
app.add_typer(ledger_app, name="ledger")

# Tables are wide: when output is not a terminal, do not squeeze them to 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True)

DEFAULT_DB = "sqlite:///discretion.db"
DbOption = Annotated[
    str, typer.Option("--db", help="Database URL (sqlite:///path.db or postgresql://...).")
]
_CONTEXT_NAMES = ("cases.sql", "cases.db", "context.json")
_STYLE = {
    Outcome.ALLOW: "green",
    Outcome.ALLOW_EXCEPTION: "cyan",
    Outcome.ROUTE: "yellow",
    Outcome.DENY: "red",
}


class ExportFormat(StrEnum):
    """Formats `ledger export` writes."""

    JSONL = "jsonl"
    CSV = "csv"


def _error(message: str) -> None:
    # Messages quote user input (amounts, expressions): print them as text, never as markup.
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _error(message)
    return typer.Exit(code)


def _open_context(path: Path) -> ContextProvider:
    if path.suffix == ".json":
        return JsonContextProvider(path)
    if path.suffix == ".sql":
        return SqliteCaseStore.from_sql(path)
    return SqliteCaseStore.open(path)


def _find_context(pack: Path) -> Path | None:
    folder = pack if pack.is_dir() else pack.parent
    for base in (folder, folder.parent):
        for name in _CONTEXT_NAMES:
            if (base / name).exists():
                return base / name
    return None


def _parse_now(now: str | None) -> datetime | None:
    if now is None:
        return None
    try:
        moment = datetime.fromisoformat(now)
    except ValueError:
        raise _fail(
            f"--now {now!r} is not an ISO 8601 time such as 2026-11-26T12:00:00+00:00"
        ) from None
    if moment.tzinfo is None:
        raise _fail(f"--now {now!r} needs a UTC offset, such as +00:00")
    return moment


@app.command()
def check(
    proposals: Annotated[
        list[Path], typer.Argument(help="Proposal JSON files.", exists=True, dir_okay=False)
    ],
    pack: Annotated[Path, typer.Option("--pack", help="Pack file or folder.")],
    db: DbOption = DEFAULT_DB,
    context: Annotated[
        Path | None,
        typer.Option(
            help="Facts: a .json file, a .sql case script or a SQLite case database."
            " Found beside the pack when absent.",
        ),
    ] = None,
    now: Annotated[
        str | None, typer.Option(help="Decide as of this ISO 8601 time instead of the clock.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print decisions as JSON.")] = False,
) -> None:
    """Decide proposals and record the decisions."""
    moment = _parse_now(now)
    try:
        policy = load_pack(pack)
        source = context or _find_context(pack)
        provider = _open_context(source) if source is not None else StaticContextProvider()
        guard = Guard(
            policy,
            store=SqlStore(db),
            context=provider,
            clock=(lambda: moment) if moment is not None else None,
        )
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    decided: list[tuple[Path, Decision]] = []
    failed = False
    for path in proposals:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            decided.append((path, guard.decide(data)))
        except ValueError as exc:
            _error(f"{path}: not valid JSON: {exc}")
            failed = True
        except DiscretionError as exc:
            _error(f"{path}: {exc}")
            failed = True
    if as_json:
        items = [d.model_dump(mode="json") for _, d in decided]
        text = json.dumps(items[0] if len(items) == 1 else items, indent=2)
        sys.stdout.write(text + "\n")
    else:
        _print_decisions(decided, policy.version)
    if failed:
        raise typer.Exit(2)


def _print_decisions(decided: list[tuple[Path, Decision]], version: str) -> None:
    table = Table(title=f"decisions (policy {version[:19]})", show_lines=True)
    table.add_column("proposal")
    table.add_column("action")
    table.add_column("amount", justify="right")
    table.add_column("actor")
    table.add_column("outcome")
    table.add_column("role")
    table.add_column("rules")
    for path, decision in decided:
        style = _STYLE[decision.outcome]
        table.add_row(
            escape(path.stem),
            escape(decision.action),
            str(decision.amount) if decision.amount is not None else "",
            decision.actor_role,
            f"[{style}]{decision.outcome.value}[/{style}]",
            decision.required_role or "",
            escape("\n".join(decision.rules)),
        )
    out.print(table)
    if len(decided) == 1:
        out.print(decided[0][1].explanation, highlight=False, markup=False)


@pack_app.command("validate")
def pack_validate(
    path: Annotated[Path, typer.Argument(help="Pack file or folder.")],
) -> None:
    """Load a pack, compile every CEL expression, and print its version."""
    try:
        policy = load_pack(path)
    except DiscretionError as exc:
        raise _fail(str(exc), 1) from None
    out.print(f"[green]valid[/green] {escape(policy.name)} {policy.version}", highlight=False)
    out.print(
        f"{len(policy.actions)} actions, {len(policy.roles)} roles, {len(policy.rule_ids())} rules,"
        f" {len(policy.budgets)} budgets, from {len(policy.sources)} file(s)",
        highlight=False,
    )


@ledger_app.command("verify")
def ledger_verify(db: DbOption = DEFAULT_DB) -> None:
    """Check the hash chain; name the first record that was edited, deleted or reordered."""
    try:
        store = SqlStore(db, create=False)
        count = store.verify()
    except LedgerIntegrityError as exc:
        raise _fail(f"ledger does not verify: {exc}", 1) from None
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    out.print(f"[green]ok[/green] {count} records verify", highlight=False)


_CSV_COLUMNS = (
    "seq",
    "kind",
    "subject_id",
    "decided_at",
    "action",
    "outcome",
    "actor_id",
    "actor_role",
    "amount",
    "currency",
    "required_role",
    "rules",
    "policy_version",
    "hash",
)


def _csv_row(record: dict[str, Any]) -> dict[str, Any]:
    decision = record["body"].get("decision", {})
    amount = decision.get("amount") or {}
    return {
        "seq": record["seq"],
        "kind": record["kind"],
        "subject_id": record["subject_id"],
        "decided_at": decision.get("decided_at", ""),
        "action": decision.get("action", ""),
        "outcome": decision.get("outcome", ""),
        "actor_id": decision.get("actor_id", ""),
        "actor_role": decision.get("actor_role", ""),
        "amount": amount.get("amount", ""),
        "currency": amount.get("currency", ""),
        "required_role": decision.get("required_role") or "",
        "rules": " ".join(decision.get("rules", [])),
        "policy_version": decision.get("policy_version", ""),
        "hash": record["hash"],
    }


@ledger_app.command("export")
def ledger_export(
    db: DbOption = DEFAULT_DB,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv.")] = (
        ExportFormat.JSONL
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Export every lineage record."""
    try:
        store = SqlStore(db, create=False)
        records = list(store.export())
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    stream = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        if fmt is ExportFormat.JSONL:
            for record in records:
                stream.write(json.dumps(record, sort_keys=True) + "\n")
        else:
            writer = csv.DictWriter(stream, fieldnames=_CSV_COLUMNS)
            writer.writeheader()
            for record in records:
                writer.writerow(_csv_row(record))
    finally:
        if output:
            stream.close()
    if output:
        err.print(f"wrote {len(records)} records to {output}", highlight=False, markup=False)
