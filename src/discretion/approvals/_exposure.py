"""Exposure: the money granted so far, for one customer or agent, and over time.

Granted money is what decisions allowed outright (`allow`, `allow_exception`) plus what
approvers granted on routed cases (at the approved, possibly edited, amount). Exceptions are the
grants that rested on an exception reason. The sums run in SQL over indexed columns; only the
role of each agent is read from a decision body, once per agent.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, and_, case, func, literal_column, or_, select

from discretion.approvals._model import ApprovalStatus
from discretion.decision import Outcome
from discretion.money import Money
from discretion.store._schema import approvals, decisions
from discretion.store._sql import from_us, to_us

__all__ = ["Exposure", "ExposureRow", "exposure", "exposure_report"]

_DAY_US = 86_400_000_000
_GRANTED = (Outcome.ALLOW.value, Outcome.ALLOW_EXCEPTION.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Exposure:
    """What one customer or agent has been granted since a time, and what waits."""

    granted: int
    """How many grants (allowed decisions and approved cases)."""
    granted_total: Money
    """Their money."""
    exceptions: int
    """How many of them were exceptions."""
    exceptions_total: Money
    """Their money."""
    pending: int
    """Routed cases still waiting for a person."""
    pending_total: Money
    """Their money, asked for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExposureRow:
    """Grants of one day, reason and granting role."""

    day: date
    """The UTC day."""
    reason: str | None
    """The exception reason; None for grants inside standard policy."""
    role: str
    """The role that granted it: the proposer's for allowed decisions, the approver's for
    approved cases."""
    count: int
    """How many grants."""
    total: Money
    """Their money."""


def exposure(
    connection: Connection,
    *,
    currency: str,
    since: datetime,
    customer_id: str | None = None,
    actor_id: str | None = None,
) -> Exposure:
    """What a customer (or the cases an agent proposed) was granted since `since`."""
    after = to_us(since)
    decided = [decisions.c.decided_us > after, decisions.c.outcome.in_(_GRANTED)]
    approved = [approvals.c.decided_us > after]
    mine = []
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
                and_(approvals.c.status == ApprovalStatus.APPROVED.value, *approved),
                approvals.c.status == ApprovalStatus.PENDING.value,
            ),
            *mine,
        )
        .group_by(approvals.c.status, has_reason)
    ).all()
    pending = pending_total = 0
    for status, is_exception_case, count, money in by_status:
        if status == ApprovalStatus.PENDING.value:
            pending += int(count)
            pending_total += int(money)
            continue
        granted += int(count)
        total += int(money)
        if is_exception_case:
            exceptions += int(count)
            exceptions_total += int(money)
    return Exposure(
        granted=granted,
        granted_total=Money.from_minor(total, currency),
        exceptions=exceptions,
        exceptions_total=Money.from_minor(exceptions_total, currency),
        pending=pending,
        pending_total=Money.from_minor(pending_total, currency),
    )


def _roles(connection: Connection, actor_ids: set[str]) -> dict[str, str]:
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


def exposure_report(
    connection: Connection, *, currency: str, since: datetime, until: datetime
) -> list[ExposureRow]:
    """Grants by UTC day, exception reason and granting role, newest day first."""
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
        )
        .where(
            decisions.c.decided_us > start,
            decisions.c.decided_us <= end,
            decisions.c.outcome.in_(_GRANTED),
        )
        .group_by(day, decisions.c.outcome, decisions.c.reason, decisions.c.actor_id)
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
        )
        .where(
            approvals.c.status == ApprovalStatus.APPROVED.value,
            approvals.c.decided_us > start,
            approvals.c.decided_us <= end,
        )
        .group_by(approved_day, approvals.c.reason, approvals.c.decided_role)
    ).all()
    roles = _roles(connection, {row.actor_id for row in direct})
    totals: dict[tuple[int, str | None, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in direct:
        reason = row.reason if row.outcome == Outcome.ALLOW_EXCEPTION.value else None
        cell = totals[(int(row.day), reason, roles[row.actor_id])]
        cell[0] += int(row[4])
        cell[1] += int(row[5])
    for row in routed:
        cell = totals[(int(row.day), row.reason, row.decided_role or "?")]
        cell[0] += int(row[3])
        cell[1] += int(row[4])
    rows = [
        ExposureRow(
            day=from_us(0).date() + timedelta(days=day_number),
            reason=reason,
            role=role,
            count=count,
            total=Money.from_minor(money, currency),
        )
        for (day_number, reason, role), (count, money) in totals.items()
    ]
    rows.sort(key=lambda r: (-r.day.toordinal(), r.reason or "", r.role))
    return rows
