"""Explanations written for the agent: what happened and what to tell the customer.

They never quote a limit when the pack keeps limits private, and never echo the actor's own
rationale text back as if it were policy.
"""

from __future__ import annotations

from discretion.decision import Outcome
from discretion.money import Money
from discretion.policy import SYSTEM_RULES, Rule

__all__ = ["explain"]

_TELL = {
    Outcome.ALLOW: "You may proceed and confirm it to the customer.",
    Outcome.ALLOW_EXCEPTION: "You may proceed and confirm it to the customer as a one-time"
    " exception; do not promise it again.",
    Outcome.ROUTE: "Do not run the action and make no promise: tell the customer a specialist"
    " is reviewing the request.",
    Outcome.DENY: "Do not run the action: tell the customer it cannot be done, and do not"
    " suggest another way around the policy.",
}


# Said in full by the failed grounds when the decision names them.
_GROUNDED = frozenset({"discretion.reason-not-applicable", "discretion.no-permitted-reason"})


def _because(
    rule_ids: list[str], deciding: list[Rule], extra: list[str], grounds: list[str]
) -> str:
    parts: list[str] = []
    for rule in deciding:
        parts.append(rule.message or rule.description or rule.id)
    # No reason holds: citing one would not help, so the agent is not told to.
    hopeless = "discretion.no-permitted-reason" in rule_ids
    # A reason its role may not grant at all: the amount its authority covers is beside it.
    not_its_own = "discretion.exception-role" in rule_ids
    for rule_id in rule_ids:
        if rule_id in SYSTEM_RULES and rule_id != "discretion.not-standard":
            if grounds and rule_id in _GROUNDED:
                continue
            if hopeless and rule_id == "discretion.reason-not-cited":
                continue
            if not_its_own and rule_id == "discretion.exception-authority":
                continue
            parts.append(SYSTEM_RULES[rule_id])
    parts.extend(grounds)
    parts.extend(extra)
    seen: list[str] = []
    for part in parts:
        if part and part not in seen:
            seen.append(part)
    return "; ".join(seen)


def explain(
    *,
    outcome: Outcome,
    action: str,
    amount: Money | None,
    rules: list[str],
    deciding: list[Rule],
    required_role: str | None,
    extra: list[str] | None = None,
    grounds: list[str] | None = None,
) -> str:
    """Write the explanation for a decision.

    `grounds`: for each reason that does not apply, the ground that failed; they stand in for
    the generic "the cited reason's preconditions do not hold" and "no permitted reason".
    """
    what = f"{action} of {amount}" if amount is not None else action
    because = _because(rules, deciding, extra or [], grounds or [])
    match outcome:
        case Outcome.ALLOW if rules == ["discretion.ungoverned-tool"]:
            return f"Approved: {what} is a read-only tool the policy lets run without a decision."
        case Outcome.ALLOW:
            head = f"Approved: {what} is within standard policy"
        case Outcome.ALLOW_EXCEPTION:
            head = f"Approved as an exception: {what}"
        case Outcome.ROUTE:
            head = f"Needs approval by {required_role}: {what}"
        case Outcome.DENY:
            head = f"Not permitted: {what}"
    text = f"{head} ({because})." if because else f"{head}."
    return f"{text} {_TELL[outcome]}"
