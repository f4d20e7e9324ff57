"""Working rows bound to the ledger: every row the server acts on answers to a lineage record.

The ledger is the truth; the working tables are indexes over it that the server reads fast.
Each is bound to the records it came from, so an edit made behind discretion's back is found:

- **Rows with a state** (`approvals`, `executions`, `precedents`, `api_tokens`,
  `judge_verdicts`, `ui_sessions`): a transaction
  that writes such a row appends a lineage record before it commits, and that record's body
  lists the row with the digest of its new state (`"binds": [[table, key, digest], ...]`). The
  row keeps the record's hash in `ledger_hash`. A row whose digest no longer matches the record
  its hash names was edited; a row with no record was forged; a record with no row was deleted.
- **Decisions** are derived from their own record: every column and the stored body are what
  the record at `(partition_of(id), ledger_seq)` says.
- **Reservations** are derived from the records that made them: a decision's own (its body
  lists them) and an approval's re-check (`approval.approved` lists what it added).

`Bindings.check` runs before a row is acted on or served (a retry's answer, a `GET`, an
approval, a token); `Audit` re-derives every row from the whole ledger for `ledger verify`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Container, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Column, Connection, Table, bindparam, select, update

from discretion.decision import Decision, Reservation
from discretion.errors import LedgerIntegrityError
from discretion.lineage import LedgerRecord, canonical_json, partition_of
from discretion.lineage import digest as value_digest
from discretion.store._schema import (
    api_tokens,
    approvals,
    decisions,
    executions,
    judge_verdicts,
    ledger,
    ledger_record,
    precedents,
    reservations,
    to_us,
    ui_sessions,
)

__all__ = [
    "BOUND",
    "Audit",
    "Binding",
    "Bindings",
    "OwnRows",
    "decision_columns",
    "newest_binding",
    "row_digest",
    "statements",
]

BOUND: dict[str, tuple[Table, Column[Any]]] = {
    "approvals": (approvals, approvals.c.id),
    "executions": (executions, executions.c.key),
    "precedents": (precedents, precedents.c.id),
    "api_tokens": (api_tokens, api_tokens.c.id),
    "judge_verdicts": (judge_verdicts, judge_verdicts.c.key),
    "ui_sessions": (ui_sessions, ui_sessions.c.id_hash),
}
"""The tables whose rows carry the hash of the record that set their state, by name, with
their key column."""

_SUBJECTS: dict[str, tuple[str, ...]] = {
    "approvals": ("id",),
    "executions": ("decision_id", "key"),
    "precedents": ("id",),
    "api_tokens": ("id",),
    "judge_verdicts": ("key",),
    "ui_sessions": ("id_hash",),
}
"""Where a row's binding record is filed (`ledger.subject_id`): found through the subject index.

Every record that binds a row is about the row itself or, for an execution, its decision.
"""

_STATE = {
    # Plain `str` names: SQLAlchemy's `quoted_name` sends orjson to the standard encoder.
    name: tuple(str(c.name) for c in table.columns if c.name != "ledger_hash")
    for name, (table, _) in BOUND.items()
}
_VERIFIED_MAX = 100_000
"""Rows whose binding was checked are remembered (by state and hash) up to this many."""


_LATER = frozenset({"endorsement"})
"""Columns added after rows were first bound: left out of a row's state while NULL, so the
digests recorded before them still hold."""


def row_digest(table: str, values: Mapping[str, Any], *, finite: bool = False) -> str:
    """The SHA-256 of a row's state: every column but `ledger_hash`, as canonical JSON.

    `finite`: the state was built by discretion (ints and text; see `canonical_json`), not
    read back from the table, where an edit could have left a float no column declares.
    """
    state = {
        name: values[name]
        for name in _STATE[table]
        if name not in _LATER or values[name] is not None
    }
    return value_digest(state, finite=finite)


def statements(dialect_name: str) -> dict[str, Any]:
    """Per bound table: read a row back whole, and set the hash of the record that binds it."""
    found: dict[str, Any] = {}
    for name, (table, key) in BOUND.items():
        found[f"bind.read.{name}"] = select(*table.columns).where(key == bindparam("b_key"))
        found[f"bind.set.{name}"] = (
            update(table).where(key == bindparam("b_key")).values(ledger_hash=bindparam("b_hash"))
        )
    return found


class Binding(NamedTuple):
    """A row a record binds: its table, its key and the digest of the state it set."""

    table: str
    key: str
    digest: str


_UNSAID = "-"
"""`Step.after` of a record written before records said which state a row left."""


class Step(NamedTuple):
    """A binding with the state the row left: the hash of the record that had bound it."""

    binding: Binding
    after: str | None
    """That record's hash (the body's `left`, item for item with `binds`); None for a row the
    record's transaction wrote new, `_UNSAID` for records written before `left` was kept."""


