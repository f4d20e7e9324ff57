"""`discretion ledger ...`: verify, checkpoint and export the lineage."""

from __future__ import annotations

import csv
import json
import sys
from contextlib import closing
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from discretion.cli import _common
from discretion.cli._common import DEFAULT_DB, DbOption
from discretion.errors import DiscretionError, LedgerIntegrityError

__all__ = ["ExportFormat", "ledger_app"]

ledger_app = typer.Typer(help="Verify and export the lineage.", no_args_is_help=True)


class ExportFormat(StrEnum):
    """Formats `ledger export` writes."""

    JSONL = "jsonl"
    CSV = "csv"


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
    from discretion.store import SqlStore

    try:
        verifier = load_verifier(*public_key) if public_key else None
        with closing(SqlStore(db, create=False)) as store:
            count = store.verify(verifier=verifier)
            checkpoints = store.checkpoints()
    except LedgerIntegrityError as exc:
        raise _common.fail(f"ledger does not verify: {exc}", 1) from None
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    _common.out.print(f"[green]ok[/green] {count} records verify", highlight=False)
    if checkpoints:
        last = checkpoints[-1]
        signed = "signatures checked" if verifier is not None else "signatures not checked"
        _common.out.print(
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
    from discretion.store import SqlStore
    from discretion.types import utc_now

    try:
        signer = load_signer(signing_key) if signing_key is not None else None
        with closing(SqlStore(db, create=False)) as store:
            made = store.checkpoint(at=utc_now(), signer=signer)
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    if made is None:
        _common.out.print("nothing appended since the last checkpoint", highlight=False)
        return
    signed = f"signed by key {made.key_id}" if made.key_id else "unsigned"
    _common.out.print(
        f"[green]ok[/green] checkpoint {made.seq} {made.hash} ({signed})", highlight=False
    )


@ledger_app.command("keygen")
def ledger_keygen(
    path: Annotated[Path, typer.Argument(help="Where to write the private key; .pub beside it.")],
) -> None:
    """Make an Ed25519 key pair for signing checkpoints (the private file is mode 0600)."""
    from discretion.signing import generate_key

    try:
        private, public = generate_key(path)
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
    _common.out.print(
        f"wrote {private} (keep it off the database host) and {public}", highlight=False
    )


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
    from discretion._learning import LEFT_OUT, learning_export
    from discretion.store import SqlStore

    if for_learning and fmt is not ExportFormat.JSONL:
        raise _common.fail("--for-learning writes JSONL only; drop --format csv")
    try:
        with closing(SqlStore(db, create=False)) as store:
            learning = learning_export(store.records()) if for_learning else None
            records = learning.rows if learning is not None else list(store.export())
    except DiscretionError as exc:
        raise _common.fail(str(exc)) from None
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
        _common.err.print(
            f"wrote {len(records)} records to {output}", highlight=False, markup=False
        )
    if learning is not None:
        left = learning.left_out
        _common.err.print(
            f"exported {len(records)} decisions for learning; left out {sum(left.values())}"
            + "".join(f"\n  {count} {LEFT_OUT[why]}" for why, count in sorted(left.items())),
            highlight=False,
            markup=False,
        )
