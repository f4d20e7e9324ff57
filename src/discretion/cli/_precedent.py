"""`discretion precedent ...`: set, inspect and revoke precedent."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from discretion.cli import _common
from discretion.cli._common import DEFAULT_DB, DbOption
from discretion.errors import DiscretionError

if TYPE_CHECKING:
    from discretion.policy import PolicyPack
    from discretion.precedent import Precedent, Precedents

__all__ = ["precedent_app"]

precedent_app = typer.Typer(help="Set, inspect and revoke precedent.", no_args_is_help=True)


@contextmanager
def _precedents(db: str, pack: Path | None, now: datetime | None = None) -> Iterator[Precedents]:
    from discretion.policy import load_pack
    from discretion.precedent import Precedents
    from discretion.store import SqlStore
    from discretion.types import utc_now

    policy = load_pack(pack) if pack is not None else None
    store = SqlStore(db, create=pack is not None)
    clock = (lambda: moment) if (moment := now) is not None else utc_now
    try:
        yield Precedents(store, policy, clock=clock)
    finally:
        store.close()


def _scope_value(text: str, kind: str, key: str) -> Any:
    """A `--scope key=value` value typed as the pack declares the field; `min..max` is a range."""
    from pydantic import ValidationError

    from discretion.precedent import Range

    if ".." in text and kind in ("int", "money", "timestamp"):
        low, high = text.split("..", 1)
        try:
            return Range.model_validate({"min": low or None, "max": high or None})
        except ValidationError:
            what = "ISO 8601 times with their offset" if kind == "timestamp" else "numbers"
            raise _common.fail(
                f"--scope {key}: {text!r} is no range of {what}; write min..max, either side"
                " may be left out"
            ) from None
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise _common.fail(f"--scope {key}: {text!r} is not an int") from None
    if kind == "bool":
        if text not in ("true", "false"):
            raise _common.fail(f"--scope {key}: write true or false, not {text!r}")
        return text == "true"
    return text


@precedent_app.command("set")
def precedent_set(
    decision_id: Annotated[str, typer.Argument(help="The decision that granted the exception.")],
    pack: Annotated[Path, typer.Option("--pack", help="Pack file or folder.")],
    by: Annotated[str, typer.Option("--by", help="Your id: the grantor.")],
    role: Annotated[str, typer.Option("--role", help="The role you grant under.")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="key=value a case must match (key=min..max for a range)."),
    ],
    note: Annotated[str, typer.Option("--note", help="Why this may be cited again.")],
    citations: Annotated[int, typer.Option("--citations", help="Citation cap.")] = 1,
    max_amount: Annotated[
        str | None,
        typer.Option("--max-amount", help="Bound, in the decision's currency."),
    ] = None,
    max_ratio: Annotated[
        str | None, typer.Option("--max-ratio", help="Bound as a ratio of the pack's ratio_of.")
    ] = None,
    expires_in: Annotated[
        str, typer.Option("--expires-in", help="How long it stays citable: 30d, 12h, ...")
    ] = "30d",
    one_off: Annotated[
        bool, typer.Option("--one-off", help="Record it as a one-off: never cited or learned.")
    ] = False,
    db: DbOption = DEFAULT_DB,
    now: Annotated[str | None, typer.Option(help="Act as of this ISO 8601 time.")] = None,
) -> None:
    """Make a granted exception citable precedent, inside a scope and bounds."""
    from discretion.proposal import Actor
    from discretion.types import utc_now

    moment = _common.parse_now(now) or utc_now()
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if len(expires_in) < 2 or expires_in[-1] not in units or not expires_in[:-1].isdigit():
        raise _common.fail(
            f"--expires-in {expires_in!r}: write a count and a unit, such as 30d or 12h"
        )
    expires_at = moment + timedelta(**{units[expires_in[-1]]: int(expires_in[:-1])})
    try:
        with _precedents(db, pack, moment) as precedents:
            policy = precedents.policy
            decided = precedents.store.decision(decision_id)
            spec = _precedent_spec(
                policy,
                scope,
                currency=decided.amount.currency
                if decided is not None and decided.amount is not None
                else policy.currency,
                note=note,
                citations=citations,
                max_amount=max_amount,
                max_ratio=max_ratio,
                expires_at=expires_at,
                one_off=one_off,
            )
            grantor_role = policy.role(role)
            grantor = Actor(id=by, role=role, is_ai=grantor_role.is_ai if grantor_role else False)
            precedent = precedents.set(decision_id, spec, grantor=grantor)
    except (DiscretionError, ValueError) as exc:
        raise _common.fail(str(exc)) from None
    _common.out.print(f"[green]set[/green] {precedent.id}", highlight=False)
    _print_precedent(precedent)


def _precedent_spec(
    pack: PolicyPack,
    scope: list[str],
    *,
    currency: str,
    note: str,
    citations: int,
    max_amount: str | None,
    max_ratio: str | None,
    expires_at: datetime,
    one_off: bool,
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in scope:
        key, sep, text = item.partition("=")
        if not sep or key not in pack.fields:
            raise _common.fail(
                f"--scope {item!r}: write key=value with a context field of the pack;"
                f" fields: {', '.join(sorted(pack.fields))}"
            )
        values[key] = _scope_value(text, pack.fields[key].type, key)
    return {
        "scope": values,
        "max_amount": {"amount": max_amount, "currency": currency} if max_amount else None,
        "max_ratio": max_ratio,
        "expires_at": expires_at,
        "citations": citations,
        "learnable": not one_off,
        "note": note,
    }


@precedent_app.command("list")
def precedent_list(
    db: DbOption = DEFAULT_DB,
    action: Annotated[str | None, typer.Option(help="Only this action.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this exception reason.")] = None,
    active: Annotated[
        bool, typer.Option("--active", help="Only citable ones: not revoked, expired or used up.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List precedents, newest first."""
    from rich.table import Table

    try:
        with _precedents(db, None) as precedents:
            found = precedents.list(action=action, reason=reason, active_only=active, limit=1000)
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    if as_json:
        for precedent in found:
            sys.stdout.write(precedent.model_dump_json() + "\n")
        return
    table = Table(title=f"{len(found)} precedents")
    for column in ("id", "action", "reason", "scope", "bound", "uses", "expires", "state"):
        table.add_column(column)
    for p in found:
        state = "revoked" if p.revoked_at else "one-off" if not p.learnable else "citable"
        bound = " / ".join(
            x
            for x in (
                str(p.max_amount) if p.max_amount else "",
                f"{p.max_ratio} x {p.ratio_of}" if p.max_ratio else "",
            )
            if x
        )
        table.add_row(
            p.id,
            escape(p.action),
            escape(p.reason),
            escape(json.dumps(p.scope, sort_keys=True)),
            bound,
            f"{p.uses}/{p.citations}",
            p.expires_at.isoformat(timespec="minutes"),
            state,
        )
    _common.out.print(table)


