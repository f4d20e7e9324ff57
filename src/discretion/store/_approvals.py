"""The approval queue's table: one row per routed decision, under the decision's id.

`discretion.approvals` holds the rules (who may decide what, the re-check, the notes); this
module reads and moves the rows. A row leaves `pending` once: `settle` moves it only from there.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from discretion.lineage import canonical_json
from discretion.money import Money
from discretion.store import _dialect
from discretion.store._schema import approvals, from_us, to_us

if TYPE_CHECKING:
    from discretion.store._bindings import Bindings
    from discretion.store._sql import SqlStore, SqlTransaction

__all__ = [
    "APPROVED",
    "PENDING",
    "ApprovalReads",
    "ApprovalRow",
    "ApprovalWrites",
    "statements",
    "values",
]

PENDING = "pending"
"""The status of an approval waiting for a person (`ApprovalStatus.PENDING`)."""
APPROVED = "approved"
"""The status of a granted approval (`ApprovalStatus.APPROVED`); reports sum these."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalRow:
    """One approval as the queue's table keeps it."""

    id: str
    """The routed decision's id."""
    status: str
    """An `ApprovalStatus` value."""
    action: str
    """The action asked for."""
    reason: str | None
    """The exception reason it was routed for, if any."""
    required_role: str
    """The role it waits on."""
    actor_id: str
    """Who proposed it."""
    actor_role: str
    """Their role."""
    customer_id: str | None
    """The customer, when the proposal names one."""
    case_id: str | None
    """The case, when the proposal names one."""
    requested: Money | None
    """The amount asked for."""
    approved: Money | None
    """The amount granted, once approved (in the requested currency)."""
    tool: str | None
    """The tool whose call runs once it is approved."""
    proposal: dict[str, Any]
    """The proposal as the lineage records it."""
    policy_version: str
    """The pack version that routed it."""
    opened_at: datetime
    """When it was routed."""
    due_at: datetime
    """When it expires unless decided."""
    escalations: int
    """How many times it went up the ladder."""
    decided_at: datetime | None = None
    """When it left `pending`."""
    decided_by: str | None = None
    """Who moved it (`system` for an expiry)."""
    decided_role: str | None = None
    """Their role."""
    note: str | None = None
    """Why."""
    order_id: str | None = None
    """The order, when the decision concerns one (as the order's record names it)."""
    ledger_hash: str | None = None
    """The hash of the ledger record that set the row's current state."""
    endorsement: dict[str, Any] | None = None
    """The first of the two approvals its case needs, once given (`by`, `role`, `amount`,
    `note`, `at`)."""


def _money(minor: int | None, currency: str | None) -> Money | None:
    return Money.from_minor(minor, currency) if minor is not None and currency else None


def _row(row: Any) -> ApprovalRow:
    return ApprovalRow(
        id=row.id,
        status=row.status,
        action=row.action,
        reason=row.reason,
        required_role=row.required_role,
        actor_id=row.actor_id,
        actor_role=row.actor_role,
        customer_id=row.customer_id,
        case_id=row.case_id,
        requested=_money(row.amount_minor, row.currency),
        approved=_money(row.approved_minor, row.currency),
        tool=row.tool,
        proposal=json.loads(row.proposal),
        policy_version=row.policy_version,
        opened_at=from_us(row.opened_us),
        due_at=from_us(row.due_us),
        escalations=int(row.escalations),
        decided_at=from_us(row.decided_us) if row.decided_us is not None else None,
        decided_by=row.decided_by,
        decided_role=row.decided_role,
        note=row.note,
        order_id=row.order_id,
        ledger_hash=row.ledger_hash,
        endorsement=json.loads(row.endorsement) if row.endorsement is not None else None,
    )


def values(row: ApprovalRow, *, proposal_json: str | None = None) -> dict[str, Any]:
    """An approval's columns, as the table keeps them.

    `proposal_json`: the canonical JSON of `row.proposal` when the caller made it already (a
    route's decision record holds the same proposal).
    """
    requested = row.requested
    return {
        "id": row.id,
        "status": row.status,
        "action": row.action,
        "reason": row.reason,
        "required_role": row.required_role,
        "actor_id": row.actor_id,
        "actor_role": row.actor_role,
        "customer_id": row.customer_id,
        "case_id": row.case_id,
        "amount_minor": requested.minor if requested is not None else None,
        "currency": requested.currency if requested is not None else None,
        "approved_minor": row.approved.minor if row.approved is not None else None,
        "tool": row.tool,
        "proposal": canonical_json(row.proposal) if proposal_json is None else proposal_json,
        "policy_version": row.policy_version,
        "opened_us": to_us(row.opened_at),
        "due_us": to_us(row.due_at),
        "escalations": row.escalations,
        "decided_us": to_us(row.decided_at) if row.decided_at is not None else None,
        "decided_by": row.decided_by,
        "decided_role": row.decided_role,
        "note": row.note,
        "order_id": row.order_id,
        "ledger_hash": row.ledger_hash,
        "endorsement": canonical_json(row.endorsement) if row.endorsement is not None else None,
    }