def _binds(body: Mapping[str, Any]) -> list[Binding]:
    return [Binding(*item[:3]) for item in body.get("binds", ())]


def _steps(body: Mapping[str, Any]) -> list[Step]:
    # `left` runs beside `binds`, item for item: kept apart so that a release reading `binds`
    # as it always was (a replica not yet upgraded) still reads records written now.
    binds = body.get("binds", ())
    left = body.get("left")
    if left is None or len(left) != len(binds):
        return [Step(Binding(*item[:3]), _UNSAID) for item in binds]
    return [Step(Binding(*item[:3]), after) for item, after in zip(binds, left, strict=True)]


def newest_binding(connection: Connection, table: str, values: Mapping[str, Any]) -> None:
    """Refuse to change a row whose state is not the one the newest record binding it set.

    A row set back to an earlier genuine state (its old columns and the hash of the record that
    bound them) answers to a record of its own and passes `Bindings.check`; acted on, it would
    let a call run again or a decided approval be decided anew. Read before a row's state is
    changed, not on every read: the record the row names, then any record after it on its chain
    (its place there is covered by its hash; the table's own `seq` is not) that binds the row.

    Raises:
        LedgerIntegrityError: the row is not in the state its newest record set.
    """
    key = str(values[BOUND[table][1].name])
    subjects = sorted({str(values[name]) for name in _SUBJECTS[table]})
    named = connection.execute(
        select(ledger).where(
            ledger.c.subject_id.in_(subjects), ledger.c.hash == values["ledger_hash"]
        )
    ).first()
    if named is None or not _genuine(named):
        raise LedgerIntegrityError(
            f"{table} row {key!r} names a ledger record that does not exist or was edited;"
            " nothing was changed. Run `discretion ledger verify` and restore the database"
            " from a verified copy"
        )
    # A row's records share one chain (`_SUBJECTS`): what came after this one is after it there.
    later = connection.execute(
        select(ledger.c.seq, ledger.c.body).where(
            ledger.c.subject_id.in_(subjects),
            ledger.c.partition == named.partition,
            ledger.c.chain_seq > named.chain_seq,
        )
    )
    for seq, body in later:
        if '"binds"' in body and any(
            b.table == table and b.key == key for b in _binds(json.loads(body))
        ):
            raise LedgerIntegrityError(
                f"{table} row {key!r} is not in the state ledger record {seq}, the last to set"
                " it, left it (set back to an earlier state); nothing was changed. Run"
                " `discretion ledger verify` and restore the database from a verified copy"
            )


def _columns(row: Any) -> dict[str, Any]:
    """A row read with `select(table)` (or already a dict), as a dict by column name."""
    return dict(row._mapping) if hasattr(row, "_mapping") else dict(row)


