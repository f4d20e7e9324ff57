"""Step 3 of the pipeline: the facts a decision needs, and only those (invariant 6)."""

from __future__ import annotations

from datetime import datetime

from discretion.context import ContextProvider, ContextRequest, Snapshot, assemble
from discretion.pipeline._normalise import Normalised
from discretion.policy import ActionPolicy, PolicyPack

__all__ = ["assemble_facts"]


def assemble_facts(
    pack: PolicyPack,
    provider: ContextProvider,
    item: Normalised,
    action: ActionPolicy,
    now: datetime,
) -> Snapshot:
    """Ask `provider` for exactly the fields `action` reads; type-check and freeze them.

    Raises:
        ContextError: the provider failed, or a fact is missing or ill-typed.
    """
    request = ContextRequest(
        fields=action.reads,
        action=action.name,
        customer_id=item.customer_id,
        case_id=item.case_id,
        order_id=item.order_id,
        now=now,
        currency=item.amount.currency if item.amount is not None else None,
        arguments=item.arguments,
    )
    return assemble(provider, request, pack.fields, currency=request.currency)
