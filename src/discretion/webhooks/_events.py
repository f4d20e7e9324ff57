"""Events: what a ledger record means to the outside, as the JSON a webhook carries.

Each event is derived from one lineage record, so the ledger stays the one source of truth and
an event's id is stable: `evt_` and 32 hex digits of the SHA-256 of the record's hash and the
event's type. Redelivering a record yields the same ids; receivers deduplicate on them.

| record | events |
|---|---|
| `decision` | `decision.recorded`; also `approval.opened` when the outcome is `route` |
| `approval.*` (approved, rejected, cancelled, expired, escalated, endorsed) | the same name |
| `execution.succeeded`, `execution.failed` | the same name |

Other records (precedents, tokens, shadow verdicts, an execution queued or started) yield none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from discretion.decision import Decision, Outcome
from discretion.money import Money
from discretion.store import PendingRecord

__all__ = [
    "APPROVAL_CHANGES",
    "EVENT_TYPES",
    "ROLE_EVENTS",
    "Actor",
    "ApprovalChanged",
    "ApprovalChangedEvent",
    "ApprovalOpened",
    "ApprovalOpenedEvent",
    "DecisionRecorded",
    "DecisionRecordedEvent",
    "Event",
    "ExecutionFinished",
    "ExecutionFinishedEvent",
    "LedgerPlace",
    "MoneyJson",
    "events_of",
]

APPROVAL_CHANGES = (
    "approval.approved",
    "approval.rejected",
    "approval.cancelled",
    "approval.expired",
    "approval.escalated",
    "approval.endorsed",
)
"""The approval transitions, each recorded under this kind and sent under this type."""
_EXECUTIONS = ("execution.succeeded", "execution.failed")
EVENT_TYPES = ("decision.recorded", "approval.opened", *APPROVAL_CHANGES, *_EXECUTIONS)
"""Every event type, in the order a case meets them."""
ROLE_EVENTS = ("approval.opened", "approval.escalated", "approval.endorsed")
"""The events that bring a case to a role: an endpoint's `roles` filter applies to these."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MoneyJson(_Model):
    """An amount: a decimal string, never a float, and its currency."""

    amount: str
    """Such as `"40.00"`."""
    currency: str
    """ISO 4217, such as `"USD"`."""


class Actor(_Model):
    """Who proposed or decided."""

    id: str
    """Their id; `system` for an expiry."""
    role: str | None = None
    """Their role."""


class LedgerPlace(_Model):
    """The lineage record an event comes from: look it up with `discretion ledger export`."""

    seq: int
    """Its place in the whole ledger."""
    partition: int
    """Its chain."""
    chain_seq: int
    """Its place in its chain."""
    hash: str
    """Its hash."""


class DecisionRecorded(_Model):
    """A decision was recorded."""

    decision_id: str
    """The decision's id (for a route, also its approval's)."""
    outcome: Literal["allow", "allow_exception", "route", "deny"]
    """What was decided."""
    action: str
    """The action proposed."""
    actor: Actor
    """Who proposed it."""
    amount: MoneyJson | None
    """The amount it moves, if any."""
    entities: dict[str, str]
    """The records it concerns (`customer`, `case`, `order`, ...), by the pack's names."""
    reason: str | None
    """The exception reason, if any."""
    required_role: str | None
    """For a route: the lowest role that may decide it."""
    rules: list[str]
    """The rule ids that produced it."""
    policy_version: str
    """The pack version it was decided under."""
    decided_at: datetime
    """When."""


class ApprovalOpened(_Model):
    """A routed case arrived in the queue of a role."""

    approval_id: str
    """The approval's id (its decision's)."""
    role: str
    """The role it waits on: people holding it, or a role above, may decide it."""
    action: str
    """The action asked for."""
    amount: MoneyJson | None
    """The amount asked for, if any."""
    reason: str | None
    """The exception reason asked for, if any."""
    actor: Actor
    """Who proposed it."""
    customer_id: str | None
    """The customer it concerns."""
    case_id: str | None
    """The support case it concerns."""
    order_id: str | None
    """The order it concerns."""
    opened_at: datetime
    """When it was routed."""
    due_at: datetime | None = None
    """When it expires unless someone decides it (None for a case recorded before the ledger
    held it)."""
    link: str
    """The case's page on the approver desk (absolute when the server knows its public URL)."""


class ApprovalChanged(_Model):
    """A person (or its due time) decided, escalated or withdrew a routed case."""

    approval_id: str
    """The approval's id (its decision's)."""
    status: str
    """Its status now: `approved`, `rejected`, `cancelled`, `expired`, or `pending` after an
    escalation or the first of two approvals (`approval.endorsed`)."""
    by: Actor
    """Who did it; `system` when it expired."""
    note: str
    """Why, in their words (for an expiry, the due time it passed)."""
    at: datetime
    """When."""
    role: str | None
    """For an escalation, the role it was sent up to; for the first of two approvals, the role
    it waits on for the second (an endpoint's `roles` filter reads both); otherwise the role
    its decision routed it to."""
    action: str | None
    """The action asked for."""
    amount: MoneyJson | None
    """The amount granted (approved, or by the first of two approvers), or else asked for."""
    customer_id: str | None
    """The customer it concerns."""
    case_id: str | None
    """The support case it concerns."""
    order_id: str | None
    """The order it concerns."""
    link: str
    """The case's page on the approver desk."""


class ExecutionFinished(_Model):
    """A governed tool call finished: it returned, or it raised."""

    decision_id: str
    """The decision it ran under (for a routed case, its approval's id)."""
    key: str
    """The execution key (the proposal's idempotency key) the tool was given."""
    tool: str
    """The tool that ran."""
    status: Literal["succeeded", "failed"]
    """How it ended; a failed call may be run again under the same key."""


