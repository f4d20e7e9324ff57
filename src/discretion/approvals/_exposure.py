"""Exposure: the money granted so far, for one customer or agent, and over time.

Granted money is what decisions allowed outright (`allow`, `allow_exception`) plus what
approvers granted on routed cases (at the approved, possibly edited, amount). Exceptions are the
grants that rested on an exception reason. The store sums them (`SqlStore.reports`); this module
gives them their currency (the pack's, or each grant's own in a pack of several currencies,
whose totals are never added across currencies).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from discretion.money import Money
from discretion.store import SqlStore

__all__ = ["Exposure", "ExposureRow", "exposure", "exposure_report"]


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
    store: SqlStore,
    *,
    currency: str,
    since: datetime,
    customer_id: str | None = None,
    actor_id: str | None = None,
    only: bool = False,
) -> Exposure:
    """What a customer (or the cases an agent proposed) was granted since `since`.

    `only`: count what was in `currency` alone (a pack in several currencies keeps each apart).
    """
    totals = store.reports.exposure(
        since=since,
        customer_id=customer_id,
        actor_id=actor_id,
        currency=currency if only else None,
    )
    return Exposure(
        granted=totals.granted,
        granted_total=Money.from_minor(totals.granted_minor, currency),
        exceptions=totals.exceptions,
        exceptions_total=Money.from_minor(totals.exceptions_minor, currency),
        pending=totals.pending,
        pending_total=Money.from_minor(totals.pending_minor, currency),
    )


def exposure_report(
    store: SqlStore, *, currency: str, since: datetime, until: datetime
) -> list[ExposureRow]:
    """Grants by UTC day, exception reason and granting role, newest day first."""
    rows = [
        ExposureRow(
            day=cell.day,
            reason=cell.reason,
            role=cell.role,
            count=cell.count,
            total=Money.from_minor(cell.minor, cell.currency or currency),
        )
        for cell in store.reports.grants_by_day(since=since, until=until)
    ]
    rows.sort(key=lambda r: (-r.day.toordinal(), r.reason or "", r.role, r.total.currency))
    return rows
