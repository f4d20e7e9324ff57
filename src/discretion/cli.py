"""The `discretion` command line: decide, validate packs, verify and export the lineage."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from discretion._learning import LEFT_OUT, learning_export
from discretion.approvals._cli import approvals_app, serve, token_app
from discretion.context import (
    ContextProvider,
    JsonContextProvider,
    SqliteCaseStore,
    StaticContextProvider,
)
from discretion.decision import Decision, Outcome
from discretion.errors import DiscretionError, LedgerIntegrityError
from discretion.evals import JudgeMode, evaluate, load_suites, replay, shadow_report
from discretion.guard import Guard
from discretion.policy import PolicyPack, load_pack
from discretion.precedent import Precedent, Precedents, Range
from discretion.proposal import Actor
from discretion.store import SqlStore
from discretion.types import utc_now

app = typer.Typer(
    help="Govern the exceptions AI support agents make.",
    no_args_is_help=True,
    add_completion=False,
)
pack_app = typer.Typer(help="Work with policy packs.", no_args_is_help=True)
ledger_app = typer.Typer(help="Verify and export the lineage.", no_args_is_help=True)
app.add_typer(pack_app, name="pack")
app.add_typer(ledger_app, name="ledger")
app.add_typer(approvals_app, name="approvals")
app.add_typer(token_app, name="token")
app.command()(serve)
precedent_app = typer.Typer(help="Set, inspect and revoke precedent.", no_args_is_help=True)
app.add_typer(precedent_app, name="precedent")
db_app = typer.Typer(help="Migrate the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")

# Tables are wide: when output is not a terminal, do not squeeze them to 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True)

DEFAULT_DB = "sqlite:///discretion.db"
DbOption = Annotated[
    str, typer.Option("--db", help="Database URL (sqlite:///path.db or postgresql://...).")
]
_CONTEXT_NAMES = ("cases.sql", "cases.db", "context.json")
_STYLE = {
    Outcome.ALLOW: "green",
    Outcome.ALLOW_EXCEPTION: "cyan",
    Outcome.ROUTE: "yellow",
    Outcome.DENY: "red",
}


class ExportFormat(StrEnum):
    """Formats `ledger export` writes."""

    JSONL = "jsonl"
    CSV = "csv"


def _error(message: str) -> None:
    # Messages quote user input (amounts, expressions): print them as text, never as markup.
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _error(message)
    return typer.Exit(code)


def _open_context(path: Path) -> ContextProvider:
    if path.suffix == ".json":
        return JsonContextProvider(path)
    if path.suffix == ".sql":
        return SqliteCaseStore.from_sql(path)
    return SqliteCaseStore.open(path)


def _find_context(pack: Path) -> Path | None:
    folder = pack if pack.is_dir() else pack.parent
    for base in (folder, folder.parent):
        for name in _CONTEXT_NAMES:
            if (base / name).exists():
                return base / name
    return None


def _parse_now(now: str | None) -> datetime | None:
    if now is None:
        return None
    try:
        moment = datetime.fromisoformat(now)
    except ValueError:
        raise _fail(
            f"--now {now!r} is not an ISO 8601 time such as 2026-11-26T12:00:00+00:00"
        ) from None
    if moment.tzinfo is None:
        raise _fail(f"--now {now!r} needs a UTC offset, such as +00:00")
    return moment


@app.command()
def check(
    proposals: Annotated[
        list[Path], typer.Argument(help="Proposal JSON files.", exists=True, dir_okay=False)
    ],
    pack: Annotated[Path, typer.Option("--pack", help="Pack file or folder.")],
    db: DbOption = DEFAULT_DB,
    context: Annotated[
        Path | None,
        typer.Option(
            help="Facts: a .json file, a .sql case script or a SQLite case database."
            " Found beside the pack when absent.",
        ),
    ] = None,
    now: Annotated[
        str | None, typer.Option(help="Decide as of this ISO 8601 time instead of the clock.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print decisions as JSON.")] = False,
) -> None:
    """Decide proposals and record the decisions."""
    moment = _parse_now(now)
    try:
        policy = load_pack(pack)
        source = context or _find_context(pack)
        provider = _open_context(source) if source is not None else StaticContextProvider()
        guard = Guard(
            policy,
            store=SqlStore(db),
            context=provider,
            clock=(lambda: moment) if moment is not None else None,
        )
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    decided: list[tuple[Path, Decision]] = []
    failed = False
    for path in proposals:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            decided.append((path, guard.decide(data)))
        except ValueError as exc:
            _error(f"{path}: not valid JSON: {exc}")
            failed = True
        except DiscretionError as exc:
            _error(f"{path}: {exc}")
            failed = True
    if as_json:
        items = [d.model_dump(mode="json") for _, d in decided]
        text = json.dumps(items[0] if len(items) == 1 else items, indent=2)
        sys.stdout.write(text + "\n")
    else:
        _print_decisions(decided, policy.version)
    if failed:
        raise typer.Exit(2)


def _print_decisions(decided: list[tuple[Path, Decision]], version: str) -> None:
    table = Table(title=f"decisions (policy {version[:19]})", show_lines=True)
    table.add_column("proposal")
    table.add_column("action")
    table.add_column("amount", justify="right")
    table.add_column("actor")
    table.add_column("outcome")
    table.add_column("role")
    table.add_column("rules")
    for path, decision in decided:
        style = _STYLE[decision.outcome]
        table.add_row(
            escape(path.stem),
            escape(decision.action),
            str(decision.amount) if decision.amount is not None else "",
            decision.actor_role,
            f"[{style}]{decision.outcome.value}[/{style}]",
            decision.required_role or "",
            escape("\n".join(decision.rules)),
        )
    out.print(table)
    if len(decided) == 1:
        out.print(decided[0][1].explanation, highlight=False, markup=False)


@pack_app.command("validate")
def pack_validate(
    path: Annotated[Path, typer.Argument(help="Pack file or folder.")],
) -> None:
    """Load a pack, compile every CEL expression, and print its version."""
    try:
        policy = load_pack(path)
    except DiscretionError as exc:
        raise _fail(str(exc), 1) from None
    out.print(f"[green]valid[/green] {escape(policy.name)} {policy.version}", highlight=False)
    out.print(
        f"{len(policy.actions)} actions, {len(policy.roles)} roles, {len(policy.rule_ids())} rules,"
        f" {len(policy.budgets)} budgets, from {len(policy.sources)} file(s)",
        highlight=False,
    )


@ledger_app.command("verify")
def ledger_verify(
    db: DbOption = DEFAULT_DB,
    public_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--public-key",
            help="Check every checkpoint's signature against this Ed25519 public key (PEM);"
            " repeat for keys used earlier.",
        ),
    ] = None,
) -> None:
    """Check every partition's chain and the checkpoints; name the first record at fault."""
    from discretion.signing import load_verifier

    try:
        verifier = load_verifier(*public_key) if public_key else None
        with closing(SqlStore(db, create=False)) as store:
            count = store.verify(verifier=verifier)
            checkpoints = store.checkpoints()
    except LedgerIntegrityError as exc:
        raise _fail(f"ledger does not verify: {exc}", 1) from None
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    out.print(f"[green]ok[/green] {count} records verify", highlight=False)
    if checkpoints:
        last = checkpoints[-1]
        signed = "signatures checked" if verifier is not None else "signatures not checked"
        out.print(
            f"{len(checkpoints)} checkpoints ({signed}); the last, {last.seq}, is {last.hash}",
            highlight=False,
        )