class Event(_Model):
    """One webhook delivery's body."""

    id: str
    """Stable across redeliveries: deduplicate on it."""
    type: str
    """One of `EVENT_TYPES`."""
    created_at: datetime
    """When its record was appended."""
    ledger: LedgerPlace
    """The record it comes from."""
    data: dict[str, Any]
    """The event's content; its shape depends on `type`."""


class DecisionRecordedEvent(Event):
    """`decision.recorded`."""

    type: Literal["decision.recorded"]
    data: DecisionRecorded  # type: ignore[assignment]


class ApprovalOpenedEvent(Event):
    """`approval.opened`: a case arrived for a role."""

    type: Literal["approval.opened"]
    data: ApprovalOpened  # type: ignore[assignment]


class ApprovalChangedEvent(Event):
    """An approval changed: approved, rejected, cancelled, expired, escalated or endorsed."""

    type: Literal[
        "approval.approved",
        "approval.rejected",
        "approval.cancelled",
        "approval.expired",
        "approval.escalated",
        "approval.endorsed",
    ]
    data: ApprovalChanged  # type: ignore[assignment]


class ExecutionFinishedEvent(Event):
    """`execution.succeeded` or `execution.failed`."""

    type: Literal["execution.succeeded", "execution.failed"]
    data: ExecutionFinished  # type: ignore[assignment]


def _event_id(record_hash: str, kind: str) -> str:
    return "evt_" + hashlib.sha256(f"{record_hash}:{kind}".encode()).hexdigest()[:32]


def _money(value: Money | Mapping[str, Any] | None) -> MoneyJson | None:
    """An amount as events carry it, from a `Money` or from its JSON in a record's body."""
    if isinstance(value, Money):
        value = value.to_json()
    if not value:
        return None
    return MoneyJson(amount=str(value["amount"]), currency=str(value["currency"]))


def events_of(
    pending: PendingRecord,
    *,
    decision_of: Callable[[str], Decision | None],
    link: Callable[[str], str],
) -> list[Event]:
    """The events one ledger record yields (none for most kinds).

    Args:
        pending: the record, with when it was appended.
        decision_of: the decision an approval or execution record is about, checked against
            its own record (`SqlStore.decision`).
        link: the desk page of an approval, by id.
    """
    record = pending.record
    kind = record.kind
    if kind != "decision" and kind not in APPROVAL_CHANGES and kind not in _EXECUTIONS:
        return []
    body = json.loads(record.body)
    place = LedgerPlace(
        seq=record.seq, partition=record.partition, chain_seq=record.chain_seq, hash=record.hash
    )

    def event(kind: str, data: _Model) -> Event:
        return Event(
            id=_event_id(record.hash, kind),
            type=kind,
            created_at=pending.recorded_at,
            ledger=place,
            data=data.model_dump(mode="json"),
        )

    if kind == "decision":
        decision = Decision.model_validate(body["decision"])
        found = [event("decision.recorded", _recorded(decision))]
        if decision.outcome is Outcome.ROUTE:
            due = (body.get("approval") or {}).get("due_at")
            opened = _opened(decision, link(decision.id), due)
            found.append(event("approval.opened", opened))
        return found
    if kind in _EXECUTIONS:
        finished = ExecutionFinished(
            decision_id=record.subject_id,
            key=str(body["key"]),
            tool=str(body["tool"]),
            status="succeeded" if kind == "execution.succeeded" else "failed",
        )
        return [event(kind, finished)]
    approval_id = str(body["approval_id"])
    return [event(kind, _changed(body, decision_of(approval_id), link(approval_id)))]


def _recorded(decision: Decision) -> DecisionRecorded:
    return DecisionRecorded(
        decision_id=decision.id,
        outcome=decision.outcome.value,
        action=decision.action,
        actor=Actor(id=decision.actor_id, role=decision.actor_role),
        amount=_money(decision.amount),
        entities=dict(decision.entities),
        reason=decision.reason,
        required_role=decision.required_role,
        rules=list(decision.rules),
        policy_version=decision.policy_version,
        decided_at=decision.decided_at,
    )


def _opened(decision: Decision, link: str, due_at: str | None = None) -> ApprovalOpened:
    entities = decision.entities
    return ApprovalOpened(
        approval_id=decision.id,
        # The approval opens on the role the decision names (`approval_for`).
        role=decision.required_role or "",
        action=decision.action,
        amount=_money(decision.amount),
        reason=decision.reason,
        actor=Actor(id=decision.actor_id, role=decision.actor_role),
        customer_id=entities.get("customer"),
        case_id=entities.get("case"),
        order_id=entities.get("order"),
        opened_at=decision.decided_at,
        due_at=datetime.fromisoformat(due_at) if due_at is not None else None,
        link=link,
    )


def _changed(body: dict[str, Any], decision: Decision | None, link: str) -> ApprovalChanged:
    by = body.get("by") or {}
    entities = decision.entities if decision is not None else {}
    requested = decision.amount if decision is not None else None
    role = body.get("to_role") or (decision.required_role if decision is not None else None)
    return ApprovalChanged(
        approval_id=str(body["approval_id"]),
        status=str(body["status"]),
        by=Actor(id=str(by.get("id", "system")), role=by.get("role")),
        note=str(body.get("note", "")),
        at=datetime.fromisoformat(str(body["at"])),
        role=role,
        action=decision.action if decision is not None else None,
        amount=_money(body.get("amount") or requested),
        customer_id=entities.get("customer"),
        case_id=entities.get("case"),
        order_id=entities.get("order"),
        link=link,
    )
