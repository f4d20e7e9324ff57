"""The one SQL store: `SqlStore`, and `SqlTransaction` for the writes of one transaction.

The decisions, their reservations and the lineage are kept here; each other table family has a
module of its own (`_approvals`, `_executions`, `_precedents`, `_identities`, `_verdicts`,
`_reports`), reached through the store (reads on a connection of their own) and through the
transaction (writes with the caller's).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    String,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from discretion.decision import Decision, Reservation
from discretion.errors import ConfigurationError, StoreError
from discretion.lineage import (
    GENESIS,
    ChainVerifier,
    Checkpoint,
    LedgerRecord,
    canonical_json,
    canonical_members,
    checkpoint_hash,
    partition_of,
    record_hash,
    verify_checkpoints,
)
from discretion.money import EXPONENTS, UNIT_CODE, register_unit
from discretion.store import _approvals, _bindings, _dialect, _executions, _identities
from discretion.store._approvals import ApprovalReads, ApprovalRow, ApprovalWrites
from discretion.store._bindings import (
    BOUND,
    Audit,
    Bindings,
    OwnRows,
    newest_binding,
    row_digest,
)
from discretion.store._compiled import Compiled, Statements
from discretion.store._executions import ExecutionReads, ExecutionWrites
from discretion.store._identities import IdentityReads, IdentityWrites
from discretion.store._precedents import PrecedentReads, PrecedentWrites
from discretion.store._reports import Reports
from discretion.store._schema import (
    PARTITIONS,
    decisions,
    from_us,
    ledger,
    ledger_checkpoints,
    ledger_head,
    ledger_record,
    reservations,
    to_us,
)
from discretion.store._totals import TotalQuery, lock_name, run_totals
from discretion.store._verdicts import Verdicts
from discretion.store._webhooks import WebhookCursors

if TYPE_CHECKING:
    from discretion.signing import Signer, Verifier

_T = TypeVar("_T")

__all__ = ["DecisionRecord", "DuplicateKey", "HistoryEntry", "SqlStore", "SqlTransaction"]

_MAX_HELD = 4
"""Threads that keep a SQLite connection between decisions; others check one out per use."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionRecord:
    """What `SqlTransaction.append` records about one decision."""

    decision: Decision
    """The decision, with its reservations; its lineage hash is set by `append`."""
    proposal: Mapping[str, Any]
    """The proposal as the lineage records it (JSON): its digested content and its key. Its
    numbers are finite, as a parsed `Proposal`'s are: the record's canonical JSON assumes it."""
    context: Mapping[str, Any]
    """The context snapshot's data (JSON): exactly the facts it was decided on (finite too).

    The customer, case and order it concerns are the decision's `entities`: columns, so
    exposure and totals per record are range reads, derived from the record like every other.
    """

    context_json: str | None = None
    """The canonical JSON of `context` when it is already made (the snapshot's, which its
    digest hashed): the record's body then reuses it instead of serialising it again."""
    keys: Mapping[str, str] | None = None
    """The declared arguments the pack's totals are kept per (`sku`), with the call's values
    as text; recorded as `keys`, and the `arg_keys` column totals read them through."""

    def body(self) -> dict[str, Any]:
        """The lineage record's body; `canonical_json` of it is what the chain hashes."""
        body = {
            "decision": self.decision.model_dump(mode="json", exclude={"lineage_hash"}),
            "proposal": dict(self.proposal),
            "context": dict(self.context),
        }
        if self.keys:
            body["keys"] = dict(self.keys)
        return body


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One lineage record about a subject, as `SqlStore.history` reads it."""

    seq: int
    """Its place in the whole ledger."""
    kind: str
    """`decision`, `approval.approved`, `execution.succeeded`, ..."""
    body: str
    """Canonical JSON."""
    recorded_at: datetime
    """When it was appended."""


# The core's hot-path statements (see `_compiled`); the table families add theirs.
_STATEMENTS: dict[str, Any] = {
    "find": select(*decisions.columns).where(
        decisions.c.actor_id == bindparam("actor"),
        decisions.c.idempotency_key == bindparam("key"),
    ),
    # One key's sum since a moment, in one currency, or in all when `currency` is NULL (the
    # column is never NULL, so `coalesce` makes it match itself; the index serves either way).
    "used": select(func.coalesce(func.sum(reservations.c.amount_minor), literal_column("0"))).where(
        reservations.c.budget_id == bindparam("budget"),
        reservations.c.budget_key == bindparam("key"),
        reservations.c.reserved_us > bindparam("since"),
        reservations.c.currency
        == func.coalesce(bindparam("currency", type_=String), reservations.c.currency),
    ),
    "decision": insert(decisions),
    "reservation": insert(reservations),
    "record": insert(ledger),
    "move_head": update(ledger_head)
    .where(ledger_head.c.partition == bindparam("p"))
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash")),
}


def _statements(dialect_name: str) -> dict[str, Any]:
    statements = {**_STATEMENTS, "lock_head": _dialect.head_query(dialect_name)}
    budget_lock = _dialect.budget_lock(dialect_name)
    if budget_lock is not None:
        statements["lock_budget"] = budget_lock
    for family in (_approvals, _executions, _identities, _bindings):
        statements.update(family.statements(dialect_name))
    return statements


_DECISION_COLUMNS = tuple(c.name for c in decisions.columns)


def _decision_by_id(
    bindings: Bindings, connection: Connection, decision_id: str, partitions: int
) -> Decision | None:
    row = connection.execute(select(decisions).where(decisions.c.id == decision_id)).first()
    return bindings.check_decision(connection, row, partitions) if row is not None else None


def _decision_body(connection: Connection, decision_id: str) -> dict[str, Any] | None:
    text = connection.execute(
        select(ledger.c.body).where(ledger.c.subject_id == decision_id, ledger.c.kind == "decision")
    ).scalar_one_or_none()
    return json.loads(text) if text is not None else None


@contextmanager
def _immediate(connection: Connection) -> Iterator[None]:
    """A SQLite write transaction begun and ended on the driver's connection.

    The same `BEGIN IMMEDIATE` ... `COMMIT` as `connection.begin()`, without SQLAlchemy's
    transaction objects and events (measured: 26 us against 10 us a transaction). A Core
    statement run inside it joins it: SQLAlchemy begins its own transaction object on the open
    one (`_dialect` sees the driver in a transaction and sends no second BEGIN), and it is
    committed or rolled back through that.
    """
    driver = connection.connection.driver_connection
    driver.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
    try:
        yield
    except BaseException:
        if connection.in_transaction():
            connection.rollback()
        else:
            driver.rollback()  # type: ignore[union-attr]
        raise
    if connection.in_transaction():
        connection.commit()
    else:
        driver.commit()  # type: ignore[union-attr]


class _Link(NamedTuple):
    """A record's place in its partition's chain."""

    partition: int
    seq: int
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class _Read:
    """Totals read on a held SQLite connection, and the database's version when they were."""

    connection: Connection
    queries: tuple[TotalQuery, ...]
    values: tuple[int, ...]
    version: int
    """`PRAGMA data_version` read just before the totals: on this connection it changes when
    another connection commits, so an unchanged one means nothing was committed since."""


