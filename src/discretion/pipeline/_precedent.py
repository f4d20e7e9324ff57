"""Step 6 of the pipeline: cited or found precedent may stand in for the actor's authority.

A precedent can only extend the actor's exception authority: the cited reason's preconditions
hold and no hard limit fired, but the actor may not grant this much. Citing a precedent that
does not apply routes (fail closed). The citation itself is taken later, in the decision's
transaction (`take`), so two decisions never take the last one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from discretion.authority import lowest_above
from discretion.context import Snapshot
from discretion.decision import Outcome, PrecedentUse
from discretion.money import Money
from discretion.pipeline._normalise import Normalised
from discretion.pipeline._state import Evaluation
from discretion.policy import PolicyPack, PrecedentPolicy
from discretion.precedent import Failure, Precedent, Precedents, check
from discretion.store import SqlTransaction

__all__ = ["apply_precedent", "take_precedent"]

EXTENDS = "discretion.exception-authority"
"""The rule a precedent may stand in for."""


def apply_precedent(
    pack: PolicyPack,
    precedents: Precedents,
    item: Normalised,
    snapshot: Snapshot,
    evaluation: Evaluation,
    now: datetime,
    *,
    prior_minor: int = 0,
) -> Evaluation:
    """The evaluation with the actor's cited precedents checked, and one applied if it can.

    `prior_minor` is what the actor already moved on the same record when the action measures
    authority on the whole (`cumulative`): a precedent's bounds, its grantor's limit and the
    reason's `grants_up_to` cap are measured on that whole, as authority was, so a split never
    takes piece by piece under a precedent more than the whole could.
    """
    cited = item.proposal.rationale.precedents
    extendable = (
        evaluation.outcome is Outcome.ROUTE
        and EXTENDS in evaluation.rules
        and evaluation.reason is not None
        and item.amount is not None
        # A review that holds wants a person to decide: no precedent stands in for them.
        and not any(rule.kind == "review" for rule in evaluation.deciding)
        # A precedent extends how much an actor may grant, never which reasons: a reason
        # its role may not grant (`granted_by`, the role's `reasons`) stays with a person.
        and item.role.admitted(item.action_name, evaluation.reason)
    )
    if not cited and not extendable:
        return evaluation
    reason_id = item.proposal.rationale.reason
    amount = item.amount or pack.money(0)
    if prior_minor:
        amount = Money.from_minor(amount.minor + prior_minor, amount.currency)
    in_base = _in_base(pack, amount)
    options = _options(pack, item.action_name, reason_id)
    known = precedents.load(cited)
    if extendable and reason_id is not None and not options.cited_only:
        for found in precedents.find(
            action=item.action_name,
            reason=reason_id,
            snapshot=snapshot,
            # Bounds set aside: a precedent below the amount may still cover it. A bound in the
            # base is read against the amount there.
            amount=(
                pack.money(0)
                if options.grants_up_to == "grantor_exception_limit" or in_base is not None
                else amount
            ),
            now=now,
        ):
            known.setdefault(found.id, found)
    considered = list(dict.fromkeys([*cited, *known]))
    failed: dict[str, list[Failure]] = {
        pid: [Failure("discretion.precedent.unknown", f"precedent {pid}: not on record")]
        for pid in cited
        if pid not in known
    }
    for pid, precedent in known.items():
        failures = _capped(
            pack,
            options,
            item,
            amount,
            precedent,
            check(
                _grantor_limit_now(pack, item.action_name, reason_id, precedent),
                action=item.action_name,
                reason=reason_id,
                facts=snapshot.values,
                amount=amount,
                now=now,
                in_base=in_base,
            ),
        )
        if failures:
            failed[pid] = failures
    applicable = [pid for pid in considered if pid not in failed]
    use = PrecedentUse(
        cited=list(cited),
        considered=considered,
        applicable=applicable,
        failed={pid: sorted({f.rule for f in fs}) for pid, fs in failed.items()},
    )
    bad_citations = [pid for pid in cited if pid in failed]
    if bad_citations:
        # Citing a precedent that does not apply routes: a person decides (fail closed).
        rules = sorted({f.rule for pid in bad_citations for f in failed[pid]})
        causes = [f.detail for pid in bad_citations for f in failed[pid]]
        changes: dict[str, Any] = {
            "rules": [*evaluation.rules, "discretion.precedent.cited-not-applicable", *rules],
            "causes": [*evaluation.causes, *causes],
            "precedents": use,
        }
        if evaluation.outcome is Outcome.DENY:
            return replace(evaluation, **changes)
        return replace(
            evaluation,
            outcome=Outcome.ROUTE,
            # The lowest person who could decide it without the precedent cited.
            required_role=evaluation.required_role
            or lowest_above(pack, item.action_name, item.role, evaluation.reason, amount.minor),
            **changes,
        )
    if not extendable or not applicable:
        return replace(evaluation, precedents=use)
    # The actor's citations first, then the found precedent that expires soonest.
    ordered = [pid for pid in cited if pid in applicable] + sorted(
        (pid for pid in applicable if pid not in cited),
        key=lambda pid: (known[pid].expires_at, pid),
    )
    chosen = known[ordered[0]]
    return replace(
        evaluation,
        outcome=Outcome.ALLOW_EXCEPTION,
        rules=[*(r for r in evaluation.rules if r != EXTENDS), "discretion.precedent.applied"],
        required_role=None,
        precedents=use.model_copy(update={"applied": chosen.id}),
        notes=[
            *evaluation.notes,
            f"precedent {chosen.id}, set by a {chosen.grantor_role}, covers this case",
        ],
        fallback=replace(evaluation, precedents=use),
    )


_DEFAULT = PrecedentPolicy(
    scope=(), max_expiry=timedelta(0), max_citations=None, ratio_of=None, set_by=None
)
"""The options of a reason whose pack says nothing: found precedents count, bounds cap."""


def _options(pack: PolicyPack, action: str, reason_id: str | None) -> PrecedentPolicy:
    """The precedent options of the cited reason: which precedents count, what caps them."""
    policy = pack.actions.get(action)
    reason = policy.reason(reason_id) if policy is not None and reason_id is not None else None
    if reason is None or reason.precedent is None:
        return _DEFAULT
    return reason.precedent


def _in_base(pack: PolicyPack, amount: Money) -> Money | None:
    """`amount` in the base of a pack with rates, rounded up; None in the base, or without."""
    if pack.rates is None or amount.currency == pack.rates.base:
        return None
    return pack.in_base(amount.minor)


def _grantor_limit_now(
    pack: PolicyPack, action: str, reason_id: str | None, precedent: Precedent
) -> Precedent:
    """`precedent`, its grantor's limit lowered to what the grantor's role may grant now.

    The limit recorded with it is its grantor's when it was set; a pack that since lowered the
    role's exception authority, took the reason from it or dropped the role must not have the
    precedent grant more than its grantor could today (`discretion.precedent.grantor-authority`).
    """
    role = pack.role(precedent.grantor_role)
    policy = pack.actions.get(action)
    reason = policy.reason(reason_id) if policy is not None and reason_id is not None else None
    authority = role.authority.get(action) if role is not None else None
    admitted = role is not None and reason is not None and role.admitted(action, reason)
    now = authority.exception_minor if authority is not None and admitted else 0
    limit = precedent.grantor_limit
    if limit.currency != pack.currency:
        # Set in the base of a pack with rates: today's limit, in the case's currency, counts
        # in the base at the case's rate (rounded down); in another currency it is not measured
        # at all (`check` fails it).
        today = pack.in_base(now, up=False)
        if today is None or today.currency != limit.currency or today.minor >= limit.minor:
            return precedent
        return precedent.model_copy(update={"grantor_limit": today})
    if now >= limit.minor:
        return precedent
    lowered = Money.from_minor(now, limit.currency)
    return precedent.model_copy(update={"grantor_limit": lowered})


def _capped(
    pack: PolicyPack,
    options: PrecedentPolicy,
    item: Normalised,
    amount: Money,
    precedent: Precedent,
    failures: list[Failure],
) -> list[Failure]:
    """The precedent's failures under the reason's `grants_up_to`."""
    match options.grants_up_to:
        case "grantor_exception_limit":
            bound = precedent.max_amount
            if bound is not None and bound.currency != amount.currency:
                return failures  # bounds in another currency are never set aside
            # Its own bounds set aside; its grantor's exception limit (always checked) caps it.
            return [f for f in failures if f.rule != "discretion.precedent.bounds"]
        case "actor_standard_limit":
            authority = item.role.authority.get(item.action_name)
            limit = authority.standard_minor if authority is not None else 0
            if amount.minor > limit:
                shown = "its" if pack.private_limits else f"its {pack.money(limit)}"
                failures = [
                    *failures,
                    Failure(
                        "discretion.precedent.actor-standard-limit",
                        f"precedent {precedent.id}: lets a {item.role.id} grant no more than"
                        f" {shown} standard limit",
                    ),
                ]
    return failures


def take_precedent(
    precedents: Precedents, tx: SqlTransaction, evaluation: Evaluation, now: datetime
) -> Evaluation:
    """Take the applied precedent's citation in the decision's transaction.

    When another decision took its last citation first, what stands without it.
    """
    applied = evaluation.precedents.applied if evaluation.precedents else None
    if applied is None or precedents.consume(tx, applied, now=now):
        return evaluation
    fallback = evaluation.fallback or evaluation
    use = fallback.precedents or PrecedentUse()
    return replace(
        fallback,
        precedents=use.model_copy(
            update={
                "applicable": [p for p in use.applicable if p != applied],
                "failed": {**use.failed, applied: ["discretion.precedent.exhausted"]},
            }
        ),
        causes=[*fallback.causes, f"precedent {applied}: its last citation was just taken"],
    )
