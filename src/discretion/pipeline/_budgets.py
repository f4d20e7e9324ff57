"""Step 8 of the pipeline: budgets, checked and reserved inside the decision's transaction.

A window is `(now - window, now]`: a reservation exactly one window old no longer counts. A
budget keyed by a record (customer, order, case) counts under the record as resolved from its
own (see `_assemble`), never an id the agent typed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from fractions import Fraction
from typing import Any

from discretion.authority import one_to_decide, rungs_above
from discretion.decision import Outcome, Reservation
from discretion.lineage import canonical_json
from discretion.money import Money
from discretion.pipeline._assemble import Resolved
from discretion.pipeline._evaluate import lowest_to_allow
from discretion.pipeline._ledger import kept_under, key_text
from discretion.pipeline._state import Evaluation
from discretion.policy import ARGS_PREFIX, NEXT_ABOVE, Budget, PolicyPack, Role
from discretion.store import SqlTransaction

__all__ = [
    "BudgetCheck",
    "BudgetKeys",
    "approved_as",
    "beyond_approval",
    "budget_key",
    "check_budgets",
    "over_budget",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetKeys:
    """What a decision counts under: its records, and who proposed it under which role."""

    resolved: Resolved
    actor_id: str
    role: Role
    """The proposing actor's role: per-role limits and `route_to: next_above` read it."""
    facts: Mapping[str, Any] = field(default_factory=dict)
    """The decision's facts, for budgets kept per a fact's value (`key: incident.id`)."""
    args: Mapping[str, Any] = field(default_factory=dict)
    """The call's declared arguments, for budgets kept per one (`key: [order, args.sku]`)."""


_MAX_KEY = 200
"""The longest key a reservation stores as it is; a longer one is stored as its hash."""


def _value(part: str, keys: BudgetKeys) -> str | None:
    match part:
        case "customer" | "order" | "case" | "actor" | "organisation":
            return kept_under(part, keys.actor_id, keys.resolved)
        case _:
            # A fact's or an argument's value, as given; none when it has no value.
            if part.startswith(ARGS_PREFIX):
                return key_text(keys.args.get(part.removeprefix(ARGS_PREFIX)))
            return key_text(keys.facts.get(part))


def budget_key(budget: Budget, keys: BudgetKeys) -> str | None:
    """The key a decision counts under for `budget`, or None when the proposal lacks a part.

    A budget of one part is kept under its value; of several, under the JSON list of their
    values (no two combinations share one). A key longer than a reservation stores is kept
    under its hash.
    """
    if len(budget.parts) == 1:
        key = _value(budget.parts[0], keys)
    else:
        values = [_value(part, keys) for part in budget.parts]
        key = None if None in values else canonical_json(values)
    if key is None or len(key) <= _MAX_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetCheck:
    """What the budgets say about one decision."""

    exceeded: tuple[Budget, ...]
    """Budgets the amount would push over their limit (or that cannot be keyed)."""
    reservations: tuple[Reservation, ...]
    """What to reserve if the outcome stands."""
    causes: tuple[str, ...]
    amount_minor: int = 0
    """The amount checked, in the proposal's minor units."""
    charged: Mapping[str, Money] = field(default_factory=dict)
    """What the decision counts as against each budget it counts under (in the base, for a
    budget of a pack with rates kept across currencies), by budget id."""
    unkeyable: frozenset[str] = frozenset()
    """Budgets kept per an argument the call leaves out: never countable for it, whoever
    approves it (unlike a fact, which may be on record later)."""


def _charge(pack: PolicyPack, budget: Budget, amount_minor: int) -> Money | None:
    """What `amount_minor` counts as against `budget`; None when it cannot be known.

    In the base, rounded up, for a budget kept across the currencies of a pack with rates
    (None when the proposal's rate is not known); else the amount as it is.
    """
    if pack.rates is None or not budget.together or len(pack.accepts) == 1:
        return pack.money(amount_minor)
    return pack.in_base(amount_minor)


def _over(
    pack: PolicyPack,
    tx: SqlTransaction,
    index: int,
    key: str,
    charge: Money,
    role: str,
    since: datetime,
) -> bool:
    """Whether `charge` would take the budget at `index` (under `key`) over its limit."""
    budget = pack.budgets[index]
    if len(pack.accepts) == 1:
        used = tx.budget_used(budget.id, key, since)
        return used + charge.minor > budget.limit_for(role)
    if not budget.together:
        # A cap per currency (`pack` is the view in the proposal's): never added.
        used = tx.budget_used(budget.id, key, since, currency=pack.currency)
        return used + charge.minor > budget.limit_for(role)
    if pack.rates is not None:
        # Kept in the base, against the base's limit.
        base = pack.base or pack
        limit = base.budgets[index].limit_for(role)
        used = tx.budget_used(budget.id, key, since, currency=charge.currency)
        for code in pack.accepts:
            if code == charge.currency:
                continue
            # Reserved in another currency before the budget was kept in the base (or while it
            # was kept per currency): in the proposal's, counted at today's rate rounded up; in
            # a third, whose rate is not known here, it cannot be measured (fail closed).
            earlier = tx.budget_used(budget.id, key, since, currency=code)
            if not earlier:
                continue
            converted = pack.in_base(earlier) if code == pack.currency else None
            if converted is None:
                return True
            used += converted.minor
        return used + charge.minor > limit
    # Amounts stated per currency: what each currency spent counts as its share of that
    # currency's limit, and the shares must stay within one whole.
    share = Fraction(0)
    for code in pack.accepts:
        limit = pack.views[code].budgets[index].limit_for(role)
        used = tx.budget_used(budget.id, key, since, currency=code)
        if code == charge.currency:
            used += charge.minor
        if used and not limit:
            return True
        if used:
            share += Fraction(used, limit)
    return share > 1


