"""Running totals from discretion's own ledger: what it allowed, and what waits, per record.

A pack reads them in CEL (`totals:`) and measures authority on them (`cumulative:`), so a limit
holds before the case system catches up with what discretion allowed a minute ago. Read in the
decision's transaction, under a lock on the record's key (PostgreSQL; SQLite's write lock holds
every writer already), they hold under concurrency as budgets do.

Each shape of total (which record, actions, outcomes, whose) is one statement, compiled once
per store and run on the driver's cursor, like the other hot-path statements.

A total is read through its record's index (`ix_decisions_order`, `ix_approvals_case`, ...):
the record's key and the window's start (an approved case's, when it was approved, is not in
the index) are its only conditions an index may serve; the others
(`action`, `status`, a filtering `actor_id`) are written so that none can (`_filter`). Without
that, PostgreSQL on a table it has no statistics for yet (new, or grown since its last ANALYZE)
weighs `action = $1` on `ix_decisions_similar` as selective as `order_id = $1` and may pick
it until autovacuum analyses the table: measured on `decide.py`'s fresh tables, each totals read
then scanned every refund (154 pages at 800 decisions, 0.45 ms) instead of one order's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, Text, bindparam, cast, exists, func, literal_column, select
from sqlalchemy.dialects.postgresql import JSONB

from discretion.store._compiled import Compiled
from discretion.store._schema import approvals, decisions, to_us

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

__all__ = ["TotalQuery", "lock_name", "run_totals"]

_DECIDED = ("allow", "allow_exception")
_PER = ("customer", "order", "case", "actor", "organisation")
ORGANISATION = "organisation"
"""A total kept across everyone: no record's key narrows it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TotalQuery:
    """One running total to read."""

    per: str
    """`customer`, `order`, `case` (the resolved record's id), `actor` or `organisation`."""
    key: str
    """The record's (or actor's) id; `*` across the organisation."""
    since: datetime
    """Only what was decided (or opened) after this counts."""
    outcomes: frozenset[str]
    """Of `allow`, `allow_exception` (decisions), `pending` and `approved` (routed cases)."""
    actions: tuple[str, ...] | None = None
    """The actions it counts; every action when None."""
    count: bool = False
    """Count decisions instead of summing minor units."""
    actor_id: str | None = None
    """Only what this actor proposed."""
    role: str | None = None
    """Only what actors proposed under this role."""
    currency: str | None = None
    """Only amounts in this currency (every amount when None: a pack in one currency)."""
    other: bool = False
    """With `currency`: count what was decided in any other currency instead."""
    reasons: tuple[str, ...] | None = None
    """Only exceptions made for these reasons; every decision when None."""
    args: tuple[tuple[str, str], ...] = ()
    """Only decisions whose declared arguments of these names had these values (`arg_keys`)."""
    exclude: str | None = None
    """A routed case left out (the one an approver re-checks: it is not its own history)."""

    def shape(self) -> tuple[Any, ...]:
        """What the statement depends on; the values it binds are not part of it."""
        return (
            self.per,
            self.outcomes,
            self.actions,
            self.count,
            self.actor_id is not None,
            self.role is not None,
            self.currency is not None,
            self.other,
            len(self.reasons) if self.reasons is not None else None,
            len(self.args),
            self.exclude is not None,
        )


def lock_name(per: str) -> str:
    """The budget-lock row a total per `per` is read under (PostgreSQL)."""
    return f"discretion.total.{per}"


def _filter(column: Any) -> Any:
    """`column`, compared as a value no index serves (`column || ''`: the same text).

    The condition still holds row by row; it only keeps the planner from reaching the rows
    through another index than the record's (see the module's docstring).
    """
    return column.op("||")(literal_column("''"))


def _argument(name: Any, dialect: str) -> Any:
    """The value a decision's `arg_keys` (a JSON object of strings) holds under `name`."""
    if dialect == "postgresql":
        return cast(decisions.c.arg_keys, JSONB).op("->>", return_type=Text)(name)
    # An argument's name is a plain identifier (`sku`): its path is `$.sku`.
    return func.json_extract(decisions.c.arg_keys, literal_column("'$.'").op("||")(name))


def _matching(query: TotalQuery, at: str, dialect: str) -> list[Any]:
    """The conditions on `decisions` that its declared arguments had the call's values."""
    return [
        _argument(bindparam(f"argname{at}_{i}", type_=Text), dialect)
        == bindparam(f"arg{at}_{i}", type_=Text)
        for i in range(len(query.args))
    ]


