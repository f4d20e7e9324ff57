"""`discretion serve`, `discretion approvals ...` and `discretion token ...`.

Registered on the main `discretion` app by `discretion.cli`. The shared helpers of the command
line (errors, consoles, finding a case database beside the pack) are imported from it when a
command runs, so this module loads before it without a cycle.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from discretion.api import Identity, Tokens
from discretion.approvals._model import Approval, ApprovalStatus
from discretion.errors import DiscretionError
from discretion.money import Money
from discretion.policy import load_pack
from discretion.store import SqlStore
from discretion.types import utc_now

if TYPE_CHECKING:
    from discretion.guard import Guard

__all__ = ["approvals_app", "serve", "token_app"]

approvals_app = typer.Typer(
    help="List and decide the cases routed to people.", no_args_is_help=True
)
token_app = typer.Typer(
    help="Bearer tokens for agents and approvers (the server's identities).",
    no_args_is_help=True,
)

_DEFAULT_DB = "sqlite:///discretion.db"
DbOption = Annotated[
    str, typer.Option("--db", help="Database URL (sqlite:///path.db or postgresql://...).")
]
PackOption = Annotated[
    Path, typer.Option("--pack", help="Pack file or folder: the current policy.")
]
ContextOption = Annotated[
    Path | None,
    typer.Option(
        help="Facts: a .json file, a .sql case script or a SQLite case database."
        " Found beside the pack when absent.",
    ),
]
TokenOption = Annotated[
    str,
    typer.Option(
        "--token",
        envvar="DISCRETION_TOKEN",
        help="Your approver token (or set DISCRETION_TOKEN).",
        show_default=False,
    ),
]
NoteOption = Annotated[str, typer.Option("--note", help="Why (required; recorded).")]
NowOption = Annotated[
    str | None,
    typer.Option(help="Act as of this ISO 8601 time instead of the clock (for replays and tests)."),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    from discretion import cli

    return cli._fail(message, code)


def _store(db: str, *, create: bool) -> SqlStore:
    store = SqlStore(db, create=create)
    if not create:
        # An existing database made before approvals existed gets their tables now.
        store.create_schema()
    return store


def _guard(
    pack: Path, db: str, context: Path | None, *, create: bool = False, now: str | None = None
) -> Guard:
    from discretion import cli
    from discretion.context import StaticContextProvider
    from discretion.guard import Guard

    moment = cli._parse_now(now)
    policy = load_pack(pack)
    source = context or cli._find_context(pack)
    provider = cli._open_context(source) if source is not None else StaticContextProvider()
    return Guard(
        policy,
        store=_store(db, create=create),
        context=provider,
        clock=(lambda: moment) if moment is not None else None,
    )


def _identity(guard: Guard, token: str) -> Identity | None:
    return Tokens(guard.store, clock=guard.now).authenticate(token.strip())


def _print(approvals: list[Approval]) -> None:
    from discretion import cli

    table = Table(title="approvals", show_lines=False)
    for column in ("id", "status", "due", "action", "amount", "reason", "by", "routed to"):
        table.add_column(column, justify="right" if column == "amount" else "left")
    for a in approvals:
        table.add_row(
            escape(a.id),
            a.status.value,
            a.due_at.strftime("%Y-%m-%d %H:%M"),
            escape(a.action),
            str(a.amount) if a.amount is not None else "",
            escape(a.reason or ""),
            escape(a.actor_id),
            escape(a.required_role),
        )
    cli.out.print(table)


@approvals_app.command("list")
def approvals_list(
    pack: PackOption,
    db: DbOption = _DEFAULT_DB,
    status: Annotated[
        ApprovalStatus | None, typer.Option(help="Only those in this state.")
    ] = ApprovalStatus.PENDING,
    role: Annotated[
        str | None, typer.Option(help="Only those a holder of this role may decide.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    now: NowOption = None,
) -> None:
    """List approvals, soonest due first (pending ones by default)."""
    try:
        guard = _guard(pack, db, None, now=now)
        found = guard.approvals.list(status=status, role=role)
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps([a.model_dump(mode="json") for a in found], indent=2) + "\n")
    else:
        _print(found)


@approvals_app.command("show")
def approvals_show(
    approval_id: Annotated[str, typer.Argument(help="The approval (routed decision) id.")],
    pack: PackOption,
    db: DbOption = _DEFAULT_DB,
) -> None:
    """Show an approval, why it was routed, and its lineage."""
    from discretion import cli

    try:
        guard = _guard(pack, db, None)
        approval = guard.approvals.get(approval_id)
        decision = guard.approvals.decision(approval_id)
        history = guard.approvals.history(approval_id)
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    _print([approval])
    cli.out.print(decision.explanation, highlight=False, markup=False)
    cli.out.print(f"rules: {', '.join(decision.rules)}", highlight=False, markup=False)
    tool = approval.tool
    if tool is not None:
        cli.out.print(
            f"tool call: {tool.get('name')} {json.dumps(tool.get('arguments'), sort_keys=True)}",
            highlight=False,
            markup=False,
        )
    for record in history:
        by = record["body"].get("by") or {}
        who = f" by {by.get('id')} ({by.get('role')})" if by else ""
        note = f": {record['body'].get('note')}" if record["body"].get("note") else ""
        cli.out.print(
            f"#{record['seq']} {record['kind']}{who}{note}", highlight=False, markup=False
        )


def _decide(
    verb: str,
    approval_id: str,
    pack: Path,
    db: str,
    context: Path | None,
    token: str,
    note: str,
    now: str | None,
    amount: str | None = None,
) -> None:
    from discretion import cli

    try:
        guard = _guard(pack, db, context, now=now)
        identity = _identity(guard, token)
        if identity is None:
            raise _fail("the token is unknown or revoked; make one with `discretion token create`")
        approver = identity.actor()
        if verb == "approve":
            current = guard.approvals.get(approval_id)
            granted = (
                Money.of(amount, current.requested_amount.currency)
                if amount is not None and current.requested_amount is not None
                else None
            )
            result = guard.approvals.approve(
                approval_id, approver=approver, note=note, amount=granted
            )
        elif verb == "reject":
            result = guard.approvals.reject(approval_id, approver=approver, note=note)
        else:
            result = guard.approvals.escalate(approval_id, approver=approver, note=note)
    except DiscretionError as exc:
        raise _fail(str(exc), 1) from None
    amount_text = f" for {result.amount}" if result.amount is not None else ""
    cli.out.print(
        f"{result.id}: {result.status.value}{amount_text if verb == 'approve' else ''}"
        f" (routed to {result.required_role})",
        highlight=False,
        markup=False,
    )


@approvals_app.command("approve")
def approvals_approve(
    approval_id: Annotated[str, typer.Argument(help="The approval (routed decision) id.")],
    pack: PackOption,
    note: NoteOption,
    token: TokenOption,
    db: DbOption = _DEFAULT_DB,
    context: ContextOption = None,
    amount: Annotated[
        str | None, typer.Option(help="A lower amount to grant, in the case's currency.")
    ] = None,
    now: NowOption = None,
) -> None:
    """Approve a routed case (re-checked first); its tool call is queued to run once."""
    _decide("approve", approval_id, pack, db, context, token, note, now, amount)


@approvals_app.command("reject")
def approvals_reject(
    approval_id: Annotated[str, typer.Argument(help="The approval (routed decision) id.")],
    pack: PackOption,
    note: NoteOption,
    token: TokenOption,
    db: DbOption = _DEFAULT_DB,
    now: NowOption = None,
) -> None:
    """Reject a routed case."""
    _decide("reject", approval_id, pack, db, None, token, note, now)


@approvals_app.command("escalate")
def approvals_escalate(
    approval_id: Annotated[str, typer.Argument(help="The approval (routed decision) id.")],
    pack: PackOption,
    note: NoteOption,
    token: TokenOption,
    db: DbOption = _DEFAULT_DB,
    now: NowOption = None,
) -> None:
    """Send a routed case one rung up the ladder."""
    _decide("escalate", approval_id, pack, db, None, token, note, now)


@approvals_app.command("expire")
def approvals_expire(pack: PackOption, db: DbOption = _DEFAULT_DB, now: NowOption = None) -> None:
    """Expire every pending approval past its due time (run it from a scheduler)."""
    from discretion import cli

    try:
        expired = _guard(pack, db, None, now=now).approvals.expire_due()
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    cli.out.print(f"{len(expired)} approval(s) expired", highlight=False)


@token_app.command("create")
def token_create(
    subject: Annotated[str, typer.Option("--subject", help="The agent's or person's id.")],
    role: Annotated[str, typer.Option("--role", help="Their role in the pack.")],
    ai: Annotated[bool, typer.Option("--ai", help="The subject is an AI agent.")] = False,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    pack: Annotated[
        Path | None, typer.Option("--pack", help="Check the role against this pack.")
    ] = None,
    db: DbOption = _DEFAULT_DB,
) -> None:
    """Create a bearer token; it is printed once, and only its SHA-256 is stored."""
    from discretion import cli

    try:
        if pack is not None:
            policy = load_pack(pack)
            found = policy.role(role)
            if found is None:
                raise _fail(
                    f"role {role!r} is not a role of pack {policy.name!r};"
                    f" roles: {', '.join(r.id for r in policy.roles)}"
                )
            if found.is_ai != ai:
                kind = "an AI" if found.is_ai else "a human"
                raise _fail(f"role {role!r} is {kind} role: pass --ai exactly for AI roles")
        secret, identity = Tokens(_store(db, create=True), clock=utc_now).create(
            subject_id=subject, role=role, is_ai=ai, label=label
        )
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    cli.err.print(
        f"token {identity.token_id} for {identity.subject_id} ({identity.role}); shown only"
        " now, keep it secret",
        highlight=False,
        markup=False,
    )
    sys.stdout.write(secret + "\n")


@token_app.command("list")
def token_list(db: DbOption = _DEFAULT_DB) -> None:
    """List live tokens (ids and subjects, never the tokens)."""
    from discretion import cli

    try:
        found = Tokens(_store(db, create=False), clock=utc_now).list()
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    table = Table(title="tokens")
    for column in ("id", "subject", "role", "ai", "label"):
        table.add_column(column)
    for identity in found:
        table.add_row(
            identity.token_id,
            escape(identity.subject_id),
            escape(identity.role),
            "yes" if identity.is_ai else "",
            escape(identity.label),
        )
    cli.out.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (tok_...).")],
    db: DbOption = _DEFAULT_DB,
) -> None:
    """Revoke a token; its UI sessions end with it."""
    from discretion import cli

    try:
        revoked = Tokens(_store(db, create=False), clock=utc_now).revoke(token_id)
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    if not revoked:
        raise _fail(f"no live token {token_id!r}", 1)
    cli.out.print(f"revoked {token_id}", highlight=False)


def serve(
    pack: PackOption,
    db: DbOption = _DEFAULT_DB,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    context: ContextOption = None,
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
            help="Decisions each worker works on at once; by default 2 when deciding waits on"
            " nothing outside the process (no LLM judge, in-process context), else 40.",
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
) -> None:
    """Serve the decision API, the approver UI and OpenAPI (/docs) with uvicorn."""
    try:
        import uvicorn

        from discretion.api import create_app
    except ImportError as exc:
        raise _fail(f"{exc}; the server needs: pip install 'discretion[server]'") from None
    from discretion.signing import load_signer
    from discretion.store import CheckpointWriter

    try:
        guard = _guard(pack, db, context, create=True)
        app = create_app(guard, secure_cookies=secure_cookies, concurrency=concurrency)
        signer = load_signer(signing_key) if signing_key is not None else None
        writer = (
            CheckpointWriter(guard.store, every=timedelta(seconds=checkpoint_every), signer=signer)
            if checkpoint_every > 0
            else None
        )
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    if writer is not None:
        writer.start()
    try:
        if workers == 1:
            uvicorn.run(app, host=host, port=port, log_level="info")
        else:
            _serve_workers(
                pack,
                db,
                context,
                secure_cookies,
                host=host,
                port=port,
                workers=workers,
                concurrency=concurrency,
            )
    finally:
        if writer is not None:
            writer.stop()


def _serve_workers(
    pack: Path,
    db: str,
    context: Path | None,
    secure_cookies: bool,
    *,
    host: str,
    port: int,
    workers: int,
    concurrency: int | None,
) -> None:
    """Run `workers` uvicorn processes, each building its own app from the environment."""
    import os
    import tempfile

    import uvicorn

    from discretion.api._replicas import ENVIRONMENT

    os.environ[ENVIRONMENT["pack"]] = str(pack.resolve())
    os.environ[ENVIRONMENT["db"]] = db
    if context is not None:
        os.environ[ENVIRONMENT["context"]] = str(context.resolve())
    os.environ[ENVIRONMENT["secure_cookies"]] = "1" if secure_cookies else "0"
    if concurrency is not None:
        os.environ[ENVIRONMENT["concurrency"]] = str(concurrency)
    # Each worker counts its own decisions; /metrics sums them from these files.
    with tempfile.TemporaryDirectory(prefix="discretion-metrics-") as folder:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", folder)
        uvicorn.run(
            "discretion.api._replicas:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
        )
