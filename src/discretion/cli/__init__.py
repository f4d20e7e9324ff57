"""The `discretion` command line: a thin edge over the library.

One module per command group, each importing only the shared helpers in `_common` and the
library; every command that decides builds its guard from one `discretion.settings.Settings`
with `build_guard`. Nothing in the library imports this package.
"""

import typer

from discretion.cli._approvals import approvals_app
from discretion.cli._check import check
from discretion.cli._db import db_app
from discretion.cli._evals import eval_suites, replay_ledger
from discretion.cli._ledger import ledger_app
from discretion.cli._mcp import mcp
from discretion.cli._pack import pack_app
from discretion.cli._precedent import precedent_app
from discretion.cli._serve import serve
from discretion.cli._tokens import token_app

__all__ = ["app"]

app = typer.Typer(
    help="Govern the exceptions AI support agents make.",
    no_args_is_help=True,
    add_completion=False,
)
app.command()(serve)
app.command()(check)
app.command("eval")(eval_suites)
app.command("replay")(replay_ledger)
app.command()(mcp)
app.add_typer(pack_app, name="pack")
app.add_typer(ledger_app, name="ledger")
app.add_typer(approvals_app, name="approvals")
app.add_typer(token_app, name="token")
app.add_typer(precedent_app, name="precedent")
app.add_typer(db_app, name="db")
