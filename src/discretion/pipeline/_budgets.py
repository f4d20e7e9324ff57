"""Step 8 of the pipeline: budgets, checked and reserved inside the decision's transaction."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from discretion.budget import BudgetCheck, check_budgets
from discretion.decision import Outcome
from discretion.pipeline._normalise import Normalised
from discretion.pipeline._state import Evaluation
from discretion.policy import Budget, PolicyPack
from discretion.store import StoreTransaction

__all__ = ["BudgetCheck", "over_budget", "reserve"]


def reserve(
    pack: PolicyPack, tx: StoreTransaction, item: Normalised, outcome: Outcome, now: Any
) -> BudgetCheck:
    """What the budgets say about `item` decided as `outcome`, read under their locks."""
    return check_budgets(
        pack,
        tx,
        action=item.action_name,
        outcome=outcome,
        amount_minor=item.amount.minor if item.amount is not None else 0,
        now=now,
        customer_id=item.customer_id,
        actor_id=item.proposal.actor.id,
        case_id=item.case_id,
    )


def over_budget(
    pack: PolicyPack,
    evaluation: Evaluation,
    exceeded: tuple[Budget, ...],
    causes: tuple[str, ...],
) -> Evaluation:
    """The evaluation once a budget it counts against is found spent: route, or deny."""
    changes: dict[str, Any] = {
        "rules": [*evaluation.rules, *(b.id for b in exceeded)],
        "causes": [*evaluation.causes, *causes, *(b.message for b in exceeded if b.message)],
        "notes": [*evaluation.notes, "a budget for this kind of exposure is used up"],
        # A precedent only counts as used when the exception it justified stands.
        "precedents": evaluation.precedents.model_copy(update={"applied": None})
        if evaluation.precedents is not None
        else None,
    }
    if any(b.on_exceed == "deny" for b in exceeded):
        return replace(evaluation, outcome=Outcome.DENY, required_role=None, **changes)
    targets = [pack.role(b.route_to) or pack.highest_human for b in exceeded]
    if evaluation.required_role is not None:
        targets.append(evaluation.required_role)
    required = max(targets, key=lambda r: r.rank)
    return replace(evaluation, outcome=Outcome.ROUTE, required_role=required, **changes)