def _part(table: Any, query: TotalQuery, kind: str, at: str, dialect: str) -> Select[Any] | None:
    if query.per == ORGANISATION:
        keyed: list[Any] = []  # across everyone: the window alone narrows it
    else:
        column = table.c.actor_id if query.per == "actor" else table.c[f"{query.per}_id"]
        keyed = [column == bindparam(f"key{at}")]
    if table is decisions:
        wanted = [o for o in _DECIDED if o in query.outcomes]
        if not wanted:
            return None
        where = [
            *keyed,
            decisions.c.decided_us > bindparam(f"since{at}"),
            decisions.c.outcome.in_([literal_column(f"'{o}'") for o in wanted]),
        ]
        amount: Any = decisions.c.amount_minor
    else:
        if kind not in query.outcomes:
            return None
        # Approved money moved when the person approved it, which may be a day (a window) after
        # the case was opened; a pending case is counted from when it was asked.
        moment = approvals.c.decided_us if kind == "approved" else approvals.c.opened_us
        where = [
            *keyed,
            moment > bindparam(f"since{at}"),
            _filter(approvals.c.status) == literal_column(f"'{kind}'"),
        ]
        if query.exclude is not None:
            where.append(_filter(approvals.c.id) != bindparam(f"exclude{at}"))
        amount = (
            func.coalesce(approvals.c.approved_minor, approvals.c.amount_minor)
            if kind == "approved"
            else approvals.c.amount_minor
        )
    if query.actions is not None:
        where.append(
            _filter(table.c.action).in_(
                [bindparam(f"action{at}_{i}") for i in range(len(query.actions))]
            )
        )
    if query.reasons is not None:
        where.append(
            _filter(table.c.reason).in_(
                [bindparam(f"reason{at}_{i}") for i in range(len(query.reasons))]
            )
        )
    if query.args:
        matching = _matching(query, at, dialect)
        if table is decisions:
            where += matching
        else:
            # An approval is its routed decision's: the decision holds the call's arguments.
            where.append(exists().where(decisions.c.id == approvals.c.id, *matching))
    if query.actor_id is not None:
        actor = table.c.actor_id if query.per == "actor" else _filter(table.c.actor_id)
        where.append(actor == bindparam(f"actor{at}"))
    if query.role is not None:
        where.append(table.c.actor_role == bindparam(f"role{at}"))
    if query.currency is not None:
        currency: Any = bindparam(f"currency{at}")
        where.append(table.c.currency != currency if query.other else table.c.currency == currency)
    measure = (
        func.count()
        if query.count or query.other
        else func.coalesce(func.sum(amount), literal_column("0"))
    )
    return select(measure).where(*where)


def statement(query: TotalQuery, at: str = "", dialect: str = "sqlite") -> Any:
    """The one statement that reads `query`'s total, every part summed in the database.

    `at` suffixes its parameters' names, so several totals can be read in one statement;
    `dialect` is the database's (`sqlite`, `postgresql`), whose JSON functions differ.
    """
    if query.per not in _PER:
        raise ValueError(f"a total is kept per {', '.join(_PER)}, not {query.per!r}")
    parts = [
        part
        for part in (
            _part(decisions, query, "decided", at, dialect),
            _part(approvals, query, "pending", at, dialect),
            _part(approvals, query, "approved", at, dialect),
        )
        if part is not None
    ]
    if not parts:
        return select(literal_column("0"))
    total: Any = parts[0].scalar_subquery()
    for part in parts[1:]:
        total = total + part.scalar_subquery()
    return select(total)


def _values(query: TotalQuery, at: str, values: dict[str, Any]) -> None:
    values[f"key{at}"] = query.key
    values[f"since{at}"] = to_us(query.since)
    for index, action in enumerate(query.actions or ()):
        values[f"action{at}_{index}"] = action
    for index, reason in enumerate(query.reasons or ()):
        values[f"reason{at}_{index}"] = reason
    if query.actor_id is not None:
        values[f"actor{at}"] = query.actor_id
    if query.role is not None:
        values[f"role{at}"] = query.role
    if query.currency is not None:
        values[f"currency{at}"] = query.currency
    if query.exclude is not None:
        values[f"exclude{at}"] = query.exclude
    for index, (name, value) in enumerate(query.args):
        values[f"argname{at}_{index}"] = name
        values[f"arg{at}_{index}"] = value


def run_totals(
    cursor: Any,
    cache: dict[tuple[Any, ...], Compiled],
    dialect: Dialect,
    queries: Sequence[TotalQuery],
    *,
    fetch: bool = True,
) -> list[int]:
    """Read several totals in one statement (one round trip), compiled once per set of shapes.

    With `fetch` False the statement is only run (there must be `queries`): its one row is read
    from `cursor` later (after a pipeline's end), and nothing is returned.
    """
    if not queries:
        return []
    shape = tuple(query.shape() for query in queries)
    compiled = cache.get(shape)
    if compiled is None:
        parts = [
            statement(query, f"_{n}", dialect.name).scalar_subquery()
            for n, query in enumerate(queries)
        ]
        compiled = Compiled(select(*parts), dialect)
        cache[shape] = compiled
    values: dict[str, Any] = {}
    for n, query in enumerate(queries):
        _values(query, f"_{n}", values)
    compiled.run(cursor, values)
    if not fetch:
        return []
    return [int(value or 0) for value in cursor.fetchone()]
