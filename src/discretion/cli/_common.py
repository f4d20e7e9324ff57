"""What every command shares: the consoles, printing errors, common options, and `Settings`.

Commands print through `_common.out` and `_common.err`, read when they print, so tests (and
anything embedding the command line) can swap the consoles here once.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from discretion.errors import ConfigurationError
from discretion.settings import DEFAULT_DB, Settings

if TYPE_CHECKING:
    from discretion.webhooks import WebhookEndpoint

__all__ = [
    "DEFAULT_DB",
    "ContextFactoryOption",
    "ContextOption",
    "DbOption",
    "JudgeOption",
    "PublicUrlOption",
    "WebhookOption",
    "err",
    "error",
    "fail",
    "out",
    "parse_now",
    "settings",
]

# Tables are wide: when output is not a terminal, do not squeeze them to 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True)

DbOption = Annotated[
    str, typer.Option("--db", help="Database URL (sqlite:///path.db or postgresql://...).")
]
ContextOption = Annotated[
    Path | None,
    typer.Option(
        help="Facts: a .json file, a .sql case script or a SQLite case database."
        " Found beside the pack when absent.",
    ),
]
ContextFactoryOption = Annotated[
    str | None,
    typer.Option(
        "--context-factory",
        metavar="MODULE:CALLABLE",
        help="Facts from a provider: a callable on the Python path that takes no arguments and"
        " returns a ContextProvider. Instead of --context.",
        show_default=False,
    ),
]
JudgeOption = Annotated[
    str | None,
    typer.Option(
        "--judge",
        metavar="openai:MODEL",
        help="The LLM judge for the exceptions the pack sends to it; its key and endpoint come"
        " from OPENAI_API_KEY and DISCRETION_JUDGE_BASE_URL. None when absent.",
        show_default=False,
    ),
]


WebhookOption = Annotated[
    list[str] | None,
    typer.Option(
        "--webhook",
        metavar="'URL [events=..] [roles=..] [secret-env=..] [name=..]'",
        help="Send signed events to URL; repeat it for several. events= and roles= filter them"
        " (roles=tier2,finance: only cases arriving for those roles); the signing secret is read"
        " from DISCRETION_WEBHOOK_SECRET, or the variable secret-env= names.",
        show_default=False,
    ),
]
PublicUrlOption = Annotated[
    str | None,
    typer.Option(
        "--public-url",
        envvar="DISCRETION_PUBLIC_URL",
        help="The server's address as people reach it: webhook events link to the desk there.",
        show_default=False,
    ),
]


def error(message: str) -> None:
    """Print an error to stderr."""
    # Messages quote user input (amounts, expressions): print them as text, never as markup.
    # One line however narrow the console: an error is read in logs and CI output, and grepped.
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error and return the `typer.Exit` for the caller to raise."""
    error(message)
    return typer.Exit(code)


def write_file(path: Path, text: str) -> None:
    """Write a report the user asked for; a path that cannot be written is a usage error."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(
            f"cannot write {path}: {exc.strerror or exc}; give a path in a folder that exists"
        ) from None


def parse_now(now: str | None) -> datetime | None:
    """The `--now` option as an aware time; None when it is absent."""
    if now is None:
        return None
    try:
        moment = datetime.fromisoformat(now)
    except ValueError:
        raise fail(
            f"--now {now!r} is not an ISO 8601 time such as 2026-11-26T12:00:00+00:00"
        ) from None
    if moment.tzinfo is None:
        raise fail(f"--now {now!r} needs a UTC offset, such as +00:00")
    return moment


def settings(
    pack: Path,
    db: str,
    *,
    context: Path | None = None,
    context_factory: str | None = None,
    judge: str | None = None,
    now: str | None = None,
    shadow: Path | None = None,
    create_schema: bool = True,
    secure_cookies: bool = False,
    concurrency: int | None = None,
    webhooks: list[str] | None = None,
    public_url: str | None = None,
    webhook_every_s: float = 5.0,
    open_metrics: bool = False,
) -> Settings:
    """The command's options as the one `Settings` its guard is built from.

    Raises:
        ConfigurationError: as `Settings` does; commands report it like any error of theirs.
    """
    return Settings(
        pack=pack,
        db=db,
        context=context,
        context_factory=context_factory,
        judge=judge,
        now=parse_now(now),
        shadow=shadow,
        create_schema=create_schema,
        secure_cookies=secure_cookies,
        concurrency=concurrency,
        webhooks=webhook_endpoints(webhooks),
        public_url=public_url,
        webhook_every_s=webhook_every_s,
        open_metrics=open_metrics,
    )


def webhook_endpoints(specs: list[str] | None) -> tuple[WebhookEndpoint, ...]:
    """The `--webhook` options as endpoints.

    Raises:
        ConfigurationError: one is malformed; the message names it.
    """
    try:
        from discretion.webhooks import WebhookEndpoint

        return tuple(WebhookEndpoint.parse(spec) for spec in specs or ())
    except ConfigurationError as exc:
        raise ConfigurationError(f"--webhook: {exc}") from exc
