"""What differs between SQLite and PostgreSQL, in one place.

SQLite: WAL, a busy timeout, and `BEGIN IMMEDIATE` so a decision's transaction takes the write
lock before it reads budgets (two processes cannot both read the same budget sum and both
reserve). PostgreSQL: each budget key's row is locked before its sum is read, and a partition's
head row `FOR UPDATE` before a record is appended to its chain, so replicas wait for each other
only when they touch the same budget key or the same chain.

Every other module of the store builds its statements from `insert_ignore` and `locking` here,
never from a dialect's own `insert` or `with_for_update`. A new database goes in as a branch of
`create` and of these functions, with the store's tests run against it.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import (
    Engine,
    Insert,
    Select,
    Table,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError
from sqlalchemy.pool import NullPool
from sqlalchemy.schema import CreateIndex

from discretion.errors import ConfigurationError, StoreError
from discretion.lineage import GENESIS
from discretion.store._schema import budget_locks, ledger_head, metadata

if sys.platform != "win32":
    import fcntl

__all__ = [
    "CHECKPOINT_LOCK",
    "PING_IDLE_S",
    "READ_ONLY",
    "Checkpointer",
    "PingWhenIdle",
    "Traits",
    "WriterTurns",
    "budget_lock",
    "create",
    "create_heads",
    "elect_checkpoint_writer",
    "head_query",
    "heads",
    "insert_ignore",
    "locking",
    "partition_count",
    "pipelines",
    "traits",
]

SQLITE_PAGE_SIZE = 1024
"""The page size of a new SQLite ledger, in bytes (SQLite's default is 4096).

A decision's COMMIT copies every page it changed into the WAL and checksums it: about 17 pages
for acme, most of them index leaves that gained one entry of some 50 bytes. Smaller pages make
that copy smaller; rows longer than a page (a ledger record's body) continue on overflow pages.
Measured with `benchmarks/decide.py`, back to back: decide p50 -5% on the minimal pack and -2%
on acme against 4096, p99 lower too; 512 was slower than 1024, 2048 between them."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "discretion_read_only"
"""The execution option of a connection that only reads in its transaction."""


def create(url: str, *, must_exist: bool = False) -> Engine:
    """An engine for `url`, set up for the dialect.

    With `must_exist`, a SQLite file that does not exist is an error rather than a new, empty
    database.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"{url!r} is not a database URL; use sqlite:///path.db or"
            " postgresql+psycopg://user@host/db"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        if must_exist and not in_memory and not Path(str(parsed.database)).exists():
            raise StoreError(
                f"no database at {parsed.database}; check --db or decide something first"
            )
        return _sqlite(url, in_memory=in_memory)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            engine = create_engine(parsed, pool_size=5, max_overflow=10)
        except ModuleNotFoundError as exc:
            raise ConfigurationError(
                "PostgreSQL needs psycopg: pip install 'discretion[postgres]'"
            ) from exc
        PingWhenIdle(engine).listen()
        return engine
    raise ConfigurationError(
        f"unsupported database {backend!r} in {url!r}; use sqlite or postgresql"
    )


PING_IDLE_S = 0.5
"""A pooled connection idle longer than this is pinged before use (HikariCP's bypass window)."""


class PingWhenIdle:
    """`pool_pre_ping`, but only for a connection that sat in the pool for a while.

    A ping is a round trip on every checkout: two per API request (the token, the decision),
    about 0.13 ms each. A connection checked in less than `PING_IDLE_S` ago was just talking
    to the server, so it is trusted; one idle longer (the server may have restarted, a
    firewall may have cut it) is pinged, and replaced when the ping fails. Measured with two
    `serve` workers on PostgreSQL: 630 -> 680 decisions/s. A server that dies under load fails
    the requests in flight either way; SQLAlchemy then renews the whole pool.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], float] | None = None) -> None:
        self._engine = engine
        self._clock = clock or time.monotonic

    def listen(self) -> None:
        """Attach to the engine's pool."""
        event.listen(self._engine, "checkin", self.checkin)
        event.listen(self._engine, "checkout", self.checkout)

    def checkin(self, dbapi_connection: Any, record: Any) -> None:
        record.info["discretion_idle_since"] = self._clock()

    def checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("discretion_idle_since")
        if since is None or self._clock() - since < PING_IDLE_S:
            return  # new, or in use a moment ago
        dialect = self._engine.dialect
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            # The pool retries with a new connection (and may renew the rest).
            raise DisconnectionError(f"a pooled connection is gone: {exc}") from exc


def _sqlite(url: str, *, in_memory: bool) -> Engine:
    kwargs: dict[str, Any] = {}
    if in_memory:
        # One connection shared by every thread, so the in-memory database is one database,
        # used by one thread at a time (`_Turn`). A checkout's turn ends when it is closed;
        # it is not rolled back on its way in: a read inside the thread's own transaction
        # must leave that transaction as it was.
        kwargs = {"poolclass": NullPool, "creator": _in_turns(), "pool_reset_on_return": None}
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            # Takes effect only in a database with nothing in it yet (one made before keeps
            # its page size): see SQLITE_PAGE_SIZE.
            cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            cursor.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives a process crash; an OS crash may lose the last
            # commits but never corrupts the chain.
            cursor.execute("PRAGMA synchronous=NORMAL")
            # The commit that crosses SQLite's automatic checkpoint threshold copies the whole
            # WAL into the database file first: measured, that made p99 of a decision 5 ms
            # instead of 1 ms. `Checkpointer` does the copying in a thread of its own instead.
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # On the driver's connection: SQLAlchemy's statement machinery costs ~20 us here.
        # Writers take the write lock at once; a snapshot reader (READ_ONLY) never takes it.
        driver = connection.connection.driver_connection
        if driver.in_transaction:  # type: ignore[union-attr]
            # Begun on the driver already (a store transaction, `_sql._immediate`): with
            # `isolation_level = None` the driver begins nothing by itself, so Core joins it.
            return
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        driver.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")  # type: ignore[union-attr]

    return engine


class _Turn:
    """The in-memory database's one connection, for one thread's turn: taken when made.

    Every thread shares the one connection (it is the database), and a transaction on it is
    every thread's: without turns, a read from another thread would see a decision before its
    commit, and two threads' statements would interleave inside one transaction (two allowed
    where one fits, a ledger whose chain no longer verifies). Each checkout makes a `_Turn`,
    which waits for the turn; closing it gives the turn back. A thread may check the
    connection out again inside its own turn (a read inside its transaction).
    """

    def __init__(self, shared: sqlite3.Connection, turn: threading.RLock) -> None:
        turn.acquire()
        object.__setattr__(self, "_shared", shared)
        object.__setattr__(self, "_turn", turn)
        object.__setattr__(self, "_open", True)

    def close(self) -> None:
        if self._open:
            object.__setattr__(self, "_open", False)
            self._turn.release()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shared, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._shared, name, value)


def _in_turns() -> Callable[[], _Turn]:
    """A connection factory for an in-memory database: one database, one thread at a time."""
    shared = sqlite3.connect(":memory:", check_same_thread=False)
    turn = threading.RLock()
    return lambda: _Turn(shared, turn)


_HEAD = select(ledger_head.c.seq, ledger_head.c.hash).where(
    ledger_head.c.partition == bindparam("partition")
)
_HEAD_FOR_UPDATE = _HEAD.with_for_update()


def head_query(dialect_name: str) -> Any:
    """The query that reads one partition's head, locking it on dialects that lock rows."""
    return _HEAD_FOR_UPDATE if dialect_name == "postgresql" else _HEAD


def catalog(connection: Connection, kind: Literal["table", "index"]) -> set[str]:
    """The names of the tables or indexes the database holds (its schema's, on PostgreSQL)."""
    if connection.dialect.name == "postgresql":
        query = (
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            if kind == "table"
            else "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        )
    else:
        query = f"SELECT name FROM sqlite_master WHERE type = '{kind}'"  # one of two literals
    return set(connection.exec_driver_sql(query).scalars())


def create_missing(connection: Connection, *, indexes: bool = True) -> None:
    """Create the tables that do not exist, and (with `indexes`) the indexes a table lacks.

    `MetaData.create_all` passes over a table that exists, indexes and all: a database made by
    an earlier version would never get an index a later one declares (as totals per actor
    read through `ix_decisions_actor`). What exists is read from the `catalog` in two queries;
    SQLAlchemy's reflection would ask table by table, and compile its queries on each start.
    An index is made `IF NOT EXISTS`: two processes opening the same database may both find
    it missing.
    """
    existing = catalog(connection, "table")
    metadata.create_all(
        connection, tables=[t for t in metadata.sorted_tables if t.name not in existing]
    )
    made = [t for t in metadata.sorted_tables if t.name in existing]
    if not (indexes and made):
        return
    present = catalog(connection, "index")
    for table in made:
        for index in table.indexes:
            if index.name not in present:
                connection.execute(CreateIndex(index, if_not_exists=True))


def budget_lock(dialect_name: str) -> Any:
    """The statement that locks one budget key's row, or None where the write lock covers it.

    PostgreSQL: an upsert that takes the row lock whether it inserted the row or found it, so
    two decisions under one key read its sum one after the other. SQLite: `BEGIN IMMEDIATE`
    already serialises every writer.
    """
    if dialect_name != "postgresql":
        return None
    # Each dialect's module loads where it is used: on SQLite, PostgreSQL's (and its five
    # drivers') would add about 30 ms to every start for nothing.
    from sqlalchemy.dialects import postgresql

    statement = postgresql.insert(budget_locks).values(
        budget_id=bindparam("budget"), budget_key=bindparam("key")
    )
    return statement.on_conflict_do_update(
        index_elements=[budget_locks.c.budget_id, budget_locks.c.budget_key],
        set_={"budget_id": statement.excluded.budget_id},
    )


def insert_ignore(
    table: Table, dialect_name: str, *, index_elements: list[str] | None = None
) -> Insert:
    """An INSERT that writes nothing when the row's key is taken (`ON CONFLICT DO NOTHING`).

    Both dialects say it the same way, but each through its own `insert`. `index_elements` names
    the unique key to watch; all of them by default.
    """
    if dialect_name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing(index_elements=index_elements)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing(index_elements=index_elements)


def locking(query: Select[Any], *, skip_locked: bool = False) -> Select[Any]:
    """`query`, locking the rows it reads until the commit.

    PostgreSQL: `FOR UPDATE` (`SKIP LOCKED` passes over rows another transaction holds). SQLite
    renders no lock: a writer holds the whole database's write lock from `BEGIN IMMEDIATE`.
    """
    return query.with_for_update(skip_locked=skip_locked)


@dataclass(frozen=True, slots=True, kw_only=True)
class Traits:
    """How a store works with its engine's dialect; decided once per store."""

    holds_connections: bool
    """SQLite: a thread keeps its connection between decisions (checking one out and back in
    cost ~20 us per use). PostgreSQL sessions go back to the pool."""
    sqlite_file: str | None
    """The SQLite database file, whose WAL a `Checkpointer` copies and whose writers take
    turns (`WriterTurns`); None in memory and on PostgreSQL."""
    read_options: dict[str, Any]
    """A read connection's execution options. SQLite: its transactions begin deferred, so a
    reader never waits for a writer. PostgreSQL: each statement runs on its own (autocommit):
    under READ COMMITTED it sees its own snapshot either way, and no BEGIN or ROLLBACK travels
    to the server."""
    snapshot_options: dict[str, Any]
    """A read transaction that sees one state while writers go on. PostgreSQL: REPEATABLE READ.
    SQLite: a deferred transaction, which in WAL mode reads one snapshot."""
    pipelines: bool
    """Whether a transaction sends its writes in one round trip (psycopg's pipeline mode)."""


def traits(engine: Engine) -> Traits:
    """The `Traits` of a store on `engine`."""
    name = engine.dialect.name
    database = engine.url.database
    is_file = name == "sqlite" and database not in (None, "", ":memory:")
    is_postgresql = name == "postgresql"
    return Traits(
        # In memory, one connection is every thread's: one held would keep the others out.
        holds_connections=is_file,
        sqlite_file=database if is_file else None,
        read_options={
            READ_ONLY: True,
            **({"isolation_level": "AUTOCOMMIT"} if is_postgresql else {}),
        },
        snapshot_options={
            READ_ONLY: True,
            **({"isolation_level": "REPEATABLE READ"} if is_postgresql else {}),
        },
        pipelines=is_postgresql and pipelines(),
    )


CHECKPOINT_LOCK = 0x6469736372  # "discr": the advisory lock that elects one checkpoint writer


def elect_checkpoint_writer(connection: Connection) -> bool:
    """Whether this transaction may write the next checkpoint.

    PostgreSQL: another replica may be writing one right now; an advisory lock, held to the
    commit, elects one writer. SQLite: the write lock already lets one writer at a time.
    """
    if connection.dialect.name != "postgresql":
        return True
    return bool(
        connection.execute(select(func.pg_try_advisory_xact_lock(CHECKPOINT_LOCK))).scalar_one()
    )


def pipelines() -> bool:
    """Whether psycopg can send several statements before reading their results (libpq 14+)."""
    try:
        from psycopg import Pipeline
    except ImportError:  # pragma: no cover - only PostgreSQL asks, and it needs psycopg
        return False
    return bool(Pipeline.is_supported())


def heads(connection: Connection) -> dict[int, tuple[int, str]]:
    """Every partition's head, `partition -> (chain_seq, hash)`, read in one statement."""
    rows = connection.execute(select(ledger_head).order_by(ledger_head.c.partition))
    return {int(r.partition): (int(r.seq), str(r.hash)) for r in rows}


def partition_count(found: dict[int, tuple[int, str]]) -> int:
    """How many partitions a ledger with these head rows has.

    They are numbered from 0, so a missing row in between still counts (`ledger verify` names it).
    """
    return max(found, default=-1) + 1


def create_heads(connection: Connection, partitions: int) -> None:
    """Give a ledger without head rows its `partitions` empty chains."""
    if not heads(connection):
        connection.execute(
            insert(ledger_head),
            [{"partition": p, "seq": 0, "hash": GENESIS} for p in range(partitions)],
        )


class WriterTurns:
    """Makes the writers of one SQLite file take turns, across threads and processes.

    SQLite has one writer. Another that finds the write lock taken sleeps in SQLite's busy
    handler, 1 to 100 ms between tries, however soon the lock is freed: with two `serve`
    workers that made p99 0.3 to 0.9 s, and two workers no faster than one. Queued on an
    exclusive `flock` of a file beside the database instead, the next writer wakes as soon as
    the lock is released (measured: p99 ~50 ms, two workers 1.5x one). The descriptor is
    opened per process, so a forked child never shares its parent's lock.
    """

    def __init__(self, database: str) -> None:
        self._path = f"{database}-writer.lock"
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the turn: this process's threads first, then the other processes."""
        with self._lock:
            if sys.platform == "win32":  # no flock: only this process's threads take turns
                yield
                return
            if self._fd is None or self._pid != os.getpid():
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file's descriptor (the file stays, for the other processes)."""
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None


RESTART_WAIT_MS = 100
"""How long a RESTART checkpoint waits for readers on older pages, holding up writers."""


class Checkpointer:
    """Copies a SQLite WAL into the database file from a background thread, and keeps it short.

    Decisions only append to the WAL; every `every` commits this thread runs a PASSIVE
    checkpoint on a connection of its own, which never blocks writers and never waits for
    readers. Several processes may each run one on the same file.

    SQLite starts the WAL over only when a writer begins just after a checkpoint copied all of
    it. Under a steady load a writer always commits while the PASSIVE copy runs, so that
    moment never comes and the file grows without end (measured: 80 KB a decision, 360 MB
    after 4,500 back to back). Once it holds more than `restart_frames` pages, a pass ends with
    a RESTART checkpoint in the writers' turn (`turns`): only the pages written during the
    PASSIVE copy are left to copy, so writers wait a few milliseconds about once a pass, and
    the next writer starts the WAL over.
    """

    def __init__(
        self,
        path: str,
        *,
        every: int = 500,
        turns: WriterTurns | None = None,
        restart_frames: int = 16_384,
    ) -> None:
        self._path = path
        self._every = every
        self._turns = turns
        self._restart_frames = restart_frames
        self._commits = 0
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        """Count one commit; wake the thread when enough have piled up in the WAL."""
        self._commits += 1
        if self._commits % self._every == 0:
            if self._thread is None:
                # Started on first need: most stores (tests, CLI runs) never fill a WAL.
                self._thread = threading.Thread(
                    target=self._run, name="discretion-wal", daemon=True
                )
                self._thread.start()
            self._wake.set()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            # Only a RESTART waits (a PASSIVE never does), and it waits holding the writers'
            # turn: for readers still on older pages, briefly, or the next pass tries again.
            connection.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
            while True:
                self._wake.wait()
                self._wake.clear()
                # Busy or locked: the next wake-up tries again; the WAL only grows meanwhile.
                with suppress(sqlite3.Error):
                    self.checkpoint(connection)
                if self._stop:
                    return
        finally:
            connection.close()

    def checkpoint(self, connection: sqlite3.Connection) -> None:
        """One pass on `connection`: copy the WAL, and start it over once it is long."""
        _busy, frames, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames < self._restart_frames:
            return
        # No writer of this file (in any process) runs meanwhile: the RESTART neither waits in
        # SQLite's busy handler for one nor starves it. A reader still on older pages makes it
        # give up after RESTART_WAIT_MS (SQLITE_BUSY): the WAL starts over on a later pass.
        with self._turns.turn() if self._turns is not None else nullcontext():
            connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()

    def close(self) -> None:
        """Checkpoint what is left and stop the thread."""
        if self._thread is None:
            return
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)
