"""A SQLite ledger's WAL stays bounded under a steady stream of decisions.

SQLite starts its WAL over only when a writer begins just after a checkpoint copied all of it.
The background checkpointer's PASSIVE copy never blocks writers, so under a steady load a
decision always commits while it copies and that moment never comes: without the RESTART the
checkpointer ends a long pass with, the file grew by every page every decision wrote.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import good_facts, refund
from discretion import Guard, SqlStore
from discretion.context import StaticContextProvider
from discretion.store._dialect import Checkpointer

HEADER = 32
FRAME_HEADER = 24


def wal_frames(path: Path, page_size: int) -> int:
    wal = Path(f"{path}-wal")
    size = wal.stat().st_size if wal.exists() else 0
    return max(0, size - HEADER) // (page_size + FRAME_HEADER)


def test_the_wal_starts_over_under_a_steady_stream_of_decisions(tmp_path, pack, clock):
    path = tmp_path / "ledger.db"
    store = SqlStore(f"sqlite:///{path}")
    # A pass every 100 commits, which takes longer than the gap between two decisions, and a
    # RESTART once the WAL holds 500 pages: the same shape as the defaults, smaller.
    store._checkpointer = Checkpointer(str(path), every=100, turns=store._turns, restart_frames=500)
    with store.engine.connect() as connection:
        page_size = connection.exec_driver_sql("PRAGMA page_size").scalar()
    guard = Guard(pack, store=store, context=StaticContextProvider(good_facts()), clock=clock)
    decisions = 1500
    peak = 0
    written_per_decision = 0.0
    try:
        for n in range(decisions):
            guard.decide(refund("10.00", actor=f"bot-{n}", key=f"k-{n}", case=f"case-{n}"))
            peak = max(peak, wal_frames(path, page_size))
            if n == 49:
                # No pass has run yet (the first comes after 100 commits): what one decision
                # writes, measured on this ledger's own pages.
                written_per_decision = peak / 50
    finally:
        store.close()
    # Every decision writes several pages: an unbounded WAL holds them all.
    assert written_per_decision >= 4
    assert peak < decisions * written_per_decision / 2, (peak, written_per_decision)


def test_a_reader_on_old_pages_holds_the_wal_but_never_the_writers(tmp_path, pack, clock):
    path = tmp_path / "ledger.db"
    store = SqlStore(f"sqlite:///{path}")
    store._checkpointer = Checkpointer(str(path), every=20, turns=store._turns, restart_frames=50)
    guard = Guard(pack, store=store, context=StaticContextProvider(good_facts()), clock=clock)
    guard.decide(refund("10.00", key="k-first"))
    # A reader that keeps its snapshot (a long report, say): no RESTART can finish meanwhile.
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM decisions").fetchone()
    try:
        decided = [
            guard.decide(refund("10.00", actor=f"bot-{n}", key=f"k-{n}", case=f"case-{n}"))
            for n in range(200)
        ]
    finally:
        reader.execute("COMMIT")
        reader.close()
        store.close()
    # Each pass's RESTART gave up after a moment instead of holding the writers until the
    # reader let go (30 s, then "database is locked").
    assert len({d.id for d in decided}) == 200


def test_a_new_ledger_has_small_pages_and_an_existing_one_keeps_its_own(tmp_path):
    from discretion.store._dialect import SQLITE_PAGE_SIZE

    made_before = tmp_path / "before.db"
    raw = sqlite3.connect(made_before)
    raw.execute("PRAGMA page_size=4096")
    raw.execute("CREATE TABLE kept (x INTEGER)")
    raw.close()
    for path, expected in ((tmp_path / "new.db", SQLITE_PAGE_SIZE), (made_before, 4096)):
        store = SqlStore(f"sqlite:///{path}")
        try:
            with store.engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA page_size").scalar() == expected
                mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        finally:
            store.close()
        assert mode == "wal"
    assert SQLITE_PAGE_SIZE == 1024
