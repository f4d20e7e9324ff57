"""`discretion db ...`: migrate the database schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from discretion.cli import _common
from discretion.cli._common import DEFAULT_DB, DbOption
from discretion.errors import DiscretionError

__all__ = ["db_app"]

db_app = typer.Typer(help="Migrate the database schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(
    db: DbOption = DEFAULT_DB,
    revision: Annotated[
        str, typer.Option(help="The revision to reach; the newest this version ships.")
    ] = "head",
) -> None:
    """Migrate the schema to the newest revision (run once per deploy, before the replicas)."""
    # Alembic loads only for this command, not for every start of the command line.
    from discretion.store import SqlStore, upgrade

    try:
        before, after = upgrade(db, revision)
        adopted = 0
        if revision == "head":
            # Rows from before working rows were bound to the ledger get a record of their own.
            store = SqlStore(db, create=False)
            try:
                adopted = store.bind_rows(at=datetime.now(UTC))
            finally:
                store.close()
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    _common.out.print(f"[green]ok[/green] schema {before or 'none'} -> {after}", highlight=False)
    if adopted:
        _common.out.print(f"bound {adopted} existing rows to the ledger (row.adopted records)")
