"""`discretion eval` and `discretion replay`: eval suites, and a ledger under another pack."""

from __future__ import annotations

import json
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer

from discretion.cli import _common
from discretion.cli._common import DEFAULT_DB, DbOption
from discretion.errors import DiscretionError, LedgerIntegrityError

__all__ = ["JudgeChoice", "eval_suites", "replay_ledger"]

JudgeChoice = Literal["off", "recorded", "live"]
"""`discretion.evals.JudgeMode`'s values, spelt out so that the command line starts without the
evals package and all it loads (a test holds the two equal)."""


def eval_suites(
    paths: Annotated[
        list[Path], typer.Argument(help="Suite files, or folders searched for suites.", exists=True)
    ],
    judge: Annotated[
        JudgeChoice | None,
        typer.Option(
            help="off, recorded (each case's verdict) or live (the LLM); each suite's own when"
            " absent."
        ),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the full report as JSON here.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")
    ] = None,
    amnesia: Annotated[
        int,
        typer.Option(min=0, help="Also simulate decision amnesia over this many refund tickets."),
    ] = 0,
) -> None:
    """Run eval suites of edge-case tickets; exit 1 when a case fails or a threshold is missed."""
    from rich.progress import Progress

    from discretion.evals import evaluate, load_suites

    try:
        suites = load_suites(paths)
        # The bar goes to stderr, and only to a terminal, so --json on stdout stays clean.
        quiet = not _common.err.is_terminal
        columns = Progress.get_default_columns()
        with Progress(*columns, console=_common.err, transient=True, disable=quiet) as progress:
            task = progress.add_task("deciding", total=sum(len(s.cases) for s in suites))
            report = evaluate(
                suites, judge=judge, amnesia=amnesia, on_case=lambda _: progress.advance(task)
            )
        if json_path is not None:
            _common.write_file(json_path, json.dumps(report.to_json(), indent=2) + "\n")
        if html is not None:
            _common.write_file(html, report.html())
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    report.print(_common.out)
    if not report.is_passing:
        raise typer.Exit(1)


def _parse_since(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        raise _common.fail(
            f"--since {since!r} is not an ISO 8601 date or time, such as 2026-11-20"
        ) from None
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if moment.year < 1970:
        raise _common.fail(f"--since {since!r} is before any ledger: give a date from 1970 on")
    return moment


def replay_ledger(
    pack: Annotated[
        Path | None, typer.Option("--pack", help="The candidate pack file or folder.")
    ] = None,
    db: DbOption = DEFAULT_DB,
    since: Annotated[
        str | None, typer.Option(help="Only decisions made at or after this date or time (UTC).")
    ] = None,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="Report what the shadow pack recorded instead.")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the full report as JSON here.")
    ] = None,
    fail_on_loosen: Annotated[
        bool,
        typer.Option(
            "--fail-on-loosen",
            help="Exit 1 when the candidate lets more through: a route or deny becomes an"
            " allow, a deny becomes a route, a route goes to a lower role, or more money moves"
            " without a person under any action and reason.",
        ),
    ] = False,
    fail_on_change: Annotated[
        bool,
        typer.Option(
            "--fail-on-change",
            help="Exit 1 when any decision, or the money moved, would change at all.",
        ),
    ] = False,
) -> None:
    """Re-decide recorded proposals under another pack and report what would change.

    Each proposal is decided at its recorded time on its recorded facts; nothing is written to
    the ledger. With --fail-on-loosen or --fail-on-change it gates a pull request.
    """
    from discretion.evals import replay, shadow_report
    from discretion.store import SqlStore

    moment = _parse_since(since)
    if (pack is None) == (not shadow):
        raise _common.fail("give --pack CANDIDATE to replay, or --shadow to read shadow decisions")
    try:
        store = SqlStore(db, create=False)
        with closing(store):
            if pack is not None:
                report = replay(store, pack, since=moment)
            else:
                report = shadow_report(store, since=moment)
    except LedgerIntegrityError as exc:
        raise _common.fail(f"ledger does not verify, so it cannot be replayed: {exc}", 1) from None
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    report.print(_common.out)
    if json_path is not None:
        _common.write_file(json_path, json.dumps(report.to_json(), indent=2) + "\n")
    if fail_on_loosen and report.is_looser:
        more = ", ".join(
            f"{row.action} {row.reason} {row.delta:+} {row.currency}" for row in report.more_money
        )
        raise _common.fail(
            f"the candidate loosens {len(report.loosened)} decision(s)"
            + (f" and moves more money without a person ({more})" if more else "")
            + "; failing as --fail-on-loosen asks",
            1,
        )
    if fail_on_change and report.is_changed:
        raise _common.fail(
            f"the candidate changes {len(report.changes)} decision(s) or the money moved;"
            " failing as --fail-on-change asks",
            1,
        )