@ledger_app.command("checkpoint")
def ledger_checkpoint(
    db: DbOption = DEFAULT_DB,
    signing_key: Annotated[
        Path | None,
        typer.Option(help="Sign with this Ed25519 private key (PEM); see `ledger keygen`."),
    ] = None,
) -> None:
    """Bind every partition's head in a new checkpoint (run it from cron, or serve does it)."""
    from discretion.signing import load_signer

    try:
        signer = load_signer(signing_key) if signing_key is not None else None
        with closing(SqlStore(db, create=False)) as store:
            made = store.checkpoint(at=utc_now(), signer=signer)
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    if made is None:
        out.print("nothing appended since the last checkpoint", highlight=False)
        return
    signed = f"signed by key {made.key_id}" if made.key_id else "unsigned"
    out.print(f"[green]ok[/green] checkpoint {made.seq} {made.hash} ({signed})", highlight=False)


@ledger_app.command("keygen")
def ledger_keygen(
    path: Annotated[Path, typer.Argument(help="Where to write the private key; .pub beside it.")],
) -> None:
    """Make an Ed25519 key pair for signing checkpoints (the private file is mode 0600)."""
    from discretion.signing import generate_key

    try:
        private, public = generate_key(path)
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    out.print(f"wrote {private} (keep it off the database host) and {public}", highlight=False)