class Bindings:
    """Checks a row against the record it names before the row is acted on or served.

    A failure raises `LedgerIntegrityError` (HTTP 409) naming the row, and is counted by table
    in `failures` (the `discretion_ledger_binding_failures_total` series). Rows already found
    good are remembered by their state and hash, so serving the same row again costs a digest.
    """

    def __init__(self) -> None:
        self.failures: Counter[str] = Counter()
        self._verified: set[tuple[str, str, str]] = set()

    def _fail(self, table: str, message: str) -> LedgerIntegrityError:
        self.failures[table] += 1
        return LedgerIntegrityError(
            f"{message}; nothing was served from it. Run `discretion ledger verify` and restore"
            " the database from a verified copy"
        )

    def remembers(self, table: str, rows: Sequence[Any]) -> bool:
        """Whether every row (a dict of its columns) was found good before, as it is now.

        A row edited since, or never checked, is not remembered: `check` it.
        """
        return all(
            (table, row_digest(table, values), values.get("ledger_hash")) in self._verified
            for values in rows
        )

    def check(self, connection: Connection, table: str, rows: Sequence[Any]) -> None:
        """Check each row (a dict of its columns) against the record its `ledger_hash` names."""
        pending: dict[str, list[tuple[str, str, str]]] = {}
        subjects: set[str] = set()
        _, key_column = BOUND[table]
        for values in rows:
            key = str(values[key_column.name])
            digest = row_digest(table, values)
            bound = values.get("ledger_hash")
            if bound is None:
                raise self._fail(
                    table,
                    f"{table} row {key!r} is not bound to any ledger record (forged, or written"
                    " before `discretion db upgrade` bound the existing rows)",
                )
            if (table, digest, bound) not in self._verified:
                pending.setdefault(bound, []).append((table, key, digest))
                subjects.update(str(values[name]) for name in _SUBJECTS[table])
        if not pending:
            return
        found = {
            row.hash: row
            for row in connection.execute(
                select(ledger).where(
                    ledger.c.subject_id.in_(sorted(subjects)),
                    ledger.c.hash.in_(sorted(pending)),
                )
            ).all()
        }
        for bound, wanted in pending.items():
            record = found.get(bound)
            for table_name, key, digest in wanted:
                if record is None or not _genuine(record):
                    raise self._fail(
                        table_name,
                        f"{table_name} row {key!r} names a ledger record that does not exist or"
                        " was edited",
                    )
                if Binding(table_name, key, digest) not in _binds(json.loads(record.body)):
                    raise self._fail(
                        table_name,
                        f"{table_name} row {key!r} differs from the state ledger record"
                        f" {record.seq} set (it was edited outside discretion)",
                    )
                self._remember((table_name, digest, bound))

    def check_decision(self, connection: Connection, row: Any, partitions: int) -> Decision:
        """The decision a `decisions` row holds, once it agrees with its own ledger record.

        `row` is a SQLAlchemy row or a dict of its columns.
        """
        values = _columns(row)
        decision_id = values["id"]
        # Remembered by every column's value: any edit misses the memory and is checked.
        state = value_digest(values)
        key = ("decisions", decision_id, state)
        stamped = Decision.model_validate_json(values["body"])
        if key in self._verified:
            return stamped
        record = connection.execute(
            select(ledger).where(
                ledger.c.partition == partition_of(decision_id, partitions),
                ledger.c.chain_seq == values["ledger_seq"],
            )
        ).first()
        if record is None or not _genuine(record):
            raise self._fail(
                "decisions",
                f"decision {decision_id}: its ledger record is missing or was edited",
            )
        problem = decision_problem(values, record)
        if problem is not None:
            raise self._fail("decisions", f"decision {decision_id}: {problem}")
        self._remember(key)
        return stamped

    def _remember(self, entry: tuple[str, str, str]) -> None:
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()
        self._verified.add(entry)


class OwnRows(Bindings):
    """A transaction's view of the store's `Bindings`.

    Rows it wrote itself and has not yet bound (its own uncommitted state) are taken as they are.
    """

    def __init__(self, shared: Bindings, touched: Container[tuple[str, str]]) -> None:
        self.failures = shared.failures
        self._verified = shared._verified
        self._touched = touched

    def check(self, connection: Connection, table: str, rows: Sequence[Any]) -> None:
        """Check the rows this transaction did not write itself."""
        key = BOUND[table][1].name
        theirs = [row for row in rows if (table, str(row[key])) not in self._touched]
        super().check(connection, table, theirs)


def _set_back(
    table: str, key: str, seq: int, last: tuple[str, str, int] | None
) -> LedgerIntegrityError:
    if last is None:
        said = "a state no earlier record set (forged before it)"
    else:
        said = f"another state than ledger record {last[2]}, the last to set it, left"
    return LedgerIntegrityError(
        f"{table} row {key!r}: ledger record {seq} changed it from {said}; the row was set back"
        " or deleted and written again, and acted on",
        seq=seq,
    )


