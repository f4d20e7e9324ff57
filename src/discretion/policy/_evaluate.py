"""Evaluate a pack against a proposal and its facts.

Standard policy, hard limits, exception reasons and authority. Pure: no I/O, no clock of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from discretion.authority import (
    covers_exception,
    covers_standard,
    lowest_covering,
    lowest_exception_role,
    lowest_standard_role,
)
from discretion.decision import JudgeRecord, Outcome, PrecedentUse
from discretion.policy._cel import CelProgram, EvaluationError
from discretion.policy.pack import ActionPolicy, PolicyPack, Role, Rule

__all__ = ["SYSTEM_RULES", "Evaluation", "evaluate"]

SYSTEM_RULES = {
    "discretion.unknown-action": "the tool or action is not governed by the pack",
    "discretion.context-unavailable": "a fact the policy needs could not be assembled",
    "discretion.evaluation-error": "a policy expression could not be evaluated",
    "discretion.standard-authority": "inside standard policy but above the actor's standard limit",
    "discretion.not-standard": "outside standard policy: an exception is needed",
    "discretion.reason-unknown": "the rationale cites a reason the pack does not define",
    "discretion.reason-not-applicable": "the cited reason's preconditions do not hold",
    "discretion.reason-not-cited": "an exception needs the rationale to cite a reason",
    "discretion.exception-authority": "the actor's exception authority does not cover it",
    "discretion.no-permitted-reason": "no permitted exception reason applies",
    "discretion.no-role-can-grant": "no role on the ladder has enough authority",
    "discretion.claim.grounded": "a claim in the rationale agrees with the case facts",
    "discretion.claim.contradicts-fact": "a claim in the rationale contradicts the case facts",
    "discretion.claim.unknown-fact": "a claim in the rationale names a fact the case does not hold",
    "discretion.claim.evidence-missing": "the rationale lacks a claim the reason requires",
    "discretion.judge.text-too-short": "the rationale text is shorter than the reason requires",
    "discretion.judge.text-missing-detail": "the rationale text lacks a detail the reason requires",
    "discretion.judge.not-justified": "the rationale judge found it does not support the exception",
    "discretion.judge.failed": "the rationale judge could not give a verdict",
    "discretion.judge.timeout": "the rationale judge did not answer in time",
    "discretion.judge.budget-spent": "the rationale judge's daily call budget is spent",
    "discretion.judge.unavailable": "the pack asks for a rationale judge but none is configured",
}
"""The rule ids discretion itself fires, with what each means."""


@dataclass(slots=True, kw_only=True)
class Evaluation:
    """The deterministic verdict before budgets and the judge."""

    outcome: Outcome
    rules: list[str]
    reason: Rule | None = None
    required_role: Role | None = None
    deciding: list[Rule] = field(default_factory=list)
    """The pack rules whose messages explain the outcome."""
    causes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Extra sentences for the explanation, such as a spent budget."""
    precedents: PrecedentUse | None = None
    """The precedents cited, considered and applied."""
    fallback: Evaluation | None = None
    """What stands if the applied precedent's last citation is taken first by another decision."""
    judge: JudgeRecord | None = None
    """What the rationale judges found when they reviewed an allowed exception."""


def _check(program: CelProgram, activation: Any) -> Any:
    return program.evaluate(activation)


def _within(rule: Rule, activation: Any, amount_minor: int) -> bool:
    if not _check(rule.when, activation):
        return False
    return rule.max_amount is None or amount_minor <= _check(rule.max_amount, activation)


def evaluate(
    pack: PolicyPack,
    action: ActionPolicy,
    *,
    role: Role,
    actor_is_ai: bool,
    amount_minor: int,
    cited_reason: str | None,
    facts: dict[str, Any],
    now: datetime,
) -> Evaluation:
    """Decide allow, allow_exception, route or deny from code alone.

    A fact an expression needs but the context lacks, or any other evaluation error, routes
    (invariant 1): it never allows and never silently skips a hard limit.
    """
    data = {
        **facts,
        "amount": amount_minor,
        "now": now,
        "actor.role": role.id,
        "actor.is_ai": actor_is_ai,
    }
    activation = action.env.Activation(data)
    try:
        return _evaluate(pack, action, role, amount_minor, cited_reason, activation)
    except EvaluationError as exc:
        return Evaluation(
            outcome=Outcome.ROUTE,
            rules=["discretion.evaluation-error"],
            required_role=lowest_covering(pack, action.name, amount_minor),
            causes=[f"evaluation error: {exc}"],
        )


def _evaluate(
    pack: PolicyPack,
    action: ActionPolicy,
    role: Role,
    amount_minor: int,
    cited_reason: str | None,
    activation: Any,
) -> Evaluation:
    name = action.name
    fired = [rule for rule in action.hard_limits if _check(rule.when, activation)]
    if fired:
        return Evaluation(outcome=Outcome.DENY, rules=[r.id for r in fired], deciding=fired)

    standard = next((r for r in action.standard if _within(r, activation, amount_minor)), None)
    if standard is not None:
        if covers_standard(role, name, amount_minor):
            return Evaluation(outcome=Outcome.ALLOW, rules=[standard.id], deciding=[standard])
        target = lowest_standard_role(pack, name, amount_minor)
        rules = [standard.id, "discretion.standard-authority"]
        if target is None:
            return Evaluation(
                outcome=Outcome.DENY,
                rules=[*rules, "discretion.no-role-can-grant"],
                deciding=[standard],
            )
        return Evaluation(
            outcome=Outcome.ROUTE, rules=rules, required_role=target, deciding=[standard]
        )

    rules = ["discretion.not-standard"]
    applicable = [r for r in action.exceptions if _within(r, activation, amount_minor)]
    cited = action.reason(cited_reason) if cited_reason is not None else None
    if cited_reason is None:
        rules.append("discretion.reason-not-cited")
    elif cited is None:
        rules.append("discretion.reason-unknown")
    elif cited not in applicable:
        rules += ["discretion.reason-not-applicable", cited.id]
    elif covers_exception(role, name, cited, amount_minor):
        return Evaluation(
            outcome=Outcome.ALLOW_EXCEPTION,
            rules=[*rules, cited.id],
            reason=cited,
            deciding=[cited],
        )
    else:
        rules += [cited.id, "discretion.exception-authority"]

    if not applicable:
        return Evaluation(outcome=Outcome.DENY, rules=[*rules, "discretion.no-permitted-reason"])
    # Prefer the reason the actor cited when it applies; otherwise any applicable reason.
    ordered = sorted(applicable, key=lambda r: r is not cited)
    found = lowest_exception_role(pack, name, ordered, amount_minor)
    if found is None:
        return Evaluation(outcome=Outcome.DENY, rules=[*rules, "discretion.no-role-can-grant"])
    target, reason = found
    if reason.id not in rules:
        rules.append(reason.id)
    return Evaluation(
        outcome=Outcome.ROUTE, rules=rules, reason=reason, required_role=target, deciding=[reason]
    )
