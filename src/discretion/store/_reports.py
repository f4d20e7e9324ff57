"""Reads across tables for people and dashboards: exposure, gauges, how like cases went.

Granted money is what decisions allowed outright (`allow`, `allow_exception`) plus what approvers
granted on routed cases (at the approved, possibly edited, amount). Exceptions are the grants
that rested on an exception reason. The sums run in SQL over indexed columns, in minor units;
callers give them their currency.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, case, func, literal_column, or_, select

from discretion.decision import Outcome
from discretion.store._approvals import APPROVED, PENDING
from discretion.store._schema import approvals, decisions, from_us, ledger, reservations, to_us

if TYPE_CHECKING:
    from discretion.store._sql import SqlStore

__all__ = ["BudgetUse", "GrantCell", "GrantTotals", "LikeCase", "QueueDepth", "Reports"]

_DAY_US = 86_400_000_000
_GRANTED = (Outcome.ALLOW.value, Outcome.ALLOW_EXCEPTION.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantTotals:
    """What was granted since a time, and what waits, in minor units."""

    granted: int
    """How many grants (allowed decisions and approved cases)."""
    granted_minor: int
    """Their money."""
    exceptions: int
    """How many of them were exceptions."""
    exceptions_minor: int
    """Their money."""
    pending: int
    """Routed cases still waiting for a person."""
    pending_minor: int
    """Their money, asked for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantCell:
    """Grants of one UTC day, exception reason and granting role."""

    day: date
    """The UTC day."""
    reason: str | None
    """The exception reason; None for grants inside standard policy."""
    role: str
    """The proposer's role for allowed decisions, the approver's for approved cases."""
    count: int
    """How many grants."""
    minor: int
    """Their money."""
    currency: str | None = None
    """The currency of `minor`; None for grants that moved no money."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueDepth:
    """The pending approvals waiting on one role."""

    required_role: str
    """The role they wait on."""
    pending: int
    """How many."""
    oldest_opened_at: datetime
    """When the one waiting longest was routed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetUse:
    """How much of one budget is reserved in a window, in minor units."""

    top_key_minor: int
    """The most any one key has reserved."""
    total_minor: int
    """All keys together."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LikeCase:
    """A recent decision of an action and reason, with the lineage record it was decided on."""

    decision_id: str
    """The decision's id."""
    amount_minor: int | None
    """Its amount, if it moves money."""
    body: str
    """Its lineage record's body: the decision, the proposal and the context snapshot."""


def _exposure(
    connection: Connection,
    *,
    since: datetime,
    customer_id: str | None,
    actor_id: str | None,
    currency: str | None = None,
) -> GrantTotals:
    after = to_us(since)
    decided = [decisions.c.decided_us > after, decisions.c.outcome.in_(_GRANTED)]
    approved = [approvals.c.decided_us > after]
    mine = []
    if currency is not None:
        decided.append(decisions.c.currency == currency)
        mine.append(approvals.c.currency == currency)
    if customer_id is not None:
        decided.append(decisions.c.customer_id == customer_id)
        mine.append(approvals.c.customer_id == customer_id)
    if actor_id is not None:
        decided.append(decisions.c.actor_id == actor_id)
        mine.append(approvals.c.actor_id == actor_id)
    is_exception = decisions.c.outcome == Outcome.ALLOW_EXCEPTION.value
    amount = func.coalesce(decisions.c.amount_minor, literal_column("0"))
    row = connection.execute(
        select(
            func.count(),
            func.coalesce(func.sum(amount), literal_column("0")),
            func.coalesce(func.sum(case((is_exception, 1), else_=0)), literal_column("0")),
            func.coalesce(func.sum(case((is_exception, amount), else_=0)), literal_column("0")),
        ).where(*decided)
    ).one()
    granted, total, exceptions, exceptions_total = (int(v) for v in row)
    approved_amount = func.coalesce(
        approvals.c.approved_minor, approvals.c.amount_minor, literal_column("0")
    )
    has_reason = approvals.c.reason.is_not(None)
    by_status = connection.execute(
        select(
            approvals.c.status,
            has_reason.label("is_exception"),
            func.count(),
            func.coalesce(func.sum(approved_amount), literal_column("0")),
        )
        .where(
            or_(
                and_(approvals.c.status == APPROVED, *approved),
                approvals.c.status == PENDING,
            ),
            *mine,
        )
        .group_by(approvals.c.status, has_reason)
    ).all()
    pending = pending_total = 0
    for status, is_exception_case, count, money in by_status:
        if status == PENDING:
            pending += int(count)
            pending_total += int(money)
            continue
        granted += int(count)
        total += int(money)
        if is_exception_case:
            exceptions += int(count)
            exceptions_total += int(money)
    return GrantTotals(
        granted=granted,
        granted_minor=total,
        exceptions=exceptions,
        exceptions_minor=exceptions_total,
        pending=pending,
        pending_minor=pending_total,
    )


