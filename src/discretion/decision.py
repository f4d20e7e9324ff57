"""What discretion answers: a `Decision`, with everything needed to explain it later."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict

from discretion.money import Money

__all__ = ["Decision", "Outcome", "Reservation"]


class Outcome(StrEnum):
    """The four things discretion can decide."""

    ALLOW = "allow"
    """Inside standard policy and the actor's standard authority."""
    ALLOW_EXCEPTION = "allow_exception"
    """A justified exception inside the actor's exception authority."""
    ROUTE = "route"
    """A human with enough authority must decide; `required_role` names the lowest such role."""
    DENY = "deny"
    """Forbidden for everyone: a hard limit fired, or no role can grant it."""

    @property
    def is_allowed(self) -> bool:
        """Whether the action may run now."""
        return self in (Outcome.ALLOW, Outcome.ALLOW_EXCEPTION)


_MODEL = ConfigDict(frozen=True, extra="forbid")


class Reservation(BaseModel):
    """Exposure reserved against a budget, committed with the decision."""

    model_config = _MODEL

    budget: str
    """The budget's id in the pack."""
    key: str
    """The budget key this reservation counts against (a customer id, an actor id, ...)."""
    amount: Money
    """The exposure reserved."""


class Decision(BaseModel):
    """The answer to a proposal. Recorded in the lineage before it is returned."""

    model_config = _MODEL

    id: str
    """Unique id of this decision."""
    idempotency_key: str
    """The key it was decided under; retries with it get this decision back."""
    outcome: Outcome
    """What was decided."""
    action: str
    """The governed action."""
    actor_id: str
    """Who proposed it."""
    actor_role: str
    """The role the actor proposed it under."""
    amount: Money | None
    """The money the action moves."""
    rules: list[str]
    """Ids of the rules that produced this outcome, in the order they were applied."""
    reason: str | None = None
    """The exception reason that justified an exception, or that a routed case relies on."""
    required_role: str | None = None
    """When routed: the lowest role whose authority covers the case."""
    explanation: str
    """Written for the agent: what happened and what to tell the customer."""
    causes: list[str] = []
    """Why a decision failed closed: the errors met, each naming the part at fault."""
    reservations: list[Reservation] = []
    """Exposure reserved against budgets with this decision."""
    context_digest: str
    """SHA-256 of the canonical context snapshot the decision was made on."""
    proposal_digest: str
    """SHA-256 of the canonical proposal."""
    policy_version: str
    """The content hash of the pack that decided it."""
    decided_at: AwareDatetime
    """When it was decided, by the guard's clock."""
    lineage_hash: str = ""
    """The hash of its lineage record; empty only before it is recorded."""

    @property
    def is_allowed(self) -> bool:
        """Whether the tool may run now."""
        return self.outcome.is_allowed

    def with_hash(self, lineage_hash: str) -> Decision:
        """A copy carrying its lineage hash."""
        return self.model_copy(update={"lineage_hash": lineage_hash})
