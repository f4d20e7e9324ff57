"""Tamper evidence beyond tests/test_cli.py: every kind of record, both databases, the CLI.

tests/test_cli.py covers an edited decision (with and without its hash recomputed), deleted,
renumbered and reordered records and a cut tail on SQLite. These add: the whole ledger emptied,
a forged record appended past the head, an edited approval or execution record, swapped bodies,
an altered head, all on SQLite and PostgreSQL; and they show what `verify` alone cannot see (a
chain rewritten end to end) and how an anchored head catches it.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update
from typer.testing import CliRunner

from approvals.helpers import TINA
from conftest import refund
from discretion import LedgerIntegrityError, Outcome, SqlStore
from discretion.cli import app
from discretion.lineage import canonical_json, record_hash
from discretion.store._schema import ledger, ledger_head


@pytest.fixture
def filled(make_guard, store: SqlStore) -> SqlStore:
    """Decisions, an approval and an execution: records of several kinds."""
    guard = make_guard()
    assert guard.decide(refund("40.00", key="k-1")).outcome is Outcome.ALLOW
    routed = guard.decide(refund("80.00", key="k-2"))
    guard.approvals.approve(routed.id, approver=TINA, note="fine")
    guard.approvals.register("issue_refund", lambda arguments, key: {"refund_id": key})
    guard.approvals.run_approved()
    assert guard.decide(refund("200.00", key="k-3")).outcome is Outcome.DENY
    assert store.verify() >= 5
    return store


def kinds(store: SqlStore) -> list[tuple[int, str]]:
    with store.engine.connect() as connection:
        return [(r.seq, r.kind) for r in connection.execute(select(ledger).order_by(ledger.c.seq))]


def seq_of(store: SqlStore, kind: str) -> int:
    return next(seq for seq, k in kinds(store) if k == kind)


def run(store: SqlStore, *statements: Any) -> None:
    with store.engine.begin() as connection:
        for statement in statements:
            connection.execute(statement)


def broken_at(store: SqlStore) -> tuple[int | None, str]:
    with pytest.raises(LedgerIntegrityError) as raised:
        store.verify()
    return raised.value.seq, str(raised.value)


def test_the_whole_ledger_emptied_is_detected_at_record_1(filled):
    count = filled.verify()
    run(filled, delete(ledger))
    seq, message = broken_at(filled)
    assert seq == 1
    assert f"the ledger head names record {count} but the chain ends at record 0" in message


def test_a_forged_record_appended_past_the_head_is_detected(filled):
    head_seq, head_hash = filled.head()
    body = canonical_json({"decision": {"outcome": "allow"}})
    forged = record_hash(seq=head_seq + 1, kind="decision", body=body, prev_hash=head_hash)
    run(
        filled,
        insert(ledger).values(
            seq=head_seq + 1,
            kind="decision",
            subject_id="dec_forged",
            body=body,
            prev_hash=head_hash,
            hash=forged,
            recorded_us=0,
        ),
    )
    seq, message = broken_at(filled)
    assert seq == head_seq + 1
    assert f"the ledger head names record {head_seq} but the chain ends at record" in message


@pytest.mark.parametrize("kind", ["approval.approved", "execution.succeeded"])
def test_an_edited_approval_or_execution_record_is_named(filled, kind):
    target = seq_of(filled, kind)
    with filled.engine.connect() as connection:
        body = connection.execute(select(ledger.c.body).where(ledger.c.seq == target)).scalar_one()
    edited = body.replace("tina", "maria") if "tina" in body else body.replace("k-2", "k-9")
    assert edited != body
    run(filled, update(ledger).where(ledger.c.seq == target).values(body=edited))
    seq, message = broken_at(filled)
    assert seq == target
    assert f"record {target} ({kind}" in message
    assert "was edited" in message


def test_swapped_bodies_of_two_records_are_named(filled):
    with filled.engine.connect() as connection:
        first, second = connection.execute(
            select(ledger.c.body).where(ledger.c.seq.in_([1, 2])).order_by(ledger.c.seq)
        ).scalars()
    run(
        filled,
        update(ledger).where(ledger.c.seq == 1).values(body=second),
        update(ledger).where(ledger.c.seq == 2).values(body=first),
    )
    seq, message = broken_at(filled)
    assert seq == 1
    assert "record 1 (decision" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"hash": "0" * 64}, "does not match the hash the ledger head recorded"),
        ({"seq": 1}, "the ledger head names record 1 but the chain ends at record"),
    ],
    ids=["hash", "seq"],
)
def test_an_altered_head_is_detected(filled, change, expected):
    run(filled, update(ledger_head).values(**change))
    _, message = broken_at(filled)
    assert expected in message


def test_the_cli_names_the_record_and_exits_1_on_tampering(filled):
    if filled.engine.dialect.name != "sqlite":
        pytest.skip("the CLI reads the database by URL; the SQLite case is enough")
    url = filled.engine.url.render_as_string(hide_password=False)
    assert CliRunner().invoke(app, ["ledger", "verify", "--db", url]).exit_code == 0
    run(filled, delete(ledger).where(ledger.c.seq == seq_of(filled, "approval.approved")))
    result = CliRunner().invoke(app, ["ledger", "verify", "--db", url])
    assert result.exit_code == 1
    assert "ledger does not verify" in result.output + (result.stderr or "")


def test_a_chain_rewritten_end_to_end_passes_verify_but_not_an_anchored_head(filled):
    # With write access to the database one can recompute every hash after an edit and move
    # the head: the chain alone proves nothing then (SECURITY.md). The head, copied elsewhere
    # (a log, a ticket, another system), does.
    anchored = filled.head()
    with filled.engine.connect() as connection:
        rows = list(connection.execute(select(ledger).order_by(ledger.c.seq)))
    previous = rows[0].prev_hash
    statements: list[Any] = []
    for row in rows:
        body = row.body.replace('"outcome":"deny"', '"outcome":"allow"')
        digest = record_hash(seq=row.seq, kind=row.kind, body=body, prev_hash=previous)
        statements.append(
            update(ledger)
            .where(ledger.c.seq == row.seq)
            .values(body=body, prev_hash=previous, hash=digest)
        )
        previous = digest
    statements.append(update(ledger_head).values(hash=previous))
    run(filled, *statements)

    assert filled.verify() == anchored[0]
    assert filled.head() != anchored