def _genuine(record: Any) -> bool:
    """Whether a ledger row's hash recomputes from its own content."""
    return ledger_record(record).intact


def decision_columns(
    decision: Decision, ledger_seq: int, keys: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The `decisions` row a recorded decision derives: the columns `append` writes.

    `keys`: what its record holds under `keys` (the arguments totals are kept per), if any.
    """
    amount = decision.amount
    entities = decision.entities
    return {
        "id": decision.id,
        "idempotency_key": decision.idempotency_key,
        "proposal_digest": decision.proposal_digest,
        "action": decision.action,
        "outcome": decision.outcome.value,
        "actor_id": decision.actor_id,
        "customer_id": entities.get("customer"),
        "case_id": entities.get("case"),
        "order_id": entities.get("order"),
        "actor_role": decision.actor_role,
        "amount_minor": amount.minor if amount is not None else None,
        "currency": amount.currency if amount is not None else None,
        "required_role": decision.required_role,
        "reason": decision.reason,
        "policy_version": decision.policy_version,
        "decided_us": to_us(decision.decided_at),
        "ledger_seq": ledger_seq,
        "body": decision.model_dump_json(),
        "arg_keys": canonical_json(keys) if keys else None,
    }


def decision_problem(row: Mapping[str, Any], record: Any) -> str | None:
    """What is wrong with a `decisions` row against its ledger record, or None."""
    if record.kind != "decision" or record.subject_id != row["id"]:
        return f"ledger record {record.seq} is not this decision's record"
    body = json.loads(record.body)
    decided = body["decision"]
    recorded = Decision.model_validate(decided)
    expected = decision_columns(
        recorded.with_hash(record.hash), int(record.chain_seq), body.get("keys")
    )
    legacy = "entities" not in decided
    for name, value in expected.items():
        if legacy and name in ("customer_id", "case_id", "order_id", "actor_role"):
            continue  # recorded before decisions named their entities and role
        actual = row[name]
        if name == "body":
            if json.loads(actual) != json.loads(value):
                return "its stored body differs from its ledger record (edited)"
        elif actual != value:
            return f"column {name} is {actual!r} but its ledger record says {value!r} (edited)"
    return None


class Audit:
    """Re-derives every working row from the ledger, for `ledger verify`.

    Feed it every record (`add`), then `finish` compares the tables and raises
    `LedgerIntegrityError` naming the first row that disagrees.
    """

    def __init__(self) -> None:
        self._bound: dict[tuple[str, str], tuple[str, str, int]] = {}
        self._decisions: dict[str, LedgerRecord] = {}
        self._reserved: Counter[tuple[Any, ...]] = Counter()
        self._malformed: LedgerIntegrityError | None = None
        self._set_back: LedgerIntegrityError | None = None

    def add(self, record: LedgerRecord) -> None:
        """Take what one record says about the working rows."""
        try:
            self._add(record)
        except (KeyError, TypeError, ValueError) as exc:
            # Reported after the chains are checked: a forged record is theirs to name first.
            self._malformed = self._malformed or LedgerIntegrityError(
                f"ledger record {record.seq} ({record.kind}) is malformed: {exc!r}", seq=record.seq
            )

    def _add(self, record: LedgerRecord) -> None:
        kind = record.kind
        if kind == "decision":
            self._decisions[record.subject_id] = record
        elif '"binds"' not in record.body and kind != "approval.approved":
            return
        body = json.loads(record.body)
        for (table, key, digest), after in _steps(body):
            last = self._bound.get((table, key))
            # `row.adopted` takes a row as it stands, on a database its operator trusts.
            if kind != "row.adopted" and after not in (_UNSAID, last[0] if last else None):
                self._set_back = self._set_back or _set_back(table, key, record.seq, last)
            self._bound[(table, key)] = (record.hash, digest, record.seq)
        if kind == "decision":
            decision = body["decision"]
            at = to_us(datetime.fromisoformat(decision["decided_at"]))
            self._reserve(record.subject_id, decision.get("reservations", ()), at)
        elif kind == "approval.approved":
            at = to_us(datetime.fromisoformat(body["at"]))
            self._reserve(body["approval_id"], body.get("reservations") or (), at)
            if body.get("released"):
                # The route's own reservations, released as of the route's time.
                at = to_us(datetime.fromisoformat(body["released_at"]))
                self._reserve(body["approval_id"], body["released"], at, sign=-1)

    def _reserve(
        self, decision_id: str, made: Iterable[Mapping[str, Any]], at: int, *, sign: int = 1
    ) -> None:
        for item in made:
            reservation = Reservation.model_validate(item)
            amount = reservation.amount
            self._reserved[
                (
                    decision_id,
                    reservation.budget,
                    reservation.key,
                    amount.currency,
                    sign * amount.minor,
                    at,
                )
            ] += 1

    def finish(self, connection: Connection) -> None:
        """Compare every working table with what the records derive."""
        if self._malformed is not None:
            raise self._malformed
        if self._set_back is not None:
            raise self._set_back
        self._check_decisions(connection)
        self._check_reservations(connection)
        for table in BOUND:
            self._check_bound(connection, table)

    def _check_decisions(self, connection: Connection) -> None:
        seen: set[str] = set()
        for row in connection.execute(select(decisions).order_by(decisions.c.id)):
            values = _columns(row)
            record = self._decisions.get(values["id"])
            if record is None:
                raise LedgerIntegrityError(
                    f"decisions row {values['id']!r} has no ledger record (forged)"
                )
            problem = decision_problem(values, record)
            if problem is not None:
                raise LedgerIntegrityError(f"decisions row {values['id']!r}: {problem}")
            seen.add(values["id"])
        for decision_id in sorted(set(self._decisions) - seen):
            raise LedgerIntegrityError(
                f"decision {decision_id} is in the ledger but its decisions row was deleted",
                seq=self._decisions[decision_id].seq,
            )

    def _check_reservations(self, connection: Connection) -> None:
        found: Counter[tuple[Any, ...]] = Counter()
        for row in connection.execute(select(reservations).order_by(reservations.c.id)):
            found[
                (
                    row.decision_id,
                    row.budget_id,
                    row.budget_key,
                    row.currency,
                    int(row.amount_minor),
                    int(row.reserved_us),
                )
            ] += 1
        extra = found - self._reserved
        missing = self._reserved - found
        for decision_id, budget, key, currency, minor, _ in sorted(extra, key=repr):
            raise LedgerIntegrityError(
                f"reservations: a row of decision {decision_id} against budget {budget!r}"
                f" ({key}) for {minor} minor units {currency} is not in the ledger (edited or"
                " forged)"
            )
        for decision_id, budget, key, _, _, _ in sorted(missing, key=repr):
            raise LedgerIntegrityError(
                f"reservations: the ledger reserves for decision {decision_id} against budget"
                f" {budget!r} ({key}) but the row was deleted or edited"
            )

    def _check_bound(self, connection: Connection, table: str) -> None:
        source, key_column = BOUND[table]
        seen: set[str] = set()
        for row in connection.execute(select(source).order_by(key_column)):
            values = _columns(row)
            key = str(values[key_column.name])
            seen.add(key)
            bound = self._bound.get((table, key))
            if bound is None:
                raise LedgerIntegrityError(
                    f"{table} row {key!r} is not bound to any ledger record (forged, or written"
                    " before `discretion db upgrade` bound the existing rows)"
                )
            hash_, digest, seq = bound
            if row_digest(table, values) != digest:
                raise LedgerIntegrityError(
                    f"{table} row {key!r} differs from the state ledger record {seq} set (edited)",
                    seq=seq,
                )
            if values["ledger_hash"] != hash_:
                raise LedgerIntegrityError(
                    f"{table} row {key!r} names another record than ledger record {seq}, the"
                    " last to set its state (set back or edited)",
                    seq=seq,
                )
        for missing_table, key in sorted(set(self._bound) - {(table, k) for k in seen}):
            if missing_table == table:
                raise LedgerIntegrityError(
                    f"{table} row {key!r} is in the ledger (record {self._bound[(table, key)][2]})"
                    " but was deleted",
                    seq=self._bound[(table, key)][2],
                )