@precedent_app.command("show")
def precedent_show(
    precedent_id: Annotated[str, typer.Argument(help="The precedent's id.")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Print one precedent as JSON."""
    try:
        with _precedents(db, None) as precedents:
            precedent = precedents.get(precedent_id)
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    if precedent is None:
        raise _common.fail(f"precedent {precedent_id!r} does not exist", 1)
    _print_precedent(precedent)


@precedent_app.command("revoke")
def precedent_revoke(
    precedent_id: Annotated[str, typer.Argument(help="The precedent's id.")],
    pack: Annotated[Path, typer.Option("--pack", help="Pack file or folder.")],
    by: Annotated[str, typer.Option("--by", help="Your id.")],
    role: Annotated[str, typer.Option("--role", help="Your role.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it may no longer be cited.")],
    db: DbOption = DEFAULT_DB,
    now: Annotated[str | None, typer.Option(help="Act as of this ISO 8601 time.")] = None,
) -> None:
    """Stop a precedent from being cited; the revocation is recorded in the lineage."""
    from discretion.proposal import Actor

    try:
        with _precedents(db, pack, _common.parse_now(now)) as precedents:
            revoked = precedents.revoke(
                precedent_id, by=Actor(id=by, role=role, is_ai=False), reason=reason
            )
    except (DiscretionError, ValueError) as exc:
        raise _common.fail(str(exc)) from None
    _common.out.print(f"[yellow]revoked[/yellow] {revoked.id}", highlight=False)


def _print_precedent(precedent: Precedent) -> None:
    sys.stdout.write(json.dumps(precedent.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
