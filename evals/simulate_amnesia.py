"""Simulate decision amnesia: an agent that repeats past approvals, with and without discretion.

    .venv/bin/python evals/simulate_amnesia.py [--tickets 1000] [--seed 7] [--html amnesia.html]

Prints the cumulative exception money and the recent exception rate of both agents as the
tickets go by, and their totals; `--html` writes the charts as a self-contained page. The same
chart goes into the eval report with `discretion eval evals/ --amnesia 1000 --html report.html`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from discretion import load_pack
from discretion.evals import EvalReport, EvalRun, simulate_amnesia

ACME_PACK = Path(__file__).resolve().parent.parent / "examples" / "acme" / "pack"


def main(argv: list[str] | None = None) -> int:
    """Run the simulation, print the figures, and write the chart when asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, default=ACME_PACK, help="a pack with refunds")
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--html", type=Path, help="write the charts here")
    args = parser.parse_args(argv)

    result = simulate_amnesia(load_pack(args.pack), tickets=args.tickets, seed=args.seed)
    console = Console()
    table = Table(title=f"decision amnesia: {result.tickets} refund tickets (seed {result.seed})")
    columns = ("tickets", "ungoverned money", "governed money", "ungoverned rate", "governed rate")
    for column in columns:
        table.add_column(column, justify="right")
    for point in result.points:
        table.add_row(
            str(point.ticket),
            f"{point.ungoverned_money:,.2f}",
            f"{point.governed_money:,.2f}",
            f"{point.ungoverned_rate:.0%}",
            f"{point.governed_rate:.0%}",
        )
    console.print(table)
    console.print(
        f"ungoverned: {result.ungoverned_total:,.2f} {result.currency} in"
        f" {result.ungoverned_exceptions} exceptions ({result.self_approved} self-approved,"
        f" {result.outside_policy} that no role may grant)\n"
        f"behind discretion: {result.governed_total:,.2f} {result.currency} in"
        f" {result.governed_exceptions} exceptions ({result.routed} routed to people)"
    )
    if args.html is not None:
        report = EvalReport(EvalRun(suites=(), judge=None, extras={"amnesia": result}))
        args.html.write_text(report.html(), encoding="utf-8")
        console.print(f"wrote {args.html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