@db_app.command("upgrade")
def db_upgrade(
    db: DbOption = DEFAULT_DB,
    revision: Annotated[
        str, typer.Option(help="The revision to reach; the newest this version ships.")
    ] = "head",
) -> None:
    """Migrate the schema to the newest revision (run once per deploy, before the replicas)."""
    from discretion.store import upgrade

    try:
        before, after = upgrade(db, revision)
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    out.print(f"[green]ok[/green] schema {before or 'none'} -> {after}", highlight=False)


_CSV_COLUMNS = (
    "seq",
    "kind",
    "subject_id",
    "decided_at",
    "action",
    "outcome",
    "actor_id",
    "actor_role",
    "amount",
    "currency",
    "required_role",
    "rules",
    "policy_version",
    "hash",
)


def _csv_row(record: dict[str, Any]) -> dict[str, Any]:
    decision = record["body"].get("decision", {})
    amount = decision.get("amount") or {}
    return {
        "seq": record["seq"],
        "kind": record["kind"],
        "subject_id": record["subject_id"],
        "decided_at": decision.get("decided_at", ""),
        "action": decision.get("action", ""),
        "outcome": decision.get("outcome", ""),
        "actor_id": decision.get("actor_id", ""),
        "actor_role": decision.get("actor_role", ""),
        "amount": amount.get("amount", ""),
        "currency": amount.get("currency", ""),
        "required_role": decision.get("required_role") or "",
        "rules": " ".join(decision.get("rules", [])),
        "policy_version": decision.get("policy_version", ""),
        "hash": record["hash"],
    }


@ledger_app.command("export")
def ledger_export(
    db: DbOption = DEFAULT_DB,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv.")] = (
        ExportFormat.JSONL
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    for_learning: Annotated[
        bool,
        typer.Option(
            "--for-learning",
            help="Only the decisions an AI may learn from (JSONL): no denials, no rejected or"
            " unapproved routes, no one-off exceptions, no uses of revoked precedent.",
        ),
    ] = False,
) -> None:
    """Export every lineage record, or with --for-learning the decisions an AI may learn from."""
    if for_learning and fmt is not ExportFormat.JSONL:
        raise _fail("--for-learning writes JSONL only; drop --format csv")
    try:
        with closing(SqlStore(db, create=False)) as store:
            learning = learning_export(store.records()) if for_learning else None
            records = learning.rows if learning is not None else list(store.export())
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    stream = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        if fmt is ExportFormat.JSONL:
            for record in records:
                stream.write(json.dumps(record, sort_keys=True) + "\n")
        else:
            writer = csv.DictWriter(stream, fieldnames=_CSV_COLUMNS)
            writer.writeheader()
            for record in records:
                writer.writerow(_csv_row(record))
    finally:
        if output:
            stream.close()
    if output:
        err.print(f"wrote {len(records)} records to {output}", highlight=False, markup=False)
    if learning is not None:
        left = learning.left_out
        err.print(
            f"exported {len(records)} decisions for learning; left out {sum(left.values())}"
            + "".join(f"\n  {count} {LEFT_OUT[why]}" for why, count in sorted(left.items())),
            highlight=False,
            markup=False,
        )


@contextmanager
def _precedents(db: str, pack: Path | None, now: datetime | None = None) -> Iterator[Precedents]:
    policy = load_pack(pack) if pack is not None else None
    store = SqlStore(db, create=pack is not None)
    clock = (lambda: moment) if (moment := now) is not None else utc_now
    try:
        yield Precedents(store, policy, clock=clock)
    finally:
        store.close()


