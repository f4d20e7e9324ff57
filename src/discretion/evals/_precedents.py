"""Precedent set-up for eval cases, through the public `guard.precedents` API."""

from __future__ import annotations

from datetime import datetime

from discretion.evals._suite import PrecedentSetup, resolve_time
from discretion.guard import Guard
from discretion.proposal import Actor

__all__ = ["set_precedent"]


def set_precedent(guard: Guard, setup: PrecedentSetup, decision_id: str, *, now: datetime) -> str:
    """Set the precedent `setup` describes from `decision_id`; revoke it when asked; return its id.

    `expires_at` may be an offset from the case's clock (`now`), such as `+28d`.

    Raises:
        ApprovalError, ProposalError: the precedent API refused it (the case then fails).
    """
    spec = dict(setup.spec)
    if isinstance(spec.get("expires_at"), str):
        spec["expires_at"] = resolve_time(spec["expires_at"], now).isoformat()
    grantor = Actor.model_validate(setup.grantor)
    precedent = guard.precedents.set(decision_id, spec, grantor=grantor)
    if setup.revoke is not None:
        by = Actor.model_validate(setup.revoked_by) if setup.revoked_by else grantor
        guard.precedents.revoke(precedent.id, by=by, reason=setup.revoke)
    return precedent.id
