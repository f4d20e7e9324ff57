"""What an approval is: its states and the record approvers and agents read."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from discretion.money import Money

__all__ = ["Approval", "ApprovalStatus"]


class ApprovalStatus(StrEnum):
    """Where an approval stands. Only `pending` can move; the others are final."""

    PENDING = "pending"
    """Waiting for a person whose authority covers it."""
    APPROVED = "approved"
    """Granted, possibly for a lower amount; its tool call is queued to run once."""
    REJECTED = "rejected"
    """Refused by an approver."""
    EXPIRED = "expired"
    """Nobody decided it before its due time."""
    CANCELLED = "cancelled"
    """Withdrawn by the actor who proposed it, or by an approver."""


class Endorsement(BaseModel):
    """The first of the two approvals a case above its action's `two_approvals_above` needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    by: str
    """Who gave it; the second approver is someone else."""
    role: str
    """The role they gave it under."""
    amount: Money | None
    """The amount they approved; the second approver grants at most this."""
    note: str
    """Their note."""
    at: AwareDatetime
    """When."""


class Approval(BaseModel):
    """A routed decision waiting for (or decided by) a person. Its id is the decision's id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    """The routed decision's id."""
    status: ApprovalStatus
    """Where it stands."""
    action: str
    """The governed action."""
    reason: str | None
    """The exception reason the case relies on, when it needs one."""
    required_role: str
    """The lowest role that may decide it now (raised by each escalation)."""
    actor_id: str
    """Who proposed it; they never decide it."""
    actor_role: str
    """The role they proposed it under."""
    customer_id: str | None
    """The customer the action benefits."""
    case_id: str | None
    """The support case."""
    requested_amount: Money | None
    """The amount the actor proposed."""
    amount: Money | None
    """The amount approved (possibly edited lower) once approved; the requested one before."""
    proposal: dict[str, Any]
    """The stored proposal as decided: actor, action, tool call, amount, ids, rationale and key."""
    policy_version: str
    """The pack version that routed it."""
    opened_at: AwareDatetime
    """When it was routed."""
    due_at: AwareDatetime
    """When it expires if nobody decides it (the pack's `approval_sla`)."""
    escalations: int
    """How many times it was escalated up the ladder."""
    decided_at: AwareDatetime | None = None
    """When it left `pending`."""
    decided_by: str | None = None
    """Who approved, rejected or cancelled it (`system` when it expired)."""
    decided_role: str | None = None
    """The role they decided it under."""
    note: str | None = None
    """Their note."""
    endorsement: Endorsement | None = None
    """The first of the two approvals, once given; it stays pending for the second."""

    @property
    def tool(self) -> dict[str, Any] | None:
        """The stored tool call (`name`, `arguments`), or None for a proposal without one."""
        tool = self.proposal.get("tool")
        return tool if isinstance(tool, dict) else None

    @property
    def is_edited(self) -> bool:
        """Whether it was approved for less than was asked."""
        return (
            self.status is ApprovalStatus.APPROVED
            and self.amount is not None
            and self.requested_amount is not None
            and self.amount != self.requested_amount
        )

    def is_overdue(self, now: datetime) -> bool:
        """Whether it is still pending after its due time (at it, it may still be decided)."""
        return self.status is ApprovalStatus.PENDING and now > self.due_at
