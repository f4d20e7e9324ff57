"""`discretion webhooks ...`: deliver the ledger's events once, and see where each endpoint is."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from discretion.cli import _common
from discretion.cli._common import DEFAULT_DB, DbOption, PublicUrlOption, WebhookOption
from discretion.errors import DiscretionError

__all__ = ["webhooks_app"]

webhooks_app = typer.Typer(
    help="Deliver signed webhook events, and see each endpoint's progress.", no_args_is_help=True
)


@webhooks_app.command("deliver")
def webhooks_deliver(
    pack: Annotated[Path, typer.Option("--pack", help="Pack file or folder: the current policy.")],
    webhook: WebhookOption = None,
    db: DbOption = DEFAULT_DB,
    public_url: PublicUrlOption = None,
) -> None:
    """Expire overdue approvals, then send each endpoint what it has not been sent (one pass).

    A new endpoint starts at the ledger as it is now. Exits 1 when an endpoint could not be
    delivered to; it is tried again once its backoff has passed.
    """
    from discretion.settings import build_deliverer, build_guard
    from discretion.webhooks import deliver_once

    try:
        settings = _common.settings(
            pack, db, create_schema=False, webhooks=webhook, public_url=public_url
        )
        guard = build_guard(settings)
        deliverer = build_deliverer(settings, guard)
        if deliverer is None:
            raise _common.fail("name at least one --webhook to deliver to")
        try:
            deliveries = deliver_once(guard, deliverer)
        finally:
            deliverer.close()
            guard.store.close()
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    failed = False
    for delivery in deliveries:
        if delivery.error is not None:
            failed = True
            _common.error(f"webhook {delivery.endpoint}: {delivery.error}")
        state = f"{delivery.sent} sent" if delivery.claimed else "held elsewhere, or backing off"
        _common.out.print(f"{escape(delivery.endpoint)}: {state}", highlight=False)
    if failed:
        raise typer.Exit(1)


@webhooks_app.command("status")
def webhooks_status(db: DbOption = DEFAULT_DB) -> None:
    """Each enrolled endpoint: events sent, failed attempts, next attempt, last error."""
    from discretion.store import SqlStore

    try:
        store = SqlStore(db, create=False)
        try:
            rows = store.webhooks.list()
        finally:
            store.close()
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    table = Table(title="webhook endpoints")
    for column in ("endpoint", "url", "sent", "ledger seq", "attempts", "next attempt", "error"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            escape(row.endpoint),
            escape(row.url),
            str(row.delivered),
            str(row.last_seq),
            str(row.attempts),
            row.next_attempt_at.isoformat() if row.next_attempt_at else "",
            escape(row.last_error or ""),
        )
    _common.out.print(table)