def _scope_value(text: str, kind: str, key: str) -> Any:
    """A `--scope key=value` value typed as the pack declares the field; `min..max` is a range."""
    if ".." in text and kind in ("int", "money", "timestamp"):
        low, high = text.split("..", 1)
        return Range.model_validate({"min": low or None, "max": high or None})
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise _fail(f"--scope {key}: {text!r} is not an int") from None
    if kind == "bool":
        if text not in ("true", "false"):
            raise _fail(f"--scope {key}: write true or false, not {text!r}")
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
        str | None, typer.Option("--max-amount", help="Bound, in the pack's currency.")
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
    moment = _parse_now(now) or utc_now()
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if len(expires_in) < 2 or expires_in[-1] not in units or not expires_in[:-1].isdigit():
        raise _fail(f"--expires-in {expires_in!r}: write a count and a unit, such as 30d or 12h")
    expires_at = moment + timedelta(**{units[expires_in[-1]]: int(expires_in[:-1])})
    try:
        with _precedents(db, pack, moment) as precedents:
            policy = precedents.policy
            spec = _precedent_spec(
                policy,
                scope,
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
        raise _fail(str(exc)) from None
    out.print(f"[green]set[/green] {precedent.id}", highlight=False)
    _print_precedent(precedent)


def _precedent_spec(
    pack: PolicyPack,
    scope: list[str],
    *,
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
            raise _fail(
                f"--scope {item!r}: write key=value with a context field of the pack;"
                f" fields: {', '.join(sorted(pack.fields))}"
            )
        values[key] = _scope_value(text, pack.fields[key].type, key)
    return {
        "scope": values,
        "max_amount": {"amount": max_amount, "currency": pack.currency} if max_amount else None,
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
    try:
        with _precedents(db, None) as precedents:
            found = precedents.list(action=action, reason=reason, active_only=active, limit=1000)
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
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
    out.print(table)


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
        raise _fail(str(exc)) from None
    if precedent is None:
        raise _fail(f"precedent {precedent_id!r} does not exist", 1)
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
    try:
        with _precedents(db, pack, _parse_now(now)) as precedents:
            revoked = precedents.revoke(
                precedent_id, by=Actor(id=by, role=role, is_ai=False), reason=reason
            )
    except (DiscretionError, ValueError) as exc:
        raise _fail(str(exc)) from None
    out.print(f"[yellow]revoked[/yellow] {revoked.id}", highlight=False)


def _print_precedent(precedent: Precedent) -> None:
    sys.stdout.write(json.dumps(precedent.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")


@app.command("eval")
def eval_suites(
    paths: Annotated[
        list[Path], typer.Argument(help="Suite files, or folders searched for suites.", exists=True)
    ],
    judge: Annotated[
        JudgeMode | None,
        typer.Option(
            help="off, recorded (each case's verdict) or live (the LLM); each suite's own when"
            " absent."
        ),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the full report as JSON here.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML report here.")
    ] = None,
    amnesia: Annotated[
        int,
        typer.Option(min=0, help="Also simulate decision amnesia over this many refund tickets."),
    ] = 0,
) -> None:
    """Run eval suites of edge-case tickets; exit 1 when a case fails or a threshold is missed."""
    try:
        suites = load_suites(paths)
        # The bar goes to stderr, and only to a terminal, so --json on stdout stays clean.
        quiet = not err.is_terminal
        columns = Progress.get_default_columns()
        with Progress(*columns, console=err, transient=True, disable=quiet) as progress:
            task = progress.add_task("deciding", total=sum(len(s.cases) for s in suites))
            report = evaluate(
                suites, judge=judge, amnesia=amnesia, on_case=lambda _: progress.advance(task)
            )
        if json_path is not None:
            json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
        if html is not None:
            html.write_text(report.html(), encoding="utf-8")
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    report.print(out)
    if not report.is_passing:
        raise typer.Exit(1)


def _parse_since(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        raise _fail(
            f"--since {since!r} is not an ISO 8601 date or time, such as 2026-11-20"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@app.command("replay")
def replay_ledger(
    pack: Annotated[
        Path | None, typer.Option("--pack", help="The candidate pack file or folder.")
    ] = None,
    db: DbOption = DEFAULT_DB,
    since: Annotated[
        str | None, typer.Option(help="Only decisions made at or after this date or time (UTC).")
    ] = None,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="Report what the shadow pack recorded instead.")
    ] = False,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the full report as JSON here.")
    ] = None,
) -> None:
    """Re-decide recorded proposals under another pack and report what would change.

    Each proposal is decided at its recorded time on its recorded facts; nothing is written to
    the ledger.
    """
    moment = _parse_since(since)
    if (pack is None) == (not shadow):
        raise _fail("give --pack CANDIDATE to replay, or --shadow to read shadow decisions")
    try:
        store = SqlStore(db, create=False)
        with closing(store):
            if pack is not None:
                report = replay(store, pack, since=moment)
            else:
                report = shadow_report(store, since=moment)
    except LedgerIntegrityError as exc:
        raise _fail(f"ledger does not verify, so it cannot be replayed: {exc}", 1) from None
    except DiscretionError as exc:
        raise _fail(str(exc)) from None
    report.print(out)
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
