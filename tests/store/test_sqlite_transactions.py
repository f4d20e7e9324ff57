"""How SQLite transactions begin: once, on the driver, whoever asks first.

A store transaction sends `BEGIN IMMEDIATE` on the driver's connection itself; a Core statement
run inside it joins that transaction instead of beginning another. A transaction Core begins on
its own takes the write lock at once, unless it only reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import insert, select, text

from conftest import NOW, traced_sqlite
from discretion import SqlStore
from discretion.store._schema import judge_calls


@pytest.fixture
def traced(tmp_path) -> Iterator[tuple[SqlStore, list[str]]]:
    store, statements = traced_sqlite(tmp_path / "ledger.db")
    assert store.partitions == 16  # read once, on a connection of its own
    statements.clear()
    yield store, statements
    store.close()


def begins(statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith("BEGIN")]


def test_a_core_statement_in_a_store_transaction_joins_it(traced):
    store, statements = traced
    with store.transaction() as tx:
        tx.record("note", "dec_1", {"n": 1}, at=NOW)
        # Core, on the transaction's own connection: SQLAlchemy begins its transaction object.
        tx._connection.execute(insert(judge_calls).values(day="2026-01-01", calls=1))
        assert tx.has_record("dec_1", "note")
    assert begins(statements) == ["BEGIN IMMEDIATE"]
    assert statements.count("COMMIT") == 1
    assert [h.kind for h in store.history("dec_1")] == ["note"]
    with store.engine.connect() as connection:
        assert connection.execute(select(judge_calls.c.calls)).scalar_one() == 1


def test_a_store_transaction_that_fails_after_a_core_statement_rolls_both_back(traced):
    store, statements = traced

    def fail_after_writing() -> None:
        with store.transaction() as tx:
            tx.record("note", "dec_1", {"n": 1}, at=NOW)
            tx._connection.execute(insert(judge_calls).values(day="2026-01-01", calls=1))
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        fail_after_writing()
    assert begins(statements) == ["BEGIN IMMEDIATE"]
    assert store.history("dec_1") == []
    with store.engine.connect() as connection:
        assert connection.execute(select(judge_calls)).all() == []
    # The held connection is usable again: the next transaction begins afresh.
    statements.clear()
    with store.transaction() as tx:
        tx.record("note", "dec_2", {"n": 2}, at=NOW)
    assert begins(statements) == ["BEGIN IMMEDIATE"]
    assert [h.kind for h in store.history("dec_2")] == ["note"]


def test_a_core_transaction_of_its_own_takes_the_write_lock_unless_it_only_reads(traced):
    store, statements = traced
    with store.engine.begin() as connection:
        connection.execute(text("SELECT 1"))
    assert begins(statements) == ["BEGIN IMMEDIATE"]
    statements.clear()
    assert store.verify() == 0  # a snapshot: deferred, never the write lock
    assert begins(statements) == ["BEGIN"]


def test_the_driver_connection_says_whether_a_transaction_is_open_not_the_thread(traced):
    # A transaction begun on the driver is joined whichever thread runs the next Core statement.
    store, statements = traced
    with store.transaction() as tx:
        worker = ThreadPoolExecutor(max_workers=1)
        insert_call = insert(judge_calls).values(day="2026-01-01", calls=1)
        worker.submit(tx._connection.execute, insert_call).result()
        worker.shutdown()
        tx.record("note", "dec_1", {"n": 1}, at=NOW)
    assert begins(statements) == ["BEGIN IMMEDIATE"]
    with store.engine.connect() as connection:
        assert connection.execute(select(judge_calls.c.calls)).scalar_one() == 1
