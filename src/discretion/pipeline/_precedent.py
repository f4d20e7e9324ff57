"""Step 6 of the pipeline: cited or found precedent may stand in for the actor's authority.

A precedent can only extend the actor's exception authority: the cited reason's preconditions
hold and no hard limit fired, but the actor may not grant this much. Citing a precedent that
does not apply routes (fail closed). The citation itself is taken later, in the decision's
transaction (`take`), so two decisions never take the last one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from discretion.authority import lowest_above
from discretion.context import Snapshot
from discretion.decision import Outcome, PrecedentUse
from discretion.pipeline._normalise import Normalised
from discretion.pipeline._state import Evaluation
from discretion.policy import PolicyPack
from discretion.precedent import Failure, Precedents, check
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
) -> Evaluation:
    """The evaluation with the actor's cited precedents checked, and one applied if it can."""
    cited = item.proposal.rationale.precedents
    extendable = (
        evaluation.outcome is Outcome.ROUTE
        and EXTENDS in evaluation.rules
        and evaluation.reason is not None
        and item.amount is not None
    )
    if not cited and not extendable:
        return evaluation
    reason_id = item.proposal.rationale.reason
    amount = item.amount or pack.money(0)
    known = precedents.load(cited)
    if extendable and reason_id is not None:
        for found in precedents.find(
            action=item.action_name,
            reason=reason_id,
            snapshot=snapshot,
            amount=amount,
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
        failures = check(
            precedent,
            action=item.action_name,
            reason=reason_id,
            facts=snapshot.values,
            amount=amount,
            now=now,
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
            or lowest_above(
                pack,
                item.action_name,
                item.role,
                evaluation.reason,
                item.amount.minor if item.amount is not None else 0,
            ),
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