class DuplicateKey(Exception):
    """Another transaction recorded the same idempotency key first."""


class SqlTransaction:
    """The writes of one transaction, under the locks of what it touches.

    Nothing is locked when it opens. Reading a budget key's sum locks that key (PostgreSQL;
    SQLite's write lock is held since `BEGIN IMMEDIATE`), and the first record appended to a
    partition locks that partition's head until the commit. Decisions about different keys and
    different partitions commit in parallel.

    Besides the decision's own writes (`budget_used`, `append`, `reserve`, `record`), the table
    families write here in the same transaction: `approvals`, `executions`, `precedents` and
    `identities`.
    """

    def __init__(
        self,
        connection: Connection,
        sql: Statements,
        partitions: int,
        *,
        pipelines: bool = False,
        totals: dict[tuple[Any, ...], Compiled] | None = None,
        bindings: Bindings | None = None,
        read: _Read | None = None,
    ) -> None:
        self._connection = connection
        self._read = read if read is not None and read.connection is connection else None
        self._touched: dict[tuple[str, str], Mapping[str, Any] | None] = {}
        self.bindings = OwnRows(bindings if bindings is not None else Bindings(), self._touched)
        """Checks rows read in this transaction against the ledger (the store's)."""
        self._cursor = connection.connection.cursor()
        self._sql = sql
        self._partitions = partitions
        self._heads: dict[int, tuple[int, str]] = {}
        self._locked: set[tuple[str, str]] = set()
        self._lock_budget = sql.optional("lock_budget")  # None where the write lock covers it
        self._pipelines = pipelines  # batch writes in one round trip (`_batch`)
        self._totals = totals if totals is not None else {}
        # `_touched`: rows of bound tables written since the last record (`touch`), with
        # their values when the writer knows them: the next record appended binds them.
        # The table families' writers, made on first use: a decision's transaction touches
        # none of them. (`functools.cached_property` takes a lock per first use on 3.11.)
        self._approvals: ApprovalWrites | None = None
        self._executions: ExecutionWrites | None = None
        self._precedents: PrecedentWrites | None = None
        self._identities: IdentityWrites | None = None

    def _run(self, name: str, values: dict[str, Any]) -> Any:
        return self._sql[name].run(self._cursor, values)

    def totals(self, queries: Sequence[TotalQuery]) -> list[int]:
        """Running totals from the ledger's tables in one statement, their keys locked.

        Each record's key is locked to the commit. As with budgets, no other decision reads
        these keys' totals until this transaction's own decision is visible (PostgreSQL;
        SQLite's write lock covers every writer).
        """
        read, self._read = self._read, None
        if not queries:
            return []
        if read is not None and read.queries == tuple(queries):
            # SQLite holds the database's write lock since BEGIN IMMEDIATE: when no other
            # connection committed since the totals were read before it (same connection, same
            # data_version), they are what a read now would return.
            version = self._cursor.execute("PRAGMA data_version").fetchone()[0]
            if version == read.version:
                return list(read.values)
        with self._locking([(lock_name(query.per), query.key) for query in queries]):
            run_totals(self._cursor, self._totals, self._connection.dialect, queries, fetch=False)
        return [int(value or 0) for value in self._row()]

    def _row(self) -> Any:
        """The one row of the statement the cursor ran last."""
        return self._cursor.fetchone()

    @contextmanager
    def _locking(self, keys: Iterable[tuple[str, str]]) -> Iterator[None]:
        """Lock these budget keys, then run the block's read: in one round trip on PostgreSQL.

        The locks and the read are sent together (psycopg's pipeline mode) and run by the server
        in order, the read once the locks are taken: what the read sees is what it saw when
        each was sent alone. The read's result is fetched after the block.
        """
        wanted = [] if self._lock_budget is None else [k for k in keys if k not in self._locked]
        with self._batch() if wanted else nullcontext():
            for budget, key in dict.fromkeys(wanted):
                self._lock_budget.run(self._cursor, {"budget": budget, "key": key})  # type: ignore[union-attr]
            yield
        self._locked.update(wanted)

    @property
    def approvals(self) -> ApprovalWrites:
        """The approval queue, in this transaction."""
        if self._approvals is None:
            self._approvals = ApprovalWrites(self)
        return self._approvals

    @property
    def executions(self) -> ExecutionWrites:
        """The executions ledger and outbox, in this transaction."""
        if self._executions is None:
            self._executions = ExecutionWrites(self)
        return self._executions

    @property
    def precedents(self) -> PrecedentWrites:
        """Citable precedent, in this transaction."""
        if self._precedents is None:
            self._precedents = PrecedentWrites(self)
        return self._precedents

    @property
    def identities(self) -> IdentityWrites:
        """Bearer tokens and UI sessions, in this transaction."""
        if self._identities is None:
            self._identities = IdentityWrites(self)
        return self._identities

    def budget_used(
        self, budget_id: str, key: str, since: datetime, *, currency: str | None = None
    ) -> int:
        """Minor units reserved against (budget, key) after `since`, with the key locked.

        The lock is held to the commit, so no other decision reads this key's sum until this
        transaction's reservation is visible. With `currency`, only what was reserved in it:
        a pack in several currencies keeps each budget per currency.
        """
        values = {"budget": budget_id, "key": key, "since": to_us(since), "currency": currency}
        with self._locking([(budget_id, key)]):
            self._run("used", values)
        return int(self._row()[0])

    def append(
        self, record: DecisionRecord, *, opens: ApprovalRow | None = None, last: bool = False
    ) -> Decision:
        """Record a decision with its reservations, lineage record and approval; return it hashed.

        `opens` is the approval a route opens. Invariant 4: all are written in this one
        transaction, so none exists without the others. The record binds the approval and any
        precedent the decision cited (`_bindings`).

        `last`: nothing follows in this transaction. On PostgreSQL the COMMIT then travels with
        the writes, in their round trip, and the transaction's own commit finds nothing left to
        do; it is committed when this returns.

        Raises:
            DuplicateKey: its idempotency key is on record already; roll back and read it.
            StoreError: with `last`, a row written in this transaction is bound to no record.
        """
        decision = record.decision
        at = to_us(decision.decided_at)
        body = record.body()
        # The proposal's canonical JSON once: a route's approval keeps the same proposal.
        proposal = canonical_json(body["proposal"], finite=True)
        opened: dict[str, Any] | None = None
        if opens is not None:
            opened = _approvals.values(
                opens, proposal_json=proposal if opens.proposal == body["proposal"] else None
            )
            self.touch("approvals", opened["id"], opened)
            # When the case it opens must be decided by: `approval.opened` events carry it.
            body["approval"] = {"due_at": opens.due_at.isoformat()}
        body = self._binding(body)
        # Each member's canonical JSON once (the snapshot's is made already): the decision's
        # also makes the row's body below. Every member is finite: a decision's model refuses
        # NaN, the proposal was parsed, the bindings are digests.
        context = record.context_json
        made = (
            {"proposal": proposal}
            if context is None
            else {"proposal": proposal, "context": context}
        )
        members = {
            name: made[name] if name in made else canonical_json(value, finite=True)
            for name, value in body.items()
        }
        text = canonical_members(members)
        link = self._next(decision.id, "decision", text, decision.id, at)
        stamped = decision.with_hash(link.hash)
        # The row's body: the record's decision with its (hex) hash spliced in, not serialised
        # again. It is read back as JSON only, so the order of its members is free.
        row_body = f'{members["decision"][:-1]},"lineage_hash":"{link.hash}"}}'
        amount = decision.amount
        try:
            # PostgreSQL: the four writes go to the server in one round trip.
            with self._batch():
                self._run(
                    "decision",
                    dict(
                        id=decision.id,
                        idempotency_key=decision.idempotency_key,
                        proposal_digest=decision.proposal_digest,
                        action=decision.action,
                        outcome=decision.outcome.value,
                        actor_id=decision.actor_id,
                        customer_id=decision.entities.get("customer"),
                        case_id=decision.entities.get("case"),
                        order_id=decision.entities.get("order"),
                        actor_role=decision.actor_role,
                        amount_minor=amount.minor if amount is not None else None,
                        currency=amount.currency if amount is not None else None,
                        required_role=decision.required_role,
                        reason=decision.reason,
                        policy_version=decision.policy_version,
                        decided_us=at,
                        ledger_seq=link.seq,
                        body=row_body,
                        arg_keys=members.get("keys"),
                    ),
                )
                self._reserve(decision.id, decision.reservations, at)
                if opened is not None:
                    self._sql["approval.open"].run(
                        self._cursor, {**opened, "ledger_hash": link.hash}
                    )
                    del self._touched[("approvals", opened["id"])]
                self._chain(link, "decision", decision.id, text, at)
                self._bound(body, link.hash)
                if last and self._pipelines:
                    self.refuse_unbound()
                    # psycopg's own keyword: a COMMIT is never worth preparing.
                    self._cursor.execute("COMMIT", prepare=False)  # type: ignore[call-arg]
        except self._connection.dialect.loaded_dbapi.IntegrityError as exc:
            raise DuplicateKey(decision.idempotency_key) from exc
        return stamped

    def touch(self, table: str, key: str, values: Mapping[str, Any] | None = None) -> None:
        """Note that a row of a bound table was written; the next record appended binds it.

        `values` is the row's whole new state when the writer knows it; otherwise the row is
        read back when the record is made. A transaction that ends with a row touched and not
        bound fails: no working row changes without a ledger record saying so.
        """
        self._touched[(table, key)] = values

    def _binding(self, body: dict[str, Any]) -> dict[str, Any]:
        """`body` with the rows touched since the last record bound to it (`binds`)."""
        if not self._touched:
            return body
        binds = []
        left = []
        for (table, key), values in sorted(self._touched.items(), key=lambda item: item[0]):
            if values is None:
                found = self._run(f"bind.read.{table}", {"b_key": key})
                row = found.fetchone()
                if row is None:
                    raise StoreError(f"{table} row {key!r} vanished before it was recorded")
                names = [column[0] for column in found.description]
                values = dict(zip(names, row, strict=True))
                digest = row_digest(table, values)
                # The state it leaves, which must be the newest the ledger set (`_bindings`).
                after = values["ledger_hash"]
                if after is not None:
                    newest_binding(self._connection, table, values)
            else:
                # The writer's own state, a row it made: its columns are ints and text.
                digest = row_digest(table, values, finite=True)
                after = None
            binds.append([table, key, digest])
            left.append(after)
        return {**body, "binds": binds, "left": left}

    def _bound(self, body: Mapping[str, Any], record: str) -> None:
        """Give the rows `body` binds the hash of their record."""
        for table, key, _ in body.get("binds", ()):
            if (table, key) in self._touched:
                self._run(f"bind.set.{table}", {"b_key": key, "b_hash": record})
                del self._touched[(table, key)]

    def refuse_unbound(self) -> None:
        """Refuse to commit while a row written here is bound to no ledger record.

        Raises:
            StoreError: naming the rows; the transaction rolls back.
        """
        if self._touched:
            # Rolled back: a working row may change only with a ledger record saying so.
            raise StoreError(
                "rows were written without a ledger record binding them: "
                + ", ".join(f"{table} {key!r}" for table, key in sorted(self._touched))
            )

    def reserve(
        self, decision_id: str, reservations: Iterable[Reservation], *, at: datetime
    ) -> None:
        """Reserve exposure against budgets for a decision, from `at` on.

        `append` reserves a decision's own; an approval reserves what its re-check adds.
        """
        self._reserve(decision_id, reservations, to_us(at))

    def release(
        self, decision_id: str, reservations: Iterable[Reservation], *, at: datetime
    ) -> None:
        """Release a decision's reservations as of `at`, the time they were made.

        A row of the opposite amount at the same time: in every window the reservation counts
        in, the release does too, so nothing recorded is changed and the two cancel out.
        """
        self._reserve(decision_id, reservations, to_us(at), sign=-1)

    def _reserve(
        self, decision_id: str, reservations: Iterable[Reservation], at: int, *, sign: int = 1
    ) -> None:
        # The one place reservations are inserted.
        for reservation in reservations:
            self._run(
                "reservation",
                {
                    "decision_id": decision_id,
                    "budget_id": reservation.budget,
                    "budget_key": reservation.key,
                    "amount_minor": sign * reservation.amount.minor,
                    "currency": reservation.amount.currency,
                    "reserved_us": at,
                },
            )

    def decision(self, decision_id: str) -> Decision | None:
        """A decision by id, as this transaction sees it, checked against its ledger record."""
        return _decision_by_id(self.bindings, self._connection, decision_id, self._partitions)

    def decision_body(self, decision_id: str) -> dict[str, Any] | None:
        """A decision's lineage body (decision, proposal, context), as this transaction sees it."""
        return _decision_body(self._connection, decision_id)

    def has_record(self, subject_id: str, kind: str) -> bool:
        """Whether the lineage holds a record of `kind` about `subject_id`."""
        found = self._connection.execute(
            select(ledger.c.seq).where(ledger.c.subject_id == subject_id, ledger.c.kind == kind)
        ).first()
        return found is not None

    def latest_record(self, subject_id: str, kind: str) -> dict[str, Any] | None:
        """The body of the latest lineage record of `kind` about `subject_id`, if any."""
        found = self._connection.execute(
            select(ledger.c.body)
            .where(ledger.c.subject_id == subject_id, ledger.c.kind == kind)
            .order_by(ledger.c.recorded_us.desc(), ledger.c.seq.desc())
            .limit(1)
        ).first()
        return json.loads(found.body) if found is not None else None

    def record_of(self, subject_id: str, stored: str | None) -> dict[str, Any] | None:
        """The body of the lineage record about `subject_id` with the hash `stored`, if any."""
        if stored is None:
            return None
        found = self._connection.execute(
            select(ledger.c.body).where(ledger.c.subject_id == subject_id, ledger.c.hash == stored)
        ).first()
        return json.loads(found.body) if found is not None else None

    def _batch(self) -> AbstractContextManager[Any]:
        """Where the server answers writes only at the block's end: in one round trip.

        PostgreSQL: psycopg's pipeline mode, for statements whose results are not read; an
        error (a duplicate key) is raised when the block ends. Elsewhere, nothing changes.
        """
        if self._pipelines:
            return self._cursor.connection.pipeline()  # type: ignore[no-any-return]
        return nullcontext()

    def record(
        self,
        kind: str,
        subject_id: str,
        body: dict[str, Any],
        *,
        at: datetime,
        chain: str | None = None,
    ) -> str:
        """Append a lineage record of `kind` about `subject_id`; return its hash.

        Used for what happens after a decision (approvals, executions, precedents set or
        revoked, tokens): the record commits or rolls back with the rest of this transaction, and
        binds every working row this transaction wrote since its last record. It joins
        the partition of `chain` (the decision it follows from; `subject_id` by default), so a
        decision and what became of it share one chain, in order.
        """
        body = self._binding(body)
        text = canonical_json(body)
        recorded_us = to_us(at)
        link = self._next(chain or subject_id, kind, text, subject_id, recorded_us)
        with self._batch():
            self._chain(link, kind, subject_id, text, recorded_us)
            self._bound(body, link.hash)
        return link.hash

    def lock(self, chain: str) -> None:
        """Lock the partition `chain` (a decision's id) appends to, until the commit.

        What is written about one decision then happens one transaction at a time, without
        waiting for the partition's first record of this transaction.
        """
        self._head(partition_of(chain, self._partitions))

    def _next(self, chain: str, kind: str, text: str, subject_id: str, at: int) -> _Link:
        """Where the next record on `chain`'s partition goes, and its hash."""
        partition = partition_of(chain, self._partitions)
        last, prev = self._head(partition)
        digest = record_hash(
            seq=last + 1,
            kind=kind,
            body=text,
            prev_hash=prev,
            partition=partition,
            subject_id=subject_id,
            recorded_us=at,
        )
        return _Link(partition, last + 1, prev, digest)

    def _head(self, partition: int) -> tuple[int, str]:
        if partition not in self._heads:
            # Locks this partition's head (PostgreSQL) until the commit.
            row = self._run("lock_head", {"partition": partition}).fetchone()
            if row is None:
                raise StoreError(
                    f"the ledger has no head for partition {partition}; run `discretion db upgrade`"
                )
            self._heads[partition] = (int(row[0]), str(row[1]))
        return self._heads[partition]

    def _chain(self, link: _Link, kind: str, subject_id: str, text: str, at: int) -> None:
        self._run(
            "record",
            {
                "partition": link.partition,
                "chain_seq": link.seq,
                "kind": kind,
                "subject_id": subject_id,
                "body": text,
                "prev_hash": link.prev_hash,
                "hash": link.hash,
                "recorded_us": at,
            },
        )
        self._run("move_head", {"p": link.partition, "new_seq": link.seq, "new_hash": link.hash})
        self._heads[link.partition] = (link.seq, link.hash)


