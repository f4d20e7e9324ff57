"""`discretion serve`: the decision API, the approver UI and OpenAPI, with uvicorn."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from discretion.cli import _common
from discretion.cli._common import (
    DEFAULT_DB,
    ContextFactoryOption,
    ContextOption,
    DbOption,
    JudgeOption,
    PublicUrlOption,
    WebhookOption,
)
from discretion.errors import DiscretionError

__all__ = ["serve"]


def serve(
    pack: Annotated[Path, typer.Option("--pack", help="Pack file or folder: the current policy.")],
    db: DbOption = DEFAULT_DB,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    context: ContextOption = None,
    context_factory: ContextFactoryOption = None,
    judge: JudgeOption = None,
    shadow: Annotated[
        Path | None,
        typer.Option(
            help="A candidate pack decided in shadow: each decision also records what it would"
            " have decided, and the answer never changes.",
            show_default=False,
        ),
    ] = None,
    secure_cookies: Annotated[
        bool, typer.Option(help="Send UI cookies over HTTPS only (behind TLS).")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes; they share only the database (use PostgreSQL for several).",
        ),
    ] = 1,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Decisions each worker works on at once, in threads; by default one at a time"
            " on the event loop when deciding waits on nothing outside the process (no LLM"
            " judge, in-process context, SQLite), 2 on PostgreSQL, else 40.",
        ),
    ] = None,
    checkpoint_every: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds between ledger checkpoints (one more is written on shutdown); 0: none.",
        ),
    ] = 60.0,
    signing_key: Annotated[
        Path | None,
        typer.Option(
            envvar="DISCRETION_SIGNING_KEY",
            help="Sign checkpoints with this Ed25519 private key (PEM; see `ledger keygen`).",
        ),
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            help="An address (or *) of a proxy whose X-Forwarded-For is believed; repeat it for"
            " several. Without one, the client is the peer that connected.",
        ),
    ] = None,
    webhook: WebhookOption = None,
    public_url: PublicUrlOption = None,
    webhook_every: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Seconds between background passes: each expires overdue approvals (webhooks"
            " or not) and delivers the webhooks, so approval.expired events go out on time.",
        ),
    ] = 5.0,
    open_metrics: Annotated[
        bool,
        typer.Option(
            "--open-metrics",
            help="Serve /metrics without a token, for a scraper that cannot send one: budget"
            " use there tells each limit, so only where no agent can reach the port. Without"
            " it, /metrics asks for a person's bearer token.",
        ),
    ] = False,
) -> None:
    """Serve the decision API, the approver UI and OpenAPI (/docs) with uvicorn."""
    try:
        import uvicorn

        from discretion.api._replicas import app_from_settings, proxy_options, serve_workers
    except ImportError as exc:
        raise _common.fail(f"{exc}; the server needs: pip install 'discretion[server]'") from None
    from discretion.settings import build_guard
    from discretion.signing import load_signer
    from discretion.store import CheckpointWriter

    try:
        settings = _common.settings(
            pack,
            db,
            context=context,
            context_factory=context_factory,
            judge=judge,
            shadow=shadow,
            secure_cookies=secure_cookies,
            concurrency=concurrency,
            webhooks=webhook,
            public_url=public_url,
            webhook_every_s=webhook_every,
            open_metrics=open_metrics,
        )
        # Built here even for several workers: a mistake in the settings stops serve before any
        # worker starts, the schema is created once, and the checkpoint writer needs its store.
        guard = build_guard(settings)
        app = app_from_settings(settings, guard)
        signer = load_signer(signing_key) if signing_key is not None else None
        writer = (
            CheckpointWriter(guard.store, every=timedelta(seconds=checkpoint_every), signer=signer)
            if checkpoint_every > 0
            else None
        )
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    if writer is not None:
        writer.start()
    try:
        if workers == 1:
            uvicorn.run(
                app, host=host, port=port, log_level="info", **proxy_options(trusted_proxy or [])
            )
        else:
            serve_workers(
                settings,
                host=host,
                port=port,
                workers=workers,
                trusted_proxies=trusted_proxy or [],
            )
    finally:
        if writer is not None:
            writer.stop()
