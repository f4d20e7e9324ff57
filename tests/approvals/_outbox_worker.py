"""Processes the outbox crash tests kill with SIGKILL (started with multiprocessing spawn)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from discretion import Actor, Guard, SqlStore, load_pack
from discretion.context import StaticContextProvider

__all__ = ["LATER", "approve_then_stop", "execute_then_stop"]

LATER = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)


def _guard(pack_path: str, url: str, facts: dict[str, Any]) -> Guard:
    return Guard(
        load_pack(pack_path),
        store=SqlStore(url),
        context=StaticContextProvider(facts),
        clock=lambda: LATER,
    )


def approve_then_stop(
    pack_path: str, url: str, facts: dict[str, Any], approval_id: str, conn: Any
) -> None:
    """Approve (the approval and its outbox row commit), then wait before executing: the
    test kills this process there, between the commit and the execution."""
    guard = _guard(pack_path, url, facts)
    approver = Actor(id="tina", role="tier1", is_ai=False)
    guard.approvals.approve(approval_id, approver=approver, note="approved before the crash")
    conn.send("committed")
    conn.recv()  # never answered: killed here
    guard.approvals.run_approved()


def execute_then_stop(
    pack_path: str, url: str, facts: dict[str, Any], ledger: str, conn: Any
) -> None:
    """Run the outbox; the tool charges the customer (a line in `ledger`), then the process is
    killed before it can record how the call ended."""

    def charge(arguments: dict[str, Any], key: str) -> str:
        with Path(ledger).open("a", encoding="utf-8") as out:
            out.write(f"{key} {arguments['amount']}\n")
        conn.send("charged")
        conn.recv()  # never answered: killed here
        return "charged"

    guard = _guard(pack_path, url, facts)
    guard.approvals.register("issue_refund", charge)
    guard.approvals.run_approved()
