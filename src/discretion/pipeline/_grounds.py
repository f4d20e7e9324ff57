"""Which ground failed: the explanation of a rule that does not apply, part by part.

A standard rule or a reason applies only if its `when` holds and the amount is within its
`max_amount`. When no standard rule allows a case, and when the reason an actor cites does not
apply, or none applies, the explanation names, for each such rule, the first part of its `when`
(a `Ground`, split at the top-level `&&` at load) that does not hold and the facts that part
reads, with their values; or that the amount is above what the rule covers. Limits are never
quoted when the pack keeps them private.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from discretion.money import Money, scaled
from discretion.policy import ActionPolicy, EvaluationError, PolicyPack, Record, RecordList, Rule

__all__ = ["GROUND_RULES", "MAX_REASONS", "NOT_STANDARD", "failed_grounds"]

GROUND_RULES = ("discretion.reason-not-applicable", "discretion.no-permitted-reason")
"""The rules whose generic sentence an explanation of the failed grounds replaces."""

NOT_STANDARD = "discretion.not-standard"
"""No standard rule allows the case: a denial or route names why each does not."""

MAX_REASONS = 5
"""How many reasons an explanation names when none applies; a long pack is summed up."""


def failed_grounds(
    pack: PolicyPack,
    action: ActionPolicy,
    rules: list[str],
    *,
    cited: Rule | None,
    activation: Any,
    amount_minor: int,
    shown: Mapping[str, Any],
) -> list[str]:
    """A sentence per rule that does not apply, for a decision whose `rules` say so.

    The standard rules first, when none allowed (`NOT_STANDARD`); then the reasons.
    """
    reasons: list[Rule] = []
    if cited is not None and "discretion.reason-not-applicable" in rules:
        reasons.append(cited)
    if "discretion.no-permitted-reason" in rules:
        reasons += [r for r in action.exceptions if r is not cited]
    standard = action.standard if NOT_STANDARD in rules else ()
    return [
        *_sentences(pack, standard, "standard rule", activation, amount_minor, shown),
        *_sentences(pack, reasons, "reason", activation, amount_minor, shown),
    ]


def _sentences(
    pack: PolicyPack,
    rules: Sequence[Rule],
    kind: str,
    activation: Any,
    amount_minor: int,
    shown: Mapping[str, Any],
) -> list[str]:
    sentences = [
        sentence
        for rule in rules
        if (sentence := _why_not(pack, rule, kind, activation, amount_minor, shown)) is not None
    ]
    if len(sentences) > MAX_REASONS:
        left = len(sentences) - MAX_REASONS
        sentences = [*sentences[:MAX_REASONS], f"and {left} other {kind}(s) do not apply either"]
    return sentences


def _holds(program: Any, activation: Any) -> bool | None:
    """Whether a condition holds; None when it cannot be evaluated (a fact without a value)."""
    try:
        return bool(program.evaluate(activation))
    except EvaluationError:
        return None


def _why_not(
    pack: PolicyPack,
    reason: Rule,
    kind: str,
    activation: Any,
    amount_minor: int,
    shown: Mapping[str, Any],
) -> str | None:
    # The first ground that does not hold; else the first that cannot be decided (a fact
    # without a value), which `&&` absorbed when another part was false.
    failed = [
        (held, ground)
        for ground in reason.grounds
        if (held := _holds(ground.program, activation)) is not True
    ]
    if failed:
        held, ground = min(failed, key=lambda pair: pair[0] is None)
        if ground.reads_amount and pack.private_limits:
            return f"{kind} {reason.id!r} does not cover this amount"
        facts = ", ".join(_fact(name, shown) for name in ground.reads)
        verdict = "does not hold" if held is False else "cannot be decided"
        return f"{kind} {reason.id!r} does not apply: {ground.source} {verdict}" + (
            f" ({facts})" if facts else ""
        )
    if reason.max_amount is None:
        return None  # it applies: nothing failed
    try:
        bound = int(reason.max_amount.evaluate(activation))
    except EvaluationError:
        return f"{kind} {reason.id!r}: what it can cover cannot be decided"
    if amount_minor <= bound:
        return None
    if pack.private_limits:
        return f"{kind} {reason.id!r} does not cover this amount"
    return f"{kind} {reason.id!r} covers at most {pack.money(max(bound, 0))}"


def _fact(name: str, shown: Mapping[str, Any]) -> str:
    value = shown.get(name)
    if value is None:
        return f"{name} has no value"
    return f"{name} is {_value(value)}"


def _value(value: Any) -> str:
    # A record, or a list of them, is named by its type and count, never dumped: it may hold
    # much, and more than the ground read.
    if isinstance(value, Record):
        return f"a {value.type.name} record"
    if isinstance(value, RecordList):
        kind = value[0].type.name if value else "such"
        return f"{len(value)} {kind} record{'s' if len(value) != 1 else ''}"
    if isinstance(value, Money):
        return str(value)
    if isinstance(value, Decimal):
        # The ground compares the scaled int (`>= 25` for 2.5 years): show both.
        return f"{value}, read by the rules as {scaled(value)}"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value).lower() if isinstance(value, bool) else str(value)
