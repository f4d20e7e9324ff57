"""The partitioned ledger: what waits for what, checkpoints, and verifying beside writers.

A record joins the partition of the decision it is about; a transaction locks a partition's head
only when it appends to it, and a budget key's row only when it reads that key's sum. These
tests hold one transaction open and show, with PostgreSQL's `lock_timeout`, which others must
wait for it (they time out) and which go on (they commit).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from conftest import NOW, fresh_postgres
from discretion import ConfigurationError, SqlStore, StoreError
from discretion.cli import app
from discretion.lineage import partition_of
from discretion.store import CheckpointWriter, SqlTransaction
from discretion.store._dialect import PING_IDLE_S, PingWhenIdle, create
from discretion.store._schema import to_us

BODY = {"note": "held open"}


def chain_in(partition: int, *, other_than: str = "", partitions: int = 16) -> str:
    """A subject id whose records go to `partition`."""
    return next(
        name
        for n in range(10_000)
        if (name := f"dec_{n:06d}") != other_than and partition_of(name, partitions) == partition
    )


@pytest.fixture
def postgres() -> Iterator[SqlStore]:
    store = fresh_postgres()
    yield store
    store.close()


def impatient(tx: SqlTransaction) -> SqlTransaction:
    """Make the transaction give up on a lock after 300 ms instead of waiting for it."""
    tx._connection.execute(text("SET LOCAL lock_timeout = '300ms'"))
    return tx


@pytest.mark.postgres
def test_appends_to_another_partition_do_not_wait_for_an_open_transaction(postgres):
    held = chain_in(3)
    with ExitStack() as stack:
        first = stack.enter_context(postgres.transaction())
        first.record("note", held, BODY, at=NOW)  # partition 3's head is now locked

        with postgres.transaction() as other:
            impatient(other).record("note", chain_in(7), BODY, at=NOW)  # commits at once

        with pytest.raises(StoreError, match="lock timeout"), postgres.transaction() as same:
            impatient(same).record("note", chain_in(3, other_than=held), BODY, at=NOW)
    assert postgres.verify() == 2
    assert postgres.heads()[3][0] == 1
    assert postgres.heads()[7][0] == 1


@pytest.mark.postgres
def test_a_budget_key_stays_locked_until_the_commit_and_other_keys_do_not_wait(postgres):
    with ExitStack() as stack:
        first = stack.enter_context(postgres.transaction())
        assert first.budget_used("daily", "customer-1", NOW) == 0

        with postgres.transaction() as other:
            assert impatient(other).budget_used("daily", "customer-2", NOW) == 0

        with pytest.raises(StoreError, match="lock timeout"), postgres.transaction() as same:
            impatient(same).budget_used("daily", "customer-1", NOW)


@pytest.mark.postgres
def test_one_replica_at_a_time_writes_a_checkpoint(postgres):
    from discretion.store._dialect import CHECKPOINT_LOCK

    with postgres.transaction() as tx:
        tx.record("note", "dec_a", BODY, at=NOW)
    with postgres.engine.connect() as elsewhere:
        elsewhere.execute(select(text(f"pg_advisory_lock({CHECKPOINT_LOCK})")))
        assert postgres.checkpoint(at=NOW) is None  # another replica is writing one
        elsewhere.execute(select(text(f"pg_advisory_unlock({CHECKPOINT_LOCK})")))
    made = postgres.checkpoint(at=NOW)
    assert made is not None
    assert made.seq == 1


def test_verify_reads_a_snapshot_beside_an_open_writer(store):
    with store.transaction() as tx:
        tx.record("note", "dec_a", BODY, at=NOW)
    with store.transaction() as open_writer:
        open_writer.record("note", "dec_b", BODY, at=NOW)
        # The writer holds its locks (on SQLite, the database's write lock); verify neither
        # waits for it nor sees its uncommitted record.
        assert store.verify() == 1
    assert store.verify() == 2


def test_a_postgresql_read_holds_no_transaction_open(postgres):
    # A reader between statements is `idle`, not `idle in transaction`: it sends no BEGIN or
    # ROLLBACK, and a slow reader never holds back vacuum or another session's DDL.
    with postgres._reading("tokens") as reader, postgres.engine.connect() as observer:
        pid = reader.execute(select(text("pg_backend_pid()"))).scalar_one()
        assert reader.execute(select(text("1"))).scalar_one() == 1
        state = observer.execute(
            text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar_one()
    assert state == "idle"


def test_a_pooled_connection_idle_for_a_while_is_pinged_and_replaced_when_dead(postgres):
    moment = [0.0]
    engine = create_engine(postgres.engine.url, pool_size=1, max_overflow=0)
    PingWhenIdle(engine, clock=lambda: moment[0]).listen()

    def backend() -> int:
        with engine.connect() as connection:
            return int(connection.execute(select(text("pg_backend_pid()"))).scalar_one())

    def kill(pid: int) -> None:
        with postgres.engine.connect() as other:
            other.execute(select(text(f"pg_terminate_backend({pid})")))

    try:
        first = backend()
        kill(first)
        # Idle past the window: pinged, found dead, replaced before the statement runs.
        moment[0] += PING_IDLE_S + 0.1
        second = backend()
        assert second != first
        kill(second)
        # Used a moment ago: trusted without a round trip, so the dead connection fails the
        # statement (the store maps it to StoreError, nothing is recorded) and is replaced.
        moment[0] += PING_IDLE_S / 10
        with pytest.raises(OperationalError):
            backend()
        assert backend() not in (first, second)
    finally:
        engine.dispose()


def test_postgresql_engines_ping_only_idle_connections():
    engine = create("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert not engine.pool._pre_ping
    assert len(engine.pool.dispatch.checkout) == 1
    assert len(engine.pool.dispatch.checkin) == 1


def test_a_store_can_be_made_with_fewer_partitions_and_keeps_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'two.db'}"
    SqlStore(url, partitions=2).close()
    again = SqlStore(url, partitions=16)  # an existing ledger keeps the number it was made with
    try:
        assert again.partitions == 2
        with again.transaction() as tx:
            for n in range(6):
                tx.record("note", f"dec_{n}", BODY, at=NOW)
        assert {r.partition for r in again.records()} == {0, 1}
        assert again.verify() == 6
    finally:
        again.close()


@pytest.mark.parametrize("partitions", [0, 1025])
def test_an_impossible_number_of_partitions_is_refused(tmp_path, partitions):
    with pytest.raises(Exception, match="partitions must be 1 to 1024"):
        SqlStore(f"sqlite:///{tmp_path / 'x.db'}", partitions=partitions)


def test_the_cli_makes_keys_signs_checkpoints_and_verifies_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = SqlStore(url)
    with store.transaction() as tx:
        tx.record("note", "dec_a", BODY, at=NOW)
    store.close()
    runner = CliRunner()
    key = tmp_path / "checkpoint.key"

    made = runner.invoke(app, ["ledger", "keygen", str(key)])
    assert made.exit_code == 0, made.output
    assert key.stat().st_mode & 0o777 == 0o600
    assert Path(f"{key}.pub").exists()
    again = runner.invoke(app, ["ledger", "keygen", str(key)])
    assert again.exit_code == 2
    assert "already exists" in " ".join(again.stderr.split())

    signed = runner.invoke(app, ["ledger", "checkpoint", "--db", url, "--signing-key", str(key)])
    assert signed.exit_code == 0, signed.output
    assert "checkpoint 1 " in signed.stdout
    assert "signed by key" in signed.stdout
    idle = runner.invoke(app, ["ledger", "checkpoint", "--db", url, "--signing-key", str(key)])
    assert "nothing appended since the last checkpoint" in idle.stdout

    verified = runner.invoke(app, ["ledger", "verify", "--db", url, "--public-key", f"{key}.pub"])
    assert verified.exit_code == 0, verified.output
    assert "ok 1 records verify" in verified.stdout
    assert "1 checkpoints (signatures checked)" in verified.stdout

    wrong = runner.invoke(app, ["ledger", "verify", "--db", url, "--public-key", str(key)])
    assert wrong.exit_code == 2
    assert "is not a PEM public key" in " ".join(wrong.stderr.split())


def test_the_checkpoint_writer_binds_the_heads_on_its_clock_and_once_more_when_stopped(
    store, clock
):
    writer = CheckpointWriter(store, every=timedelta(hours=1), clock=clock)
    with store.transaction() as tx:
        tx.record("note", "dec_a", BODY, at=NOW)
    first = writer.write()
    assert first is not None
    assert first.at_us == to_us(clock())
    assert writer.write() is None  # nothing new

    writer.start()
    with store.transaction() as tx:
        tx.record("note", "dec_b", BODY, at=NOW)
    last = writer.stop()
    assert last is not None
    assert last.seq == 2
    assert [c.seq for c in store.checkpoints()] == [1, 2]
    assert store.verify() == 2


def test_a_failed_checkpoint_round_is_logged_and_the_writer_goes_on(caplog):
    unreachable = SqlStore("postgresql+psycopg://nobody@127.0.0.1:1/none", create=False)
    writer = CheckpointWriter(unreachable, every=timedelta(minutes=1))
    with caplog.at_level("WARNING", logger="discretion.ledger"):
        assert writer.write() is None
    assert "checkpoint failed, will try again: cannot write a checkpoint" in caplog.text


def test_a_checkpoint_writer_needs_a_positive_interval(store):
    with pytest.raises(ConfigurationError, match="positive interval"):
        CheckpointWriter(store, every=timedelta(0))