def _learn_units(connection: Connection) -> None:
    """Make the units the ledger's decisions count known to `Money`, as their records write them.

    A unit is registered when a pack declaring it loads; verifying a ledger needs no pack, so
    each unit on record is read back from a decision's hash-chained record, with the places
    its canonical amount is written with (`5000` miles: 0; a unit of 2 places writes `12.50`).
    A record edited to say otherwise fails the chain it is verified against.
    """
    codes = connection.execute(
        select(decisions.c.currency).where(decisions.c.currency.is_not(None)).distinct()
    ).scalars()
    for code in [c for c in codes if c not in EXPONENTS and UNIT_CODE.fullmatch(c)]:
        # The first record that says so: a row edited to name the unit is passed over, and
        # the verify that follows names it.
        for found in connection.execute(
            select(ledger.c.body)
            .join(decisions, decisions.c.id == ledger.c.subject_id)
            .where(decisions.c.currency == code, ledger.c.kind == "decision")
            .order_by(ledger.c.seq)
            .limit(64)
        ).scalars():
            with suppress(ValueError, TypeError, KeyError):  # unreadable: verify names it
                amount = json.loads(found)["decision"]["amount"]
                if amount["currency"] == code:
                    register_unit(code, len(str(amount["amount"]).partition(".")[2]))
                    break


