"""Tamper evidence beyond tests/test_cli.py: every kind of record, both databases, the CLI.

tests/test_cli.py covers an edited decision (with and without its hash recomputed), deleted,
renumbered and reordered records and a cut tail in a one-chain ledger on SQLite. These run on
the partitioned ledger, on SQLite and PostgreSQL: the whole ledger emptied, a forged record
appended past a head, an edited approval or execution record, swapped bodies, a record moved to
another partition, an altered head; and what the chains alone cannot see (a partition rewritten
end to end, or cut back with its head) and how signed checkpoints catch it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update
from typer.testing import CliRunner

from approvals.helpers import TINA
from conftest import NOW, refund
from discretion import LedgerIntegrityError, Outcome, SqlStore
from discretion.cli import app
from discretion.lineage import (
    GENESIS,
    canonical_json,
    checkpoint_hash,
    is_genuine,
    record_hash,
)
from discretion.signing import generate_key, load_signer, load_verifier
from discretion.store._schema import decisions, ledger, ledger_checkpoints, ledger_head


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


def rows(store: SqlStore) -> list[Any]:
    with store.engine.connect() as connection:
        return list(connection.execute(select(ledger).order_by(ledger.c.seq)))


def seq_of(store: SqlStore, kind: str) -> int:
    return next(row.seq for row in rows(store) if row.kind == kind)


def run(store: SqlStore, *statements: Any) -> None:
    with store.engine.begin() as connection:
        for statement in statements:
            connection.execute(statement)


def broken_at(store: SqlStore, **kwargs: Any) -> tuple[int | None, str]:
    with pytest.raises(LedgerIntegrityError) as raised:
        store.verify(**kwargs)
    return raised.value.seq, str(raised.value)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_key(tmp_path / "checkpoint.key")


def test_the_records_are_spread_over_several_partitions(filled):
    # Otherwise the tests below would only exercise one chain.
    assert len({row.partition for row in rows(filled)}) >= 2
    assert filled.partitions == 16


def test_the_whole_ledger_emptied_is_detected(filled):
    run(filled, delete(ledger))
    seq, message = broken_at(filled)
    assert seq is None
    assert "names its record" in message
    assert "but the chain ends at record 0" in message


def test_a_forged_record_appended_past_a_head_is_detected(filled):
    last = rows(filled)[-1]
    body = canonical_json({"decision": {"outcome": "allow"}})
    forged = record_hash(
        seq=last.chain_seq + 1,
        kind="decision",
        body=body,
        prev_hash=last.hash,
        partition=last.partition,
    )
    run(
        filled,
        insert(ledger).values(
            partition=last.partition,
            chain_seq=last.chain_seq + 1,
            kind="decision",
            subject_id="dec_forged",
            body=body,
            prev_hash=last.hash,
            hash=forged,
            recorded_us=0,
        ),
    )
    _, message = broken_at(filled)
    assert (
        f"the head of partition {last.partition} names its record {last.chain_seq} but the chain"
        f" ends at record {last.chain_seq + 1}"
    ) in message


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


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        # Back-dated by a year: when it was recorded is what history and exports show.
        ("approval.approved", {"recorded_us": ledger.c.recorded_us - 365 * 86_400_000_000}),
        # Moved out of its case's history, which is read by subject.
        ("execution.queued", {"subject_id": "dec_elsewhere"}),
    ],
)
def test_a_backdated_or_moved_record_is_named(filled, kind, change):
    target = seq_of(filled, kind)
    run(filled, update(ledger).where(ledger.c.seq == target).values(**change))
    seq, message = broken_at(filled)
    assert seq == target
    assert f"record {target} ({kind}" in message
    assert "was edited" in message


def test_a_record_appended_before_subjects_and_times_were_hashed_still_verifies(filled):
    # A ledger written by an earlier version hashes place, kind, previous hash and body only.
    first = rows(filled)[0]
    earlier = record_hash(
        seq=first.chain_seq,
        kind=first.kind,
        body=first.body,
        prev_hash=first.prev_hash,
        partition=first.partition,
    )
    assert earlier != first.hash
    assert is_genuine(
        seq=first.chain_seq,
        kind=first.kind,
        body=first.body,
        prev_hash=first.prev_hash,
        partition=first.partition,
        subject_id="anything",
        recorded_us=0,
        hash=earlier,
    )


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


def test_a_record_moved_to_another_partition_is_named(filled):
    # Moved with its place and the heads made to agree: its hash still names its own partition.
    moved = rows(filled)[-1]
    heads = filled.heads()
    target = next(p for p in range(filled.partitions) if p != moved.partition)
    seq_there, hash_there = heads[target]
    run(
        filled,
        update(ledger)
        .where(ledger.c.seq == moved.seq)
        .values(partition=target, chain_seq=seq_there + 1, prev_hash=hash_there),
        update(ledger_head)
        .where(ledger_head.c.partition == target)
        .values(seq=seq_there + 1, hash=moved.hash),
        update(ledger_head)
        .where(ledger_head.c.partition == moved.partition)
        .values(seq=moved.chain_seq - 1, hash=moved.prev_hash),
    )
    seq, message = broken_at(filled)
    assert seq == moved.seq
    assert f"partition {target}) was edited" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"hash": "f" * 64}, "does not match the hash its head recorded"),
        ({"seq": 1}, "names its record 1 but the chain ends at record"),
    ],
    ids=["hash", "seq"],
)
def test_an_altered_head_is_detected(filled, change, expected):
    run(filled, update(ledger_head).values(**change))
    _, message = broken_at(filled)
    assert expected in message


def test_a_deleted_head_row_is_detected(filled):
    empty = min(p for p, (seq, _) in filled.heads().items() if seq == 0)
    assert empty < 15
    run(filled, delete(ledger_head).where(ledger_head.c.partition == empty))
    _, message = broken_at(filled)
    assert "the ledger has 15 head rows for 16 partitions" in message


def test_the_cli_names_the_record_and_exits_1_on_tampering(filled):
    if filled.engine.dialect.name != "sqlite":
        pytest.skip("the CLI reads the database by URL; the SQLite case is enough")
    url = filled.engine.url.render_as_string(hide_password=False)
    assert CliRunner().invoke(app, ["ledger", "verify", "--db", url]).exit_code == 0
    run(filled, delete(ledger).where(ledger.c.seq == seq_of(filled, "approval.approved")))
    result = CliRunner().invoke(app, ["ledger", "verify", "--db", url])
    assert result.exit_code == 1
    assert "ledger does not verify" in result.output + (result.stderr or "")


def rewrite_partition(store: SqlStore, partition: int) -> None:
    """Turn every denial in one partition into an allow and recompute its chain and head."""
    previous = GENESIS
    statements: list[Any] = []
    for row in [r for r in rows(store) if r.partition == partition]:
        body = row.body.replace('"outcome":"deny"', '"outcome":"allow"')
        digest = record_hash(
            seq=row.chain_seq, kind=row.kind, body=body, prev_hash=previous, partition=partition
        )
        statements.append(
            update(ledger)
            .where(ledger.c.seq == row.seq)
            .values(body=body, prev_hash=previous, hash=digest)
        )
        if row.kind == "decision":
            # The working row is rewritten to match, as a careful forger would.
            statements.append(
                update(decisions)
                .where(decisions.c.id == row.subject_id)
                .values(
                    outcome=json.loads(body)["decision"]["outcome"],
                    body=json.dumps(
                        {**json.loads(body)["decision"], "lineage_hash": digest},
                        separators=(",", ":"),
                    ),
                )
            )
        previous = digest
    statements.append(
        update(ledger_head).where(ledger_head.c.partition == partition).values(hash=previous)
    )
    run(store, *statements)


def denied_partition(store: SqlStore) -> int:
    return next(r.partition for r in rows(store) if '"outcome":"deny"' in r.body)


def test_a_partition_rewritten_end_to_end_passes_the_chains_alone(filled):
    # With write access to the database one can recompute a chain after an edit and move its
    # head: the chains alone prove nothing then (SECURITY.md). Checkpoints do, below.
    anchored = filled.heads()
    rewrite_partition(filled, denied_partition(filled))

    assert filled.verify() == sum(seq for seq, _ in anchored.values())
    assert filled.heads() != anchored


def test_a_partition_rewritten_behind_a_checkpoint_is_detected(filled, keys):
    filled.checkpoint(at=NOW, signer=load_signer(keys[0]))
    partition = denied_partition(filled)
    rewrite_partition(filled, partition)

    _, message = broken_at(filled, verifier=load_verifier(keys[1]))
    assert "is not the record a signed checkpoint bound at its place" in message
    assert f"(partition {partition} was rewritten)" in message


def test_a_partition_cut_back_with_its_head_behind_a_checkpoint_is_detected(filled, keys):
    filled.checkpoint(at=NOW, signer=load_signer(keys[0]))
    last = rows(filled)[-1]
    run(
        filled,
        delete(ledger).where(ledger.c.seq == last.seq),
        update(ledger_head)
        .where(ledger_head.c.partition == last.partition)
        .values(seq=last.chain_seq - 1, hash=last.prev_hash),
    )

    _, message = broken_at(filled, verifier=load_verifier(keys[1]))
    assert (
        f"a signed checkpoint binds record {last.chain_seq} of partition {last.partition},"
        " which no longer exists"
    ) in message


def test_a_checkpoint_recomputed_to_match_a_rewrite_fails_its_signature(filled, keys):
    filled.checkpoint(at=NOW, signer=load_signer(keys[0]))
    rewrite_partition(filled, denied_partition(filled))
    heads = tuple((p, seq, digest) for p, (seq, digest) in filled.heads().items())
    forged = checkpoint_hash(seq=1, at_us=0, heads=heads, prev_hash=GENESIS)
    run(
        filled,
        update(ledger_checkpoints)
        .where(ledger_checkpoints.c.seq == 1)
        .values(at_us=0, heads=canonical_json([list(h) for h in heads]), hash=forged),
    )

    filled.verify()  # Everything hangs together without the key...
    _, message = broken_at(filled, verifier=load_verifier(keys[1]))
    assert "checkpoint 1's signature does not verify" in message  # ...but not with it.


@pytest.mark.parametrize("change", ["edited", "deleted", "unsigned", "other key"])
def test_a_tampered_checkpoint_chain_is_named(filled, make_guard, keys, tmp_path, change):
    signer = load_signer(keys[0])
    filled.checkpoint(at=NOW, signer=signer)
    make_guard(ids=lambda: "dec_later").decide(refund("30.00", key="k-4"))
    filled.checkpoint(at=NOW, signer=signer)
    verifier = load_verifier(keys[1])
    assert filled.verify(verifier=verifier) == filled.count()
    first = ledger_checkpoints.c.seq == 1
    expected = {
        "edited": "checkpoint 1 was edited",
        "deleted": "checkpoint 1 is missing: the next one is 2",
        "unsigned": "checkpoint 1 is not signed, but signatures are being checked",
        "other key": "checkpoint 1 is signed by key",
    }[change]
    if change == "edited":
        run(filled, update(ledger_checkpoints).where(first).values(at_us=1))
    elif change == "deleted":
        run(filled, delete(ledger_checkpoints).where(first))
    elif change == "unsigned":
        run(filled, update(ledger_checkpoints).where(first).values(signature=None, key_id=None))
    else:
        other = load_signer(generate_key(tmp_path / "other.key")[0])
        with filled.engine.connect() as connection:
            digest = connection.execute(select(ledger_checkpoints.c.hash).where(first)).scalar_one()
        run(
            filled,
            update(ledger_checkpoints)
            .where(first)
            .values(key_id=other.key_id, signature=other.sign(digest)),
        )
    _, message = broken_at(filled, verifier=verifier)
    assert expected in message


def test_a_checkpoint_with_nothing_new_to_bind_is_not_written(filled):
    first = filled.checkpoint(at=NOW)
    assert first is not None
    assert first.key_id is None
    assert filled.checkpoint(at=NOW) is None
    assert [c.seq for c in filled.checkpoints()] == [1]
    assert dict((p, (s, h)) for p, s, h in first.heads) == filled.heads()
