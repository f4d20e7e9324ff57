"""Step 9 of the pipeline: the decision as recorded, and the approval a route opens with it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from discretion.decision import Decision, Reservation
from discretion.pipeline._assemble import named
from discretion.pipeline._explain import explain
from discretion.pipeline._normalise import Normalised
from discretion.pipeline._state import Evaluation
from discretion.policy import PolicyPack
from discretion.store import ApprovalRow

__all__ = ["approval_for", "build_decision"]


def build_decision(
    pack: PolicyPack,
    item: Normalised,
    evaluation: Evaluation,
    *,
    decision_id: str,
    context_digest: str,
    now: datetime,
    reservations: tuple[Reservation, ...] = (),
) -> Decision:
    """The decision an evaluation comes to, with its explanation for the agent."""
    required = evaluation.required_role.id if evaluation.required_role is not None else None
    resolved = evaluation.resolved or named(item)
    return Decision(
        id=decision_id,
        idempotency_key=item.idempotency_key,
        outcome=evaluation.outcome,
        action=item.action_name,
        actor_id=item.proposal.actor.id,
        actor_role=item.role.id,
        amount=item.amount,
        entities=resolved.ids(),
        rules=evaluation.rules,
        reason=evaluation.reason.id if evaluation.reason is not None else None,
        required_role=required,
        explanation=explain(
            outcome=evaluation.outcome,
            action=item.action_name,
            amount=item.amount,
            rules=evaluation.rules,
            deciding=evaluation.deciding,
            required_role=required,
            extra=evaluation.notes,
            grounds=evaluation.grounds,
        ),
        causes=evaluation.causes,
        reservations=list(reservations),
        precedents=evaluation.precedents,
        judge=evaluation.judge,
        context_digest=context_digest,
        proposal_digest=item.digest,
        policy_version=pack.version,
        decided_at=now,
    )


def approval_for(pack: PolicyPack, decision: Decision, proposal: Mapping[str, Any]) -> ApprovalRow:
    """The approval a routed decision opens, in the decision's own transaction and record.

    `proposal` is the proposal as the lineage records it; its tool call is what runs once the
    approval is granted. The due time is the decision time plus the pack's `approval_sla` for
    the action and the required role.
    """
    role = pack.role(decision.required_role or "") or pack.highest_human
    tool = proposal.get("tool")
    return ApprovalRow(
        id=decision.id,
        status="pending",
        action=decision.action,
        reason=decision.reason,
        required_role=role.id,
        actor_id=decision.actor_id,
        actor_role=decision.actor_role,
        customer_id=decision.entities.get("customer"),
        case_id=decision.entities.get("case"),
        requested=decision.amount,
        approved=None,
        tool=tool.get("name") if isinstance(tool, Mapping) else None,
        proposal=dict(proposal),
        policy_version=decision.policy_version,
        opened_at=decision.decided_at,
        due_at=decision.decided_at + pack.approval_sla_for(decision.action, role),
        escalations=0,
        order_id=decision.entities.get("order"),
    )
