"""A rationale's claims against the facts, on any outcome, as the pack's `claims` asks.

By default only an exception the checks would allow has its claims checked, and a false one
routes it (`_review.py`). An action whose `claims` policy says `check: every_decision` has them
checked on every outcome, so an agent that states a false fact on an in-policy call is caught
too. A contradicted claim routes to the lowest person ranking above the actor, or is denied
(`on_contradiction: deny`); when nobody ranks above the actor, it is denied: there is no one
to send it to. A claim can only lower an outcome (invariant 2): a denial stays denied.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from discretion.authority import lowest_above, rungs_above
from discretion.decision import ClaimCheck, JudgeRecord, Outcome
from discretion.judge._grounded import CONTRADICTS, UNKNOWN, Fault
from discretion.pipeline._state import Evaluation
from discretion.policy import ClaimsPolicy, PolicyPack, Role

__all__ = ["DENY_ON_CONTRADICTION", "NOBODY_ABOVE", "answer_faults", "claim_rule"]

DENY_ON_CONTRADICTION = "discretion.claim.deny-on-contradiction"
NOBODY_ABOVE = "discretion.claim.nobody-above"


def claim_rule(check: ClaimCheck) -> str:
    """The rule id naming the fact a failed claim is about: `<rule>:<field>`."""
    return f"{check.rule}:{check.field}"


def answer_faults(
    pack: PolicyPack,
    policy: ClaimsPolicy,
    evaluation: Evaluation,
    faults: list[Fault],
    record: JudgeRecord,
    *,
    action: str,
    role: Role,
    amount_minor: int,
) -> Evaluation:
    """The evaluation lowered for `faults` (a claims check's, and a reason's evidence).

    Each failed claim adds the generic rule (`discretion.claim.contradicts-fact`) and one naming
    its fact (`discretion.claim.contradicts-fact:shipment.status`); its cause names the claim.
    """
    rules = list(evaluation.rules)
    failed = [check for check in record.claims if check.rule in (CONTRADICTS, UNKNOWN)]
    for rule in [*(fault.rule for fault in faults), *(claim_rule(c) for c in failed)]:
        if rule not in rules:
            rules.append(rule)
    notes = [
        f"the claim {check.field}={check.value!r}"
        + (" contradicts the case facts" if check.rule == CONTRADICTS else " cannot be checked")
        for check in failed
    ]
    contradicted = any(check.rule == CONTRADICTS for check in failed)
    nobody_above = not any(rungs_above(pack, role))
    changes: dict[str, Any] = {
        "judge": record,
        "causes": [*evaluation.causes, *(fault.cause for fault in faults)],
        "notes": [*evaluation.notes, *notes],
        "precedents": evaluation.unapplied(),
        "fallback": None,
    }
    if evaluation.outcome is Outcome.DENY:
        return replace(evaluation, rules=rules, **changes)
    if (contradicted and policy.on_contradiction == "deny") or nobody_above:
        rules.append(NOBODY_ABOVE if nobody_above else DENY_ON_CONTRADICTION)
        return replace(
            evaluation,
            outcome=Outcome.DENY,
            rules=rules,
            reason=None,
            required_role=None,
            **changes,
        )
    current = evaluation.required_role
    if (
        evaluation.outcome is Outcome.ROUTE
        and current is not None
        and (evaluation.under_only_review or not role.decides_for(current))
    ):
        # Where it already goes; a review only its role decides keeps it there, whatever the
        # proposer's rank: nobody else is the review.
        target = current
    else:
        target = lowest_above(pack, action, role, evaluation.reason, amount_minor)
    return replace(evaluation, outcome=Outcome.ROUTE, rules=rules, required_role=target, **changes)
