"""`discretion approvals ...`: list and decide the cases routed to people."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape

from discretion.cli import _common
from discretion.cli._common import DEFAULT_DB, ContextOption, DbOption
from discretion.errors import DiscretionError

if TYPE_CHECKING:
    from discretion.api import Identity
    from discretion.approvals import Approval
    from discretion.guard import Guard

__all__ = ["StatusChoice", "approvals_app"]

StatusChoice = Literal["pending", "approved", "rejected", "expired", "cancelled"]
"""`ApprovalStatus`'s values, spelt out so that the command line starts without the approvals
module and the models it loads (a test holds the two equal)."""

approvals_app = typer.Typer(
    help="List and decide the cases routed to people.", no_args_is_help=True
)

PackOption = Annotated[
    Path, typer.Option("--pack", help="Pack file or folder: the current policy.")
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


def _guard(pack: Path, db: str, context: Path | None = None, now: str | None = None) -> Guard:
    from discretion.settings import build_guard

    # Approvals act on a ledger that exists: a mistyped --db is an error, not a new database.
    return build_guard(_common.settings(pack, db, context=context, now=now, create_schema=False))


def _identity(guard: Guard, token: str) -> Identity | None:
    from discretion.api import Tokens

    return Tokens(guard.store, clock=guard.now).authenticate(token.strip())


def _print(approvals: list[Approval]) -> None:
    from rich.table import Table

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
    _common.out.print(table)


@approvals_app.command("list")
def approvals_list(
    pack: PackOption,
    db: DbOption = DEFAULT_DB,
    status: Annotated[
        StatusChoice | None, typer.Option(help="Only those in this state.")
    ] = "pending",
    role: Annotated[
        str | None, typer.Option(help="Only those a holder of this role may decide.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    context: ContextOption = None,
    now: NowOption = None,
) -> None:
    """List approvals, soonest due first (pending ones by default)."""
    try:
        guard = _guard(pack, db, context, now)
        found = guard.approvals.list(status=status, role=role)
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps([a.model_dump(mode="json") for a in found], indent=2) + "\n")
    else:
        _print(found)


@approvals_app.command("show")
def approvals_show(
    approval_id: Annotated[str, typer.Argument(help="The approval (routed decision) id.")],
    pack: PackOption,
    db: DbOption = DEFAULT_DB,
    context: ContextOption = None,
) -> None:
    """Show an approval, why it was routed, and its lineage."""
    try:
        guard = _guard(pack, db, context)
        approval = guard.approvals.get(approval_id)
        decision = guard.approvals.decision(approval_id)
        history = guard.approvals.history(approval_id)
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    _print([approval])
    out = _common.out
    out.print(decision.explanation, highlight=False, markup=False)
    out.print(f"rules: {', '.join(decision.rules)}", highlight=False, markup=False)
    tool = approval.tool
    if tool is not None:
        out.print(
            f"tool call: {tool.get('name')} {json.dumps(tool.get('arguments'), sort_keys=True)}",
            highlight=False,
            markup=False,
        )
    for record in history:
        by = record["body"].get("by") or {}
        who = f" by {by.get('id')} ({by.get('role')})" if by else ""
        note = f": {record['body'].get('note')}" if record["body"].get("note") else ""
        out.print(f"#{record['seq']} {record['kind']}{who}{note}", highlight=False, markup=False)


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
    from discretion.money import Money

    try:
        guard = _guard(pack, db, context, now)
        identity = _identity(guard, token)
        if identity is None:
            raise _common.fail(
                "the token is unknown or revoked; make one with `discretion token create`"
            )
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
        raise _common.fail(str(exc), 1) from None
    amount_text = f" for {result.amount}" if result.amount is not None else ""
    status = result.status.value
    if verb == "approve" and result.endorsement is not None and status == "pending":
        # The first of two approvals: the case waits for a second person.
        status = "pending a second approval"
        amount_text = f" for {result.endorsement.amount}" if result.endorsement.amount else ""
    _common.out.print(
        f"{result.id}: {status}{amount_text if verb == 'approve' else ''}"
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
    db: DbOption = DEFAULT_DB,
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
    db: DbOption = DEFAULT_DB,
    context: ContextOption = None,
    now: NowOption = None,
) -> None:
    """Reject a routed case."""
    _decide("reject", approval_id, pack, db, context, token, note, now)


@approvals_app.command("escalate")
def approvals_escalate(
    approval_id: Annotated[str, typer.Argument(help="The approval (routed decision) id.")],
    pack: PackOption,
    note: NoteOption,
    token: TokenOption,
    db: DbOption = DEFAULT_DB,
    context: ContextOption = None,
    now: NowOption = None,
) -> None:
    """Send a routed case one rung up the ladder."""
    _decide("escalate", approval_id, pack, db, context, token, note, now)


@approvals_app.command("expire")
def approvals_expire(
    pack: PackOption,
    db: DbOption = DEFAULT_DB,
    context: ContextOption = None,
    now: NowOption = None,
) -> None:
    """Expire every pending approval past its due time (run it from a scheduler)."""
    try:
        expired = _guard(pack, db, context, now).approvals.expire_due()
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    _common.out.print(f"{len(expired)} approval(s) expired", highlight=False)