class SqlStore:
    """The one store, on SQLAlchemy Core: SQLite by default, PostgreSQL by URL.

    It keeps the decisions, their budget reservations and the lineage (`find_decision`,
    `transaction`, `verify`, ...), and reaches every other table through one attribute per
    family: `approvals`, `executions`, `precedents`, `identities`, `verdicts` and `reports`.
    Each read opens a connection of its own; writes go through `transaction()`.

    Example:
        ```python
        store = SqlStore("sqlite:///discretion.db")
        store = SqlStore("postgresql+psycopg://app@db/discretion")
        ```
    """

    def __init__(
        self, url: str = "sqlite://", *, create: bool = True, partitions: int = PARTITIONS
    ) -> None:
        if not 1 <= partitions <= 1024:
            raise ConfigurationError(f"partitions must be 1 to 1024, not {partitions}")
        self.url = url
        self._partitions: int | None = None
        self._new_partitions = partitions
        self._engine: Engine = _dialect.create(url, must_exist=not create)
        self._sql = Statements(self._engine.dialect, _statements(self._engine.dialect.name))
        self._totals: dict[tuple[Any, ...], Compiled] = {}
        self.bindings = Bindings()
        """Checks every working row against its ledger record before it is acted on or
        served; `bindings.failures` counts the rows that disagreed, by table."""
        traits = _dialect.traits(self._engine)
        self._holds = traits.holds_connections
        self._local = threading.local()
        self._held_lock = threading.Lock()
        self._all_held: list[Connection] = []
        database = traits.sqlite_file
        self._turns = _dialect.WriterTurns(database) if database else None
        self._checkpointer = (
            _dialect.Checkpointer(database, turns=self._turns) if database else None
        )
        self.embedded = traits.holds_connections
        """Whether the database is SQLite, opened by this process itself: reading and writing
        it wait on no network (on a file, only on other writers' turns)."""
        self._read_options = traits.read_options
        self._snapshot_options = traits.snapshot_options
        self._pipelines = traits.pipelines
        self.approvals = ApprovalReads(self)
        """The approval queue."""
        self.executions = ExecutionReads(self)
        """The executions ledger and outbox."""
        self.precedents = PrecedentReads(self)
        """Citable precedent."""
        self.identities = IdentityReads(self)
        """Bearer tokens and UI sessions."""
        self.verdicts = Verdicts(self)
        """The LLM judge's verdict cache and daily call counter."""
        self.reports = Reports(self)
        """Exposure, gauges and like cases, read across tables."""
        self.webhooks = WebhookCursors(self)
        """Where each webhook endpoint has got to in the ledger, and who delivers to it."""
        if create:
            self.create_schema()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for tools that read the tables directly."""
        return self._engine

    def create_schema(self) -> None:
        """Create the tables and the partitions' heads if they do not exist.

        On SQLite, an index a table made by an earlier version lacks is made too. On
        PostgreSQL that is left to `discretion db upgrade`: building an index on a large table
        holds off its writes, which a server's start should not do unasked.
        """
        try:
            with self._engine.begin() as connection:
                _dialect.create_missing(connection, indexes=self.embedded)
                _dialect.create_heads(connection, self._new_partitions)
        except IntegrityError:
            # Another process created the head between our read and insert: that is fine.
            pass
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot create the schema at {self._safe_url()}: {exc}") from exc

    def _safe_url(self) -> str:
        return self._engine.url.render_as_string(hide_password=True)

    async def arun(self, call: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """`call(*args, **kwargs)`, work on this store, for a caller on an event loop.

        An embedded store (`embedded`) runs it on the caller's loop: its waits are the database
        file's, and the hop to a worker thread and back cost more than the decision it carried
        (an awaited minimal decision took 0.37-0.47 ms p50 through a thread, 0.22 on the loop:
        `benchmarks/README.md`, "Async callers"). A store across the network runs it in a
        worker thread, so the loop never waits on the server.
        """
        if self.embedded:
            return call(*args, **kwargs)
        return await asyncio.to_thread(call, *args, **kwargs)

    def close(self) -> None:
        """Release the connection pool (and, on SQLite, checkpoint the WAL)."""
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        if self._turns is not None:
            self._turns.close()
        with self._held_lock:
            held, self._all_held = self._all_held, []
        for connection in held:
            with suppress(Exception):
                connection.close()
        self._engine.dispose()

    def find_decision(self, actor_id: str, idempotency_key: str) -> Decision | None:
        """The decision `actor_id` recorded under this key, if any (keys are each actor's own)."""
        # SQLite: this thread's held connection (the driver's cursor sends no BEGIN). PostgreSQL:
        # a pooled read in autocommit, like every other read.
        reader = self._held() if self._holds else self._reading("decisions")
        with self._mapped("read decisions"), reader as connection:
            cursor = connection.connection.cursor()
            found = self._sql["find"].run(cursor, {"actor": actor_id, "key": idempotency_key})
            row = found.fetchone()
            cursor.close()
        if row is None:
            return None
        # A retry is answered from the row only once it agrees with its ledger record (read on a
        # connection of its own: the held one must not begin a transaction).
        values = dict(zip(_DECISION_COLUMNS, row, strict=True))
        with self._reading("the ledger") as connection:
            return self.bindings.check_decision(connection, values, self.partitions)

    @contextmanager
    def _held(self) -> Iterator[Connection]:
        """This thread's connection, kept checked out between decisions.

        Checking a connection out of the pool and back in cost ~20 us per use, twice per
        decision. A connection that failed is dropped and the next use opens a fresh one.
        """
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed or connection.invalidated:
            with self._held_lock:
                # Held on SQLite only (PostgreSQL sessions go back to the pool, ending their
                # implicit transactions), and for a few threads, so the pool never runs dry.
                hold = self._holds and len(self._all_held) < _MAX_HELD
            if not hold:
                with self._engine.connect() as transient:
                    yield transient
                return
            connection = self._engine.connect()
            self._local.connection = connection
            with self._held_lock:
                self._all_held.append(connection)
        try:
            yield connection
        except BaseException:
            self._local.connection = None
            with self._held_lock, suppress(Exception):
                self._all_held.remove(connection)
                connection.close()
            raise

    @contextmanager
    def transaction(self, *, doing: str = "write the decision") -> Iterator[SqlTransaction]:
        """A write transaction; commits when the block ends cleanly.

        It locks what it touches as it goes (see `SqlTransaction`); on SQLite it holds the
        database's write lock from the start. `doing` names it in a database error's
        `StoreError` ("cannot write the decision at ...").
        """
        partitions = self._partitions or self._load_partitions(doing)
        with (
            self._turns.turn() if self._turns is not None else nullcontext(),
            self._mapped(doing),
            self._held() as connection,
            _immediate(connection) if self._holds else connection.begin(),
        ):
            tx = SqlTransaction(
                connection,
                self._sql,
                partitions,
                pipelines=self._pipelines,
                totals=self._totals,
                bindings=self.bindings,
                # Taken by the first transaction after the read, whichever it is: a commit on
                # this connection leaves data_version as it was, so a read is used at most once.
                read=self._local.__dict__.pop("read", None),
            )
            yield tx
            tx.refuse_unbound()
        if self._checkpointer is not None:
            self._checkpointer.committed()

    def totals(self, queries: Sequence[TotalQuery]) -> list[int]:
        """Running totals read now in one statement, without a lock.

        The decision reads them again in its own transaction, locked, before it is recorded.
        """
        with self._quick_read("totals") as (connection, cursor):
            if not self._holds:
                return run_totals(cursor, self._totals, self._engine.dialect, queries)
            # The version first: a commit landing before the totals' read changes it too.
            version = int(cursor.execute("PRAGMA data_version").fetchone()[0])
            values = run_totals(cursor, self._totals, self._engine.dialect, queries)
        if connection is getattr(self._local, "connection", None):
            # The decision's transaction, on this same held connection, then reads them again
            # only when another connection committed in between (`SqlTransaction.totals`).
            self._local.read = _Read(connection, tuple(queries), tuple(values), version)
        return values

    def _hot_row(self, what: str, name: str, values: dict[str, Any]) -> Any:
        """The first row of the compiled read `name`, run on its own outside any transaction."""
        with self._quick_read(what) as (_, cursor):
            return self._sql[name].run(cursor, values).fetchone()

    @contextmanager
    def _quick_read(self, what: str) -> Iterator[tuple[Connection, Any]]:
        """A driver cursor for reads outside any transaction, and its connection.

        On SQLite, this thread's held connection (no pool checkout, ~20 us a use): the driver
        reads each statement in a transaction of its own. Within a write transaction of this
        thread, and on PostgreSQL, a read connection of its own (`_reading`).
        """
        if self._holds:
            with self._mapped(f"read {what}"), self._held() as connection:
                if not connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
                    with closing(connection.connection.cursor()) as cursor:
                        yield connection, cursor
                    return
        with self._reading(what) as connection, closing(connection.connection.cursor()) as cursor:
            yield connection, cursor

    @property
    def partitions(self) -> int:
        """How many chains the ledger has (fixed when the ledger was made)."""
        return self._partitions or self._load_partitions("read the ledger heads")

    def _load_partitions(self, doing: str) -> int:
        with self._mapped(doing), self._engine.connect() as connection:
            count = _dialect.partition_count(_dialect.heads(connection))
        if count == 0:
            raise StoreError(
                f"the ledger at {self._safe_url()} has no heads; run `discretion db upgrade`"
            )
        self._partitions = count
        return count

    @contextmanager
    def _reading(self, what: str) -> Iterator[Connection]:
        """A read connection whose database errors become `StoreError`s naming `what`.

        On SQLite its transactions begin deferred, so reading never waits for a writer. On
        PostgreSQL each statement runs on its own (autocommit): under READ COMMITTED a statement
        sees its own snapshot either way, and no BEGIN or ROLLBACK travels to the server.
        """
        with (
            self._mapped(f"read {what}"),
            self._engine.connect().execution_options(**self._read_options) as connection,
        ):
            yield connection

    @contextmanager
    def _snapshot(self, what: str) -> Iterator[Connection]:
        """A read transaction that sees one consistent state while writers go on.

        PostgreSQL: REPEATABLE READ. SQLite: a deferred transaction, which in WAL mode reads one
        snapshot and never takes the write lock.
        """
        with (
            self._mapped(f"read {what}"),
            self._engine.connect().execution_options(**self._snapshot_options) as connection,
            connection.begin(),
        ):
            yield connection

    def decision_body(self, decision_id: str) -> dict[str, Any] | None:
        """The lineage body of a decision: the decision, its proposal and its context snapshot.

        Inside a transaction, read it with `SqlTransaction.decision_body`.
        """
        with self._reading("the ledger") as connection:
            return _decision_body(connection, decision_id)

    @contextmanager
    def _reader(self, connection: Connection | None, what: str) -> Iterator[Connection]:
        """`connection` (a transaction already open) or a fresh read connection; errors mapped."""
        if connection is None:
            with self._reading(what) as reader:
                yield reader
            return
        with self._mapped(f"read {what}"):
            yield connection

    @contextmanager
    def _mapped(self, doing: str) -> Iterator[None]:
        """Map database errors, whether raised through SQLAlchemy or the driver, to StoreError."""
        try:
            yield
        except (SQLAlchemyError, self._engine.dialect.loaded_dbapi.Error) as exc:
            cause = getattr(exc, "orig", None) or exc
            raise StoreError(
                f"cannot {doing} at {self._safe_url()}: {type(cause).__name__}: {cause}"
            ) from exc

    def decision(self, decision_id: str) -> Decision | None:
        """A decision by id, checked against its ledger record."""
        with self._reading("decisions") as connection:
            return _decision_by_id(self.bindings, connection, decision_id, self.partitions)

    def decisions(self, decision_ids: Iterable[str]) -> dict[str, Decision]:
        """The decisions with these ids that exist, by id."""
        wanted = sorted(set(decision_ids))
        if not wanted:
            return {}
        partitions = self.partitions
        with self._reading("decisions") as connection:
            rows = connection.execute(select(decisions).where(decisions.c.id.in_(wanted))).all()
            return {
                row.id: self.bindings.check_decision(connection, row, partitions) for row in rows
            }

    def history(self, subject_id: str) -> list[HistoryEntry]:
        """The lineage records about `subject_id` (a decision, an approval), oldest first."""
        with self._reading("the ledger") as connection:
            rows = connection.execute(
                select(ledger.c.seq, ledger.c.kind, ledger.c.body, ledger.c.recorded_us)
                .where(ledger.c.subject_id == subject_id)
                .order_by(ledger.c.seq)
            ).all()
        return [
            HistoryEntry(
                seq=int(row.seq), kind=row.kind, body=row.body, recorded_at=from_us(row.recorded_us)
            )
            for row in rows
        ]

    def records(self, *, batch: int = 1000) -> Iterator[LedgerRecord]:
        """Every lineage record in the order they were appended, read `batch` at a time."""
        return self._records(batch=batch)

    def _records(
        self, *, batch: int = 1000, connection: Connection | None = None
    ) -> Iterator[LedgerRecord]:
        """`records`, on `connection` (from `_snapshot()`) to read one consistent state."""
        after = 0
        query = select(ledger).order_by(ledger.c.seq).limit(batch)
        while True:
            with self._reader(connection, "the ledger") as reader:
                rows = reader.execute(query.where(ledger.c.seq > after)).all()
            for row in rows:
                yield ledger_record(row)
            if len(rows) < batch:
                return
            after = int(rows[-1].seq)

    def heads(self) -> dict[int, tuple[int, str]]:
        """Each partition's last record, `partition -> (chain_seq, hash)`."""
        with self._reading("the ledger heads") as connection:
            return _dialect.heads(connection)

    def count(self) -> int:
        """How many lineage records the heads account for."""
        return sum(seq for seq, _ in self.heads().values())

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, oldest first."""
        return self._checkpoints()

    def _checkpoints(self, *, connection: Connection | None = None) -> list[Checkpoint]:
        query = select(ledger_checkpoints).order_by(ledger_checkpoints.c.seq)
        with self._reader(connection, "the checkpoints") as reader:
            rows = reader.execute(query).all()
        return [_checkpoint(row) for row in rows]

    def checkpoint(self, *, at: datetime, signer: Signer | None = None) -> Checkpoint | None:
        """Bind every partition's head in a new checkpoint, signed when `signer` is given.

        Returns None when nothing was appended since the last checkpoint, or when another
        replica is writing one right now (PostgreSQL; an advisory lock elects one writer).
        """
        with self._mapped("write a checkpoint"), self._engine.begin() as connection:
            if not _dialect.elect_checkpoint_writer(connection):
                return None
            heads = tuple(
                (partition, seq, digest)
                for partition, (seq, digest) in _dialect.heads(connection).items()
            )
            last = connection.execute(
                select(ledger_checkpoints).order_by(ledger_checkpoints.c.seq.desc()).limit(1)
            ).first()
            previous = _checkpoint(last) if last is not None else None
            if previous is not None and previous.heads == heads:
                return None
            seq = previous.seq + 1 if previous is not None else 1
            prev_hash = previous.hash if previous is not None else GENESIS
            at_us = to_us(at)
            digest = checkpoint_hash(seq=seq, at_us=at_us, heads=heads, prev_hash=prev_hash)
            made = Checkpoint(
                seq=seq,
                at_us=at_us,
                heads=heads,
                prev_hash=prev_hash,
                hash=digest,
                key_id=signer.key_id if signer is not None else None,
                signature=signer.sign(digest) if signer is not None else None,
            )
            connection.execute(
                insert(ledger_checkpoints).values(
                    seq=made.seq,
                    at_us=made.at_us,
                    heads=canonical_json([list(h) for h in made.heads]),
                    prev_hash=made.prev_hash,
                    hash=made.hash,
                    key_id=made.key_id,
                    signature=made.signature,
                )
            )
        return made

    def verify(self, *, verifier: Verifier | None = None) -> int:
        """Verify every partition's chain and the checkpoints; return the number of records.

        Reads one consistent snapshot, so it runs beside live writers. With `verifier`, every
        checkpoint must carry a signature one of its keys made.

        Raises:
            LedgerIntegrityError: naming the first record or checkpoint that was edited, deleted,
                reordered or forged.
        """
        with self._snapshot("the ledger") as connection:
            _learn_units(connection)
            heads = _dialect.heads(connection)
            partitions = _dialect.partition_count(heads)
            bound = verify_checkpoints(
                self._checkpoints(connection=connection),
                partitions=partitions,
                check_signature=verifier,
            )
            chains = ChainVerifier(partitions, bound=bound)
            audit = Audit()
            for record in self._records(connection=connection):
                chains.add(record)
                audit.add(record)
            count = chains.finish(heads)
            # The chains hold; now every working row must be what they say.
            audit.finish(connection)
            return count

    def bind_rows(self, *, at: datetime) -> int:
        """Bind working rows written before rows were bound to the ledger; return how many.

        Each such row (`ledger_hash` empty) gets a `row.adopted` record of its state as it is
        now: run once by `discretion db upgrade`, on a database you trust at that moment.
        """
        bound = 0
        for table, (source, key_column) in BOUND.items():
            with self._reading(table) as connection:
                keys = [
                    str(key)
                    for key in connection.execute(
                        select(key_column)
                        .where(source.c.ledger_hash.is_(None))
                        .order_by(key_column)
                    ).scalars()
                ]
            for key in keys:
                with self.transaction() as tx:
                    tx.touch(table, key)
                    body = {"table": table, "key": key, "at": at}
                    tx.record("row.adopted", key, body, at=at)
                bound += 1
        return bound

    def export(self) -> Iterator[dict[str, Any]]:
        """Every lineage record as a dict, with its body parsed.

        With all its hash covers (`lineage.is_genuine`), so an export verifies on its own.
        """
        for record in self.records():
            yield {
                "seq": record.seq,
                "partition": record.partition,
                "chain_seq": record.chain_seq,
                "kind": record.kind,
                "subject_id": record.subject_id,
                "recorded_us": record.recorded_us,
                "hash": record.hash,
                "prev_hash": record.prev_hash,
                "body": json.loads(record.body),
            }


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(
        seq=int(row.seq),
        at_us=int(row.at_us),
        heads=tuple((int(p), int(s), str(h)) for p, s, h in json.loads(row.heads)),
        prev_hash=row.prev_hash,
        hash=row.hash,
        key_id=row.key_id,
        signature=row.signature,
    )
