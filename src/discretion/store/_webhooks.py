"""Webhook delivery state: where each endpoint has got to in the ledger, and who delivers to it.

`discretion.webhooks` turns ledger records into events; this module keeps, per endpoint, the
last record delivered in each partition (`positions`), the retry schedule and a lease. Each
method runs in a short transaction of its own, apart from any decision's.

Why positions per partition and not one `ledger.seq`: `seq` is taken when a record is inserted,
and on PostgreSQL two transactions commit in any order, so a reader that has seen `seq` 11 may
later find 10 committed. A partition's `chain_seq` is taken under its head's lock and commits in
order with no gaps: once a reader sees `chain_seq` n, every record before it in that partition is
already visible. So a cursor of positions per partition never passes over a record.

The lease is claimed with a conditional `UPDATE` (it matches only when the lease is free,
lapsed or already ours, and the endpoint's next attempt is due), which both dialects serialise
on the row; every later write is conditional on still holding it, so a worker whose lease lapsed
mid-pass cannot move the cursor under the one that took over.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select, update

from discretion.lineage import LedgerRecord
from discretion.store import _dialect
from discretion.store._schema import from_us, ledger, ledger_record, to_us, webhook_cursors
from discretion.store._short import ShortTransactions

if TYPE_CHECKING:
    from discretion.store._sql import SqlStore

__all__ = ["CursorRow", "PendingRecord", "WebhookCursors"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CursorRow:
    """One endpoint's delivery state."""

    endpoint: str
    """The endpoint's id."""
    url: str
    """Where it delivers to (for operators reading the table)."""
    positions: tuple[int, ...]
    """The last `chain_seq` delivered in each partition, by partition."""
    last_seq: int
    """The `ledger.seq` of the last record delivered (0 before any)."""
    delivered: int
    """How many events it has been sent (and answered with a 2xx)."""
    attempts: int
    """Failed attempts at its next record since the last success."""
    next_attempt_at: datetime | None
    """Not before this time is the next attempt made; None when it is due now."""
    last_error: str | None
    """Why the last attempt failed, if it did."""
    lease_owner: str | None
    """Who is delivering to it, if anyone."""
    lease_until: datetime | None
    """Until when their lease holds."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingRecord:
    """A ledger record an endpoint has not got past yet, with when it was appended."""

    record: LedgerRecord
    """The record."""
    recorded_at: datetime
    """When it was appended (the guard's clock)."""


def _cursor(row: Any) -> CursorRow:
    return CursorRow(
        endpoint=row.endpoint,
        url=row.url,
        positions=tuple(int(p) for p in json.loads(row.positions)),
        last_seq=int(row.last_seq),
        delivered=int(row.delivered),
        attempts=int(row.attempts),
        next_attempt_at=from_us(row.next_attempt_us) if row.next_attempt_us is not None else None,
        last_error=row.last_error,
        lease_owner=row.lease_owner,
        lease_until=from_us(row.lease_until_us) if row.lease_until_us is not None else None,
    )


def _held(endpoint: str, owner: str) -> Any:
    """The endpoint's row, while `owner` holds its lease."""
    return and_(webhook_cursors.c.endpoint == endpoint, webhook_cursors.c.lease_owner == owner)


class WebhookCursors(ShortTransactions):
    """`SqlStore.webhooks`: each webhook endpoint's place in the ledger, retries and lease."""

    def __init__(self, store: SqlStore) -> None:
        super().__init__(store)
        self._store = store

    def enroll(self, endpoint: str, url: str, *, at: datetime) -> None:
        """Start `endpoint` at the ledger's current heads, unless it already has a place.

        A new endpoint is sent what is appended from now on, not the whole history.
        """
        partitions = self._store.partitions
        with self._begin("enroll a webhook endpoint") as connection:
            heads = _dialect.heads(connection)
            positions = [heads.get(p, (0, ""))[0] for p in range(partitions)]
            last = connection.execute(select(ledger.c.seq).order_by(ledger.c.seq.desc())).first()
            connection.execute(
                _dialect.insert_ignore(webhook_cursors, self._engine.dialect.name).values(
                    endpoint=endpoint,
                    url=url,
                    positions=json.dumps(positions),
                    last_seq=int(last[0]) if last is not None else 0,
                    delivered=0,
                    attempts=0,
                    updated_us=to_us(at),
                )
            )

    def get(self, endpoint: str) -> CursorRow | None:
        """An endpoint's delivery state, if it was enrolled."""
        with self._begin("read a webhook cursor") as connection:
            row = connection.execute(
                select(webhook_cursors).where(webhook_cursors.c.endpoint == endpoint)
            ).first()
        return _cursor(row) if row is not None else None

    def list(self) -> builtins.list[CursorRow]:
        """Every enrolled endpoint's delivery state."""
        with self._begin("read the webhook cursors") as connection:
            rows = connection.execute(
                select(webhook_cursors).order_by(webhook_cursors.c.endpoint)
            ).all()
        return [_cursor(row) for row in rows]

    def claim(
        self, endpoint: str, *, owner: str, now: datetime, until: datetime
    ) -> CursorRow | None:
        """Take the endpoint's lease until `until`; None when another holds it or it is not due.

        A lease that lapsed (its holder crashed or stalled) may be taken by anyone.
        """
        at = to_us(now)
        with self._begin("claim a webhook endpoint") as connection:
            taken = connection.execute(
                update(webhook_cursors)
                .where(
                    webhook_cursors.c.endpoint == endpoint,
                    or_(
                        webhook_cursors.c.lease_owner.is_(None),
                        webhook_cursors.c.lease_until_us <= at,
                        webhook_cursors.c.lease_owner == owner,
                    ),
                    or_(
                        webhook_cursors.c.next_attempt_us.is_(None),
                        webhook_cursors.c.next_attempt_us <= at,
                    ),
                )
                .values(lease_owner=owner, lease_until_us=to_us(until))
            )
            if taken.rowcount != 1:
                return None
            row = connection.execute(
                select(webhook_cursors).where(webhook_cursors.c.endpoint == endpoint)
            ).one()
        return _cursor(row)

    def pending(self, positions: Sequence[int], *, limit: int) -> builtins.list[PendingRecord]:
        """The next records past `positions`, in the order they were appended, at most `limit`."""
        partitions = self._store.partitions
        after = [
            and_(
                ledger.c.partition == p,
                ledger.c.chain_seq > (positions[p] if p < len(positions) else 0),
            )
            for p in range(partitions)
        ]
        with self._begin("read the ledger for webhooks") as connection:
            rows = connection.execute(
                select(ledger).where(or_(*after)).order_by(ledger.c.seq).limit(limit)
            ).all()
        return [
            PendingRecord(
                record=ledger_record(row),
                recorded_at=from_us(row.recorded_us),
            )
            for row in rows
        ]

    def advance(
        self,
        endpoint: str,
        *,
        owner: str,
        record: LedgerRecord,
        positions: Sequence[int],
        events: int,
        now: datetime,
        until: datetime,
    ) -> bool:
        """Move to `positions`, past `record`, having sent `events`; False if the lease was lost.

        Clears the retry schedule and renews the lease until `until`.
        """
        with self._begin("advance a webhook cursor") as connection:
            moved = connection.execute(
                update(webhook_cursors)
                .where(_held(endpoint, owner))
                .values(
                    positions=json.dumps(list(positions)),
                    last_seq=record.seq,
                    delivered=webhook_cursors.c.delivered + events,
                    attempts=0,
                    next_attempt_us=None,
                    last_error=None,
                    lease_until_us=to_us(until),
                    updated_us=to_us(now),
                )
            )
        return bool(moved.rowcount == 1)

    def fail(
        self,
        endpoint: str,
        *,
        owner: str,
        attempts: int,
        next_attempt_at: datetime,
        error: str,
        now: datetime,
    ) -> bool:
        """Record a failed attempt and when to try again; release the lease."""
        with self._begin("record a webhook failure") as connection:
            moved = connection.execute(
                update(webhook_cursors)
                .where(_held(endpoint, owner))
                .values(
                    attempts=attempts,
                    next_attempt_us=to_us(next_attempt_at),
                    last_error=error[:2000],
                    lease_owner=None,
                    lease_until_us=None,
                    updated_us=to_us(now),
                )
            )
        return bool(moved.rowcount == 1)

    def release(self, endpoint: str, *, owner: str) -> None:
        """Give the lease back, if it is still ours."""
        with self._begin("release a webhook endpoint") as connection:
            connection.execute(
                update(webhook_cursors)
                .where(_held(endpoint, owner))
                .values(lease_owner=None, lease_until_us=None)
            )
