"""The `discretion` command line: a thin edge over the library.

One module per command group, each importing only the shared helpers in `_common` and the
library; every command that decides builds its guard from one `discretion.settings.Settings`
with `build_guard`. Nothing in the library imports this package.
"""

import sys

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
from discretion.cli._webhooks import webhooks_app

__all__ = ["app"]

_GROUPS = {
    "pack": pack_app,
    "ledger": ledger_app,
    "approvals": approvals_app,
    "token": token_app,
    "precedent": precedent_app,
    "db": db_app,
    "webhooks": webhooks_app,
}

# Help read off a terminal (piped, in CI logs, in docs) is plain text, one line per option and
# paragraph: rich's boxes wrap at 80 columns there and label every flag `<bool>`.
_IS_PLAIN = not sys.stdout.isatty()
_WIDE = {"max_content_width": 10_000, "terminal_width": 10_000}

app = typer.Typer(
    help="Govern the exceptions AI support agents make.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None if _IS_PLAIN else "rich",
    context_settings=_WIDE if _IS_PLAIN else {},
)
app.command()(serve)
app.command()(check)
app.command("eval")(eval_suites)
app.command("replay")(replay_ledger)
app.command()(mcp)
for name, group in _GROUPS.items():
    if _IS_PLAIN:
        group.rich_markup_mode = None
    app.add_typer(group, name=name)