def statements(dialect_name: str) -> dict[str, Any]:
    """The hot-path statement of approvals, for `Statements`: every routed decision opens one.

    Building `insert(approvals).values(...)` per call cost ~0.5 ms.
    """
    return {"approval.open": insert(approvals)}


def _checked(bindings: Bindings, connection: Connection, rows: Sequence[Any]) -> list[ApprovalRow]:
    """Rows as approvals, once each agrees with the ledger record that set its state."""
    bindings.check(connection, "approvals", [row._mapping for row in rows])
    return [_row(row) for row in rows]


def _get(
    bindings: Bindings, connection: Connection, approval_id: str, *, lock: bool = False
) -> ApprovalRow | None:
    query = select(approvals).where(approvals.c.id == approval_id)
    row = connection.execute(_dialect.locking(query) if lock else query).first()
    return _checked(bindings, connection, [row])[0] if row is not None else None


class ApprovalReads:
    """`SqlStore.approvals`: reads of the queue, each on a connection of its own."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def get(self, approval_id: str) -> ApprovalRow | None:
        """The approval with this id, if any."""
        with self._store._reading("approvals") as connection:
            return _get(self._store.bindings, connection, approval_id)

    def list(
        self,
        *,
        status: str | None = None,
        required_roles: Sequence[str] | None = None,
        limit: int = 500,
    ) -> builtins.list[ApprovalRow]:
        """Approvals soonest due first: in `status`, waiting on one of `required_roles`."""
        query = select(approvals)
        if status is not None:
            query = query.where(approvals.c.status == status)
        if required_roles is not None:
            query = query.where(approvals.c.required_role.in_(required_roles))
        query = query.order_by(approvals.c.due_us, approvals.c.id).limit(limit)
        with self._store._reading("approvals") as connection:
            rows = connection.execute(query).all()
            return _checked(self._store.bindings, connection, rows)


class ApprovalWrites:
    """`SqlTransaction.approvals`: the queue inside the caller's transaction."""

    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    def get(self, approval_id: str) -> ApprovalRow | None:
        """The approval, as this transaction sees it (no lock)."""
        return _get(self._tx.bindings, self._tx._connection, approval_id)

    def claim(self, approval_id: str) -> ApprovalRow | None:
        """The approval with this id, locked until the commit (PostgreSQL).

        Whoever decides a case claims it: a second approver waits, then finds it decided.
        SQLite's write lock already serialises them.
        """
        return _get(self._tx.bindings, self._tx._connection, approval_id, lock=True)

    def due(self, now: datetime) -> builtins.list[ApprovalRow]:
        """Pending approvals whose due time has come, soonest first, locked.

        One another transaction holds (an approver deciding it right now) is passed over: its
        approver finds it overdue.
        """
        rows = self._tx._connection.execute(
            _dialect.locking(
                select(approvals)
                .where(approvals.c.status == PENDING, approvals.c.due_us < to_us(now))
                .order_by(approvals.c.due_us, approvals.c.id),
                skip_locked=True,
            )
        ).all()
        return _checked(self._tx.bindings, self._tx._connection, rows)

    def settle(
        self,
        approval_id: str,
        *,
        status: str,
        at: datetime,
        by: str,
        role: str | None,
        note: str,
        approved: Money | None = None,
        entities: Mapping[str, str] | None = None,
    ) -> bool:
        """Move a pending approval to `status`; False when it is no longer pending.

        `entities`: the records an approved case is about as the re-check resolved them
        (`customer`, `order`, `case`). They replace the ids the proposal typed, so that the
        ledger's totals per record count the grant: a case routed before its records could
        be read may name its order only through its case.
        """
        values: dict[str, Any] = {
            "status": status,
            "decided_us": to_us(at),
            "decided_by": by,
            "decided_role": role,
            "note": note,
            "approved_minor": approved.minor if approved is not None else None,
        }
        if entities is not None:
            values.update(
                customer_id=entities.get("customer"),
                case_id=entities.get("case"),
                order_id=entities.get("order"),
            )
        result = self._tx._connection.execute(
            update(approvals)
            .where(approvals.c.id == approval_id, approvals.c.status == PENDING)
            .values(**values)
        )
        if result.rowcount != 1:
            return False
        self._tx.touch("approvals", approval_id)
        return True

    def endorse(self, approval_id: str, endorsement: Mapping[str, Any]) -> None:
        """Record the first of the two approvals a pending case needs; it stays pending."""
        self._tx._connection.execute(
            update(approvals)
            .where(approvals.c.id == approval_id, approvals.c.status == PENDING)
            .values(endorsement=canonical_json(endorsement))
        )
        self._tx.touch("approvals", approval_id)

    def escalate(
        self, approval_id: str, *, required_role: str, due_at: datetime, escalations: int
    ) -> None:
        """Route an approval to `required_role` with a new due time."""
        self._tx._connection.execute(
            update(approvals)
            .where(approvals.c.id == approval_id)
            .values(required_role=required_role, due_us=to_us(due_at), escalations=escalations)
        )
        self._tx.touch("approvals", approval_id)