def _roles(connection: Connection, actor_ids: set[str]) -> dict[str, str]:
    """Each agent's role, from their latest decision's body (once per agent)."""
    roles: dict[str, str] = {}
    for actor_id in sorted(actor_ids):
        body = connection.execute(
            select(decisions.c.body)
            .where(decisions.c.actor_id == actor_id)
            .order_by(decisions.c.decided_us.desc())
            .limit(1)
        ).scalar_one_or_none()
        roles[actor_id] = json.loads(body).get("actor_role", "?") if body else "?"
    return roles


def _grants_by_day(connection: Connection, *, since: datetime, until: datetime) -> list[GrantCell]:
    start, end = to_us(since), to_us(until)
    day = (decisions.c.decided_us // _DAY_US).label("day")
    direct = connection.execute(
        select(
            day,
            decisions.c.outcome,
            decisions.c.reason,
            decisions.c.actor_id,
            func.count(),
            func.coalesce(func.sum(decisions.c.amount_minor), literal_column("0")),
            decisions.c.currency,
        )
        .where(
            decisions.c.decided_us > start,
            decisions.c.decided_us <= end,
            decisions.c.outcome.in_(_GRANTED),
        )
        .group_by(
            day, decisions.c.outcome, decisions.c.reason, decisions.c.actor_id, decisions.c.currency
        )
    ).all()
    approved_day = (approvals.c.decided_us // _DAY_US).label("day")
    routed = connection.execute(
        select(
            approved_day,
            approvals.c.reason,
            approvals.c.decided_role,
            func.count(),
            func.coalesce(
                func.sum(func.coalesce(approvals.c.approved_minor, approvals.c.amount_minor)),
                literal_column("0"),
            ),
            approvals.c.currency,
        )
        .where(
            approvals.c.status == APPROVED,
            approvals.c.decided_us > start,
            approvals.c.decided_us <= end,
        )
        .group_by(approved_day, approvals.c.reason, approvals.c.decided_role, approvals.c.currency)
    ).all()
    roles = _roles(connection, {row.actor_id for row in direct})
    # Per currency: minor units of two currencies are never added.
    totals: dict[tuple[int, str | None, str, str | None], list[int]] = defaultdict(lambda: [0, 0])
    for row in direct:
        reason = row.reason if row.outcome == Outcome.ALLOW_EXCEPTION.value else None
        cell = totals[(int(row.day), reason, roles[row.actor_id], row.currency)]
        cell[0] += int(row[4])
        cell[1] += int(row[5])
    for row in routed:
        cell = totals[(int(row.day), row.reason, row.decided_role or "?", row.currency)]
        cell[0] += int(row[3])
        cell[1] += int(row[4])
    epoch = from_us(0).date()
    return [
        GrantCell(
            day=epoch + timedelta(days=day_number),
            reason=reason,
            role=role,
            count=n,
            minor=money,
            currency=currency,
        )
        for (day_number, reason, role, currency), (n, money) in totals.items()
    ]


class Reports:
    """`SqlStore.reports`: reads across tables, each on a connection of its own."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def exposure(
        self,
        *,
        since: datetime,
        customer_id: str | None = None,
        actor_id: str | None = None,
        currency: str | None = None,
    ) -> GrantTotals:
        """What a customer (or the cases an agent proposed) was granted after `since`.

        Pending routed cases count whenever they were routed. With `currency`, only what was
        in it (a pack in several currencies); every amount otherwise.
        """
        with self._store._reading("approvals") as connection:
            return _exposure(
                connection,
                since=since,
                customer_id=customer_id,
                actor_id=actor_id,
                currency=currency,
            )

    def grants_by_day(self, *, since: datetime, until: datetime) -> list[GrantCell]:
        """Grants in `(since, until]` by UTC day, exception reason and granting role."""
        with self._store._reading("approvals") as connection:
            return _grants_by_day(connection, since=since, until=until)

    def queue(self) -> list[QueueDepth]:
        """The pending approvals by the role they wait on."""
        with self._store._reading("metrics") as connection:
            rows = connection.execute(
                select(approvals.c.required_role, func.count(), func.min(approvals.c.opened_us))
                .where(approvals.c.status == PENDING)
                .group_by(approvals.c.required_role)
            ).all()
        return [
            QueueDepth(required_role=role, pending=int(count), oldest_opened_at=from_us(int(first)))
            for role, count, first in rows
        ]

    def budget_use(
        self, windows: Sequence[tuple[str, datetime]], *, currency: str | None = None
    ) -> list[BudgetUse]:
        """For each `(budget id, window start)`, what is reserved against it since, in order.

        With `currency`, only what was reserved in it.
        """
        used: list[BudgetUse] = []
        with self._store._reading("metrics") as connection:
            for budget_id, since in windows:
                window = and_(
                    reservations.c.budget_id == budget_id,
                    reservations.c.reserved_us > to_us(since),
                    *([reservations.c.currency == currency] if currency is not None else []),
                )
                per_key = (
                    select(func.sum(reservations.c.amount_minor).label("used"))
                    .where(window)
                    .group_by(reservations.c.budget_key)
                    .subquery()
                )
                top, total = connection.execute(
                    select(func.max(per_key.c.used), func.sum(per_key.c.used))
                ).one()
                used.append(BudgetUse(top_key_minor=int(top or 0), total_minor=int(total or 0)))
        return used

    def like_cases(self, *, action: str, reason: str | None, limit: int) -> list[LikeCase]:
        """The `limit` latest decisions of `action` and `reason`, newest first.

        Read through the (action, reason, time) index, so the cost does not grow with history.
        """
        query = (
            select(decisions.c.id, decisions.c.amount_minor, ledger.c.body)
            .join(ledger, (ledger.c.subject_id == decisions.c.id) & (ledger.c.kind == "decision"))
            .where(
                decisions.c.action == action,
                decisions.c.reason == reason
                if reason is not None
                else decisions.c.reason.is_(None),
            )
            .order_by(decisions.c.decided_us.desc())
            .limit(limit)
        )
        with self._store._reading("decisions") as connection:
            rows = connection.execute(query).all()
        return [
            LikeCase(
                decision_id=row.id,
                amount_minor=int(row.amount_minor) if row.amount_minor is not None else None,
                body=row.body,
            )
            for row in rows
        ]

    def resolutions(self, decision_ids: Sequence[str]) -> dict[str, str]:
        """What became of each decision: the kind of the last record about it after its own.

        Decisions nothing happened to yet are left out.
        """
        resolved: dict[str, str] = {}
        if not decision_ids:
            return resolved
        with self._store._reading("the ledger") as connection:
            for subject, kind in connection.execute(
                select(ledger.c.subject_id, ledger.c.kind)
                .where(ledger.c.subject_id.in_(list(decision_ids)), ledger.c.kind != "decision")
                .order_by(ledger.c.seq)
            ):
                resolved[subject] = kind
        return resolved