def check_budgets(
    pack: PolicyPack,
    tx: SqlTransaction,
    *,
    action: str,
    outcome: Outcome,
    amount_minor: int,
    now: datetime,
    keys: BudgetKeys,
) -> BudgetCheck:
    """Check every budget counting `outcome` on `action`; must run inside the write transaction.

    `pack` is the view in the proposal's currency. In a pack of several currencies a budget is
    one cap across them (`together`) or one per currency (`each`); see `_over`.
    """
    exceeded: list[Budget] = []
    reserve: list[Reservation] = []
    causes: list[str] = []
    charged: dict[str, Money] = {}
    unkeyable: set[str] = set()
    if action not in pack.actions:
        # A call the pack governs as no action (an unknown or a read-only tool) moves nothing
        # a budget counts.
        return BudgetCheck(exceeded=(), reservations=(), causes=())
    for index, budget in enumerate(pack.budgets):
        if not budget.applies(action, outcome.value, keys.role.id):
            continue
        key = budget_key(budget, keys)
        if key is None:
            exceeded.append(budget)
            causes.append(f"budget {budget.id!r} is kept per {budget.key}, which has no value")
            if any(
                part.startswith(ARGS_PREFIX) and _value(part, keys) is None for part in budget.parts
            ):
                unkeyable.add(budget.id)
            continue
        charge = _charge(pack, budget, amount_minor)
        if charge is None:
            exceeded.append(budget)
            base = pack.rates.base if pack.rates is not None else pack.currency
            causes.append(
                f"budget {budget.id!r} is kept in {base}, and no rate for {pack.currency} is known"
            )
            continue
        since = budget.since_in(now, keys.facts)
        if since is None:
            exceeded.append(budget)
            causes.append(
                f"budget {budget.id!r} counts a calendar period in the time zone"
                f" {budget.zone_fact} names, which is not a time zone here"
            )
            continue
        charged[budget.id] = charge
        if keys.role.id not in budget.exempt and _over(
            pack, tx, index, key, charge, keys.role.id, since
        ):
            exceeded.append(budget)
            continue
        reserve.append(Reservation(budget=budget.id, key=key, amount=charge))
    return BudgetCheck(
        exceeded=tuple(exceeded),
        reservations=tuple(reserve),
        causes=tuple(causes),
        amount_minor=amount_minor,
        charged=charged,
        unkeyable=frozenset(unkeyable),
    )


def route_target(pack: PolicyPack, budget: Budget, actor: Role, action: str) -> Role:
    """The role a case of `action` that would exceed `budget` goes to."""
    if budget.route_to == NEXT_ABOVE:
        # The next person up who holds authority over the action (one who holds none, a
        # compliance officer beside a refund ladder, could not approve it).
        above = (r for r in rungs_above(pack, actor) if action in r.authority)
        return next(above, pack.top_for(action))
    found = pack.role(budget.route_to) if budget.route_to is not None else None
    return found or pack.top_for(action)


