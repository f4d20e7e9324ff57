"""Budgets: caps on exposure over a rolling window, reserved atomically with the decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from discretion.decision import Outcome, Reservation
from discretion.policy.pack import Budget, PolicyPack

if TYPE_CHECKING:
    from discretion.store import SqlTransaction

__all__ = ["BudgetCheck", "budget_key", "check_budgets"]


def budget_key(
    budget: Budget, *, customer_id: str | None, actor_id: str, case_id: str | None
) -> str | None:
    """The key a decision counts under for `budget`, or None when the proposal lacks it."""
    match budget.key:
        case "customer":
            return customer_id
        case "actor":
            return actor_id
        case "case":
            return case_id
        case _:
            return "*"


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetCheck:
    """What the budgets say about one decision."""

    exceeded: tuple[Budget, ...]
    """Budgets the amount would push over their limit (or that cannot be keyed)."""
    reservations: tuple[Reservation, ...]
    """What to reserve if the outcome stands."""
    causes: tuple[str, ...]


def check_budgets(
    pack: PolicyPack,
    reader: SqlTransaction,
    *,
    action: str,
    outcome: Outcome,
    amount_minor: int,
    now: datetime,
    customer_id: str | None,
    actor_id: str,
    case_id: str | None,
) -> BudgetCheck:
    """Check every budget counting `outcome` on `action`; must run inside the write transaction.

    A window is `(now - window, now]`: a reservation exactly one window old no longer counts.
    """
    exceeded: list[Budget] = []
    reserve: list[Reservation] = []
    causes: list[str] = []
    for budget in pack.budgets:
        if not budget.applies(action, outcome.value):
            continue
        key = budget_key(budget, customer_id=customer_id, actor_id=actor_id, case_id=case_id)
        if key is None:
            exceeded.append(budget)
            causes.append(f"budget {budget.id!r} is keyed by {budget.key} but none was given")
            continue
        used = reader.budget_used(budget.id, key, now - budget.window)
        if used + amount_minor > budget.limit_minor:
            exceeded.append(budget)
            continue
        reserve.append(Reservation(budget=budget.id, key=key, amount=pack.money(amount_minor)))
    return BudgetCheck(exceeded=tuple(exceeded), reservations=tuple(reserve), causes=tuple(causes))
