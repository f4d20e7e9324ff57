"""`discretion token ...`: bearer tokens for agents and approvers (the server's identities)."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from discretion.cli import _common
from discretion.cli._common import DEFAULT_DB, DbOption
from discretion.errors import DiscretionError

if TYPE_CHECKING:
    from discretion.store import SqlStore

__all__ = ["token_app"]

token_app = typer.Typer(
    help="Bearer tokens for agents and approvers (the server's identities).",
    no_args_is_help=True,
)


def _store(db: str, *, create: bool) -> SqlStore:
    from discretion.store import SqlStore

    store = SqlStore(db, create=create)
    if not create:
        # An existing database made before tokens existed gets their tables now.
        store.create_schema()
    return store


@token_app.command("create")
def token_create(
    subject: Annotated[str, typer.Option("--subject", help="The agent's or person's id.")],
    role: Annotated[str, typer.Option("--role", help="Their role in the pack.")],
    pack: Annotated[
        Path,
        typer.Option(
            "--pack",
            help="The pack the token is for: the role must be one of its roles.",
            show_default=False,
        ),
    ],
    ai: Annotated[bool, typer.Option("--ai", help="The subject is an AI agent.")] = False,
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Create a bearer token; it is printed once, and only its SHA-256 is stored."""
    from discretion.api import Tokens
    from discretion.policy import load_pack
    from discretion.types import utc_now

    try:
        policy = load_pack(pack)
        found = policy.role(role)
        if found is None:
            # A misspelt role would sign in to an empty queue and decide nothing, unwarned.
            roles = [r.id for r in policy.roles]
            close = difflib.get_close_matches(role, roles, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _common.fail(
                f"role {role!r} is not a role of pack {policy.name!r}{hint};"
                f" its roles: {', '.join(roles)}"
            )
        if found.is_ai != ai:
            kind = "an AI" if found.is_ai else "a human"
            raise _common.fail(f"role {role!r} is {kind} role: pass --ai exactly for AI roles")
        secret, identity = Tokens(_store(db, create=True), clock=utc_now).create(
            subject_id=subject, role=role, is_ai=ai, label=label
        )
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    _common.err.print(
        f"token {identity.token_id} for {identity.subject_id} ({identity.role}); shown only"
        " now, keep it secret",
        highlight=False,
        markup=False,
    )
    sys.stdout.write(secret + "\n")


@token_app.command("list")
def token_list(db: DbOption = DEFAULT_DB) -> None:
    """List live tokens (ids and subjects, never the tokens)."""
    from rich.table import Table

    from discretion.api import Tokens
    from discretion.types import utc_now

    try:
        found = Tokens(_store(db, create=False), clock=utc_now).list()
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
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
    _common.out.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (tok_...).")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Revoke a token; its UI sessions end with it."""
    from discretion.api import Tokens
    from discretion.types import utc_now

    try:
        revoked = Tokens(_store(db, create=False), clock=utc_now).revoke(token_id)
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    if not revoked:
        raise _common.fail(f"no live token {token_id!r}", 1)
    _common.out.print(f"revoked {token_id}", highlight=False)