def over_budget(
    pack: PolicyPack,
    evaluation: Evaluation,
    check: BudgetCheck,
    actor: Role,
    action: str,
) -> Evaluation:
    """The evaluation once a budget of `action` it counts against is spent: route, or deny.

    It routes to the budget's `route_to`, or to whom the case needs when higher: the role it
    was routed to, or the lowest that could have allowed it on its own authority. A precedent
    that allowed it stands only with the allow: without it, what it would have been stands.
    """
    if evaluation.fallback is not None and evaluation.outcome is not Outcome.ROUTE:
        evaluation = evaluation.fallback
    exceeded = check.exceeded
    # Measured and over. One that could not be measured (no fact, rate or zone to count it
    # under) is not known to be spent: it routes, and its approval measures it anew. One kept
    # per an argument the call leaves out can never count it: as good as spent.
    measured = [b for b in exceeded if b.id in check.charged]
    spent = measured + [b for b in exceeded if b.id in check.unkeyable]
    if measured:
        note = "a budget for this kind of exposure is used up"
    elif spent:
        note = "a budget for this kind of exposure is kept per an argument the call leaves out"
    else:
        note = "a budget for this kind of exposure cannot be measured"
    changes: dict[str, Any] = {
        "rules": [*evaluation.rules, *(b.id for b in exceeded)],
        "causes": [
            *evaluation.causes,
            *check.causes,
            *(b.message for b in measured if b.message),
        ],
        "notes": [*evaluation.notes, note],
        "precedents": evaluation.unapplied(),
    }
    if any(b.on_exceed == "deny" for b in spent):
        return replace(evaluation, outcome=Outcome.DENY, required_role=None, **changes)
    # Beyond a deny budget no one may go: an unmeasured one names no role to go to.
    targets = [route_target(pack, b, actor, action) for b in exceeded if b.on_exceed != "deny"]
    if evaluation.under_only_review and evaluation.required_role is not None:
        # A review only its role decides: nobody else is the review, so the case stays with
        # it; if the budget needs another, no one person can approve it.
        reviewer = evaluation.required_role
        beyond = sorted(
            {
                f"{t.id!r} or above" if t.on_ladder else repr(t.id)
                for t in targets
                if not reviewer.decides_for(t)
            }
        )
        if beyond:
            changes["causes"] = [
                *changes["causes"],
                f"only {reviewer.id!r} decides it, and only {' or '.join(beyond)} may approve"
                " beyond the budget: no one person can approve it",
            ]
        return replace(evaluation, outcome=Outcome.ROUTE, required_role=reviewer, **changes)
    if evaluation.required_role is not None:
        targets.append(evaluation.required_role)
    elif evaluation.outcome is not Outcome.ROUTE:
        ledger = evaluation.ledger
        whole = check.amount_minor + (ledger.prior_minor if ledger is not None else 0)
        targets.append(lowest_to_allow(pack, pack.actions[action], evaluation, whole))
    required, unmet = one_to_decide(targets or [pack.top_for(action)])
    if unmet:
        # A team beside the ladder goes beyond its budget alone, and a rung is needed too.
        changes["causes"] = [
            *changes["causes"],
            f"{required.id!r} decides it, and the case also needs"
            f" {' and '.join(sorted(r.id for r in unmet))}: no one person can approve it",
        ]
    return replace(evaluation, outcome=Outcome.ROUTE, required_role=required, **changes)


_UNMEASURED = frozenset(
    {
        "discretion.context-unavailable",
        "discretion.evaluation-error",
        "discretion.currency-rate",
        "discretion.currency-mismatch",
        "discretion.cumulative-unkeyed",
        "discretion.entity.unknown",
        "discretion.entity.mismatch",
        "discretion.entity.unlinked",
    }
)
"""Routes of a case whose facts, records or price are not known as its approval will read
them: the budgets measured now say nothing of that approval, which measures them anew."""


def approved_as(exception: bool, otherwise: Outcome = Outcome.ALLOW) -> Outcome:
    """The outcome budgets charge a routed case's approval as.

    A case routed as an exception is approved as one, whatever the approver's own rules would
    call it (one reading `actor.is_ai` may allow a person inside standard policy); otherwise,
    `otherwise` (what its approver's re-check found).
    """
    return Outcome.ALLOW_EXCEPTION if exception else otherwise


def beyond_approval(
    pack: PolicyPack,
    evaluation: Evaluation,
    measure: Callable[[Outcome, int | None], BudgetCheck],
    actor: Role,
    action: str,
) -> Evaluation:
    """A routed case, sent where its approval can be given once budgets are read.

    `measure(outcome, amount_minor)` checks the budgets for an outcome, at the case's amount
    when None. A budget that counts the outcome its approval records, and not a route, is
    charged only when a person approves: one its amount would take over the limit lets only
    its `route_to` role or above approve it as asked (the re-check refuses a lower one). One
    that denies beyond its limit denies it when not even the smallest amount fits (nobody
    could approve any of it); otherwise the route stands, saying so, and its approver may
    grant what still fits.
    """
    if not pack.budgets or _UNMEASURED.intersection(evaluation.rules):
        return evaluation
    outcome = approved_as(evaluation.reason is not None)
    approved = measure(outcome, None)
    # Those that already routed it (it would have been allowed) are read.
    spent = tuple(
        budget
        for budget in _charged_on_approval(approved, action, actor)
        if budget.id not in evaluation.rules
    )
    room = [budget for budget in spent if budget.on_exceed == "deny"]
    if room:
        full = {budget.id for budget in _charged_on_approval(measure(outcome, 1), action, actor)}
        room = [budget for budget in room if budget.id not in full]
        spent = tuple(budget for budget in spent if budget not in room)
        evaluation = replace(
            evaluation,
            rules=[*evaluation.rules, *(budget.id for budget in room)],
            causes=[
                *evaluation.causes,
                *(
                    f"budget {budget.id!r} has room for less than asked: an approval beyond it"
                    " is refused"
                    for budget in room
                ),
            ],
        )
    if not spent:
        return evaluation
    return over_budget(pack, evaluation, replace(approved, exceeded=spent), actor, action)


def _charged_on_approval(check: BudgetCheck, action: str, actor: Role) -> tuple[Budget, ...]:
    """The budgets `check` found over their limit that an approval, not a route, charges.

    Measured ones only: a budget without a key or a rate is read anew by the approval.
    """
    return tuple(
        budget
        for budget in check.exceeded
        if budget.id in check.charged and not budget.applies(action, Outcome.ROUTE.value, actor.id)
    )
