"""Whether a precedent applies to a case: every condition has its own rule id.

Pure: the caller supplies the precedent, the case's typed facts, its amount and the time.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from discretion.money import Money
from discretion.precedent._model import Precedent

__all__ = ["PRECEDENT_RULES", "Failure", "check", "matches", "ratio_bound"]

PRECEDENT_RULES = {
    "discretion.precedent.unknown": "a cited precedent does not exist",
    "discretion.precedent.action": "the precedent was set for another action",
    "discretion.precedent.reason": "the precedent was set for another exception reason",
    "discretion.precedent.scope": "a scope key does not match the case's facts",
    "discretion.precedent.bounds": "the amount is above the precedent's bounds",
    "discretion.precedent.expired": "the precedent has expired",
    "discretion.precedent.revoked": "the precedent was revoked",
    "discretion.precedent.not-learnable": "the exception was a one-off and cannot be cited",
    "discretion.precedent.exhausted": "the precedent has no citations left",
    "discretion.precedent.grantor-authority": "the grantor's authority did not cover this amount",
    "discretion.precedent.actor-standard-limit": "the pack caps what a precedent lets an actor"
    " grant at the actor's own standard limit, and the amount is above it",
    "discretion.precedent.applied": "a precedent extended the actor's exception authority",
    "discretion.precedent.cited-not-applicable": "a cited precedent does not apply: routed",
}
"""The rule ids precedent checks fire, with what each means."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One applicability condition a precedent failed."""

    rule: str
    """Its rule id."""
    detail: str
    """What failed, for the decision's causes."""


def matches(expected: Any, actual: Any) -> bool:
    """Whether a typed fact satisfies one scope value (an exact value, a member, or a range)."""
    if actual is None:
        return False
    if isinstance(expected, Mapping):
        value: Any = actual.amount if isinstance(actual, Money) else actual
        if isinstance(value, bool) or not isinstance(value, (int, Decimal, datetime)):
            return False
        low: Any = expected.get("min")
        high: Any = expected.get("max")
        try:
            if isinstance(value, datetime):
                low = datetime.fromisoformat(low) if low is not None else None
                high = datetime.fromisoformat(high) if high is not None else None
            else:
                low = Decimal(str(low)) if low is not None else None
                high = Decimal(str(high)) if high is not None else None
            return (low is None or low <= value) and (high is None or value <= high)
        except (TypeError, ValueError, ArithmeticError):
            return False
    if isinstance(actual, tuple):
        return expected in actual
    if isinstance(actual, Money):
        return not isinstance(expected, bool) and Decimal(str(expected)) == actual.amount
    if isinstance(actual, datetime):
        try:
            return isinstance(expected, str) and datetime.fromisoformat(expected) == actual
        except (TypeError, ValueError):  # not a time, or one without its offset: no match
            return False
    # bool is an int: `True` must not match 1, nor 1 match `True`.
    return type(expected) is type(actual) and bool(expected == actual)


def ratio_bound(precedent: Precedent, facts: Mapping[str, Any]) -> Money | None:
    """The amount `max_ratio` allows for a case, rounded down to the currency's minor unit."""
    if precedent.max_ratio is None or precedent.ratio_of is None:
        return None
    base = facts.get(precedent.ratio_of)
    if not isinstance(base, Money):
        return None
    return _share(base.minor, base.currency, precedent.max_ratio)


@functools.lru_cache(maxsize=256)
def _share(minor: int, currency: str, ratio: Decimal) -> Money:
    """`ratio` of `minor` units, rounded down, as Money.

    Pure, so kept: the candidates found for one case mostly share a ratio and the same base,
    and building validated Money was most of the cost of checking them.
    """
    units = (Decimal(minor) * ratio).to_integral_value(rounding=ROUND_FLOOR)
    return Money.from_minor(int(units), currency)


def check(
    precedent: Precedent,
    *,
    action: str,
    reason: str | None,
    facts: Mapping[str, Any],
    amount: Money,
    now: datetime,
    in_base: Money | None = None,
) -> list[Failure]:
    """Every condition `precedent` fails for this case; empty when it applies.

    `in_base`: for a case in another currency than the base a pack with `rates` states its
    amounts in, the amount in the base at the case's rate, rounded up. A bound or grantor's
    limit set in the base is measured on it; one set in a currency it cannot be measured in
    does not apply.
    """
    failures: list[Failure] = []

    def fail(rule: str, detail: str) -> None:
        failures.append(Failure(rule, f"precedent {precedent.id}: {detail}"))

    if precedent.action != action:
        fail("discretion.precedent.action", f"set for {precedent.action!r}, not {action!r}")
    if precedent.reason != reason:
        fail(
            "discretion.precedent.reason",
            f"set for reason {precedent.reason!r}, the case cites {reason!r}",
        )
    # Set from a decision in this currency: its money scope is in it too.
    currency = precedent.grantor_limit.currency
    for key, expected in precedent.scope.items():
        actual = facts.get(key)
        if isinstance(actual, Money) and actual.currency != currency:
            fail(
                "discretion.precedent.scope", f"scope {key} is in {currency}, the case has {actual}"
            )
        elif not matches(expected, actual):
            shown = "no value" if actual is None else repr(_shown(actual))
            fail("discretion.precedent.scope", f"scope {key} is {expected!r}, the case has {shown}")
    cap = precedent.max_amount
    measured = _measured(cap, amount, in_base) if cap is not None else None
    if cap is not None and measured is None:
        fail("discretion.precedent.bounds", f"bounds are in {cap.currency}")
    elif cap is not None and measured is not None and measured.minor > cap.minor:
        asked = str(amount) if measured is amount else f"{amount} ({measured})"
        fail("discretion.precedent.bounds", f"{asked} is above its bound of {cap}")
    if precedent.max_ratio is not None:
        bound = ratio_bound(precedent, facts)
        if bound is None:
            fail("discretion.precedent.bounds", f"the case has no {precedent.ratio_of} to bound by")
        elif amount.minor > bound.minor:
            fail(
                "discretion.precedent.bounds",
                f"{amount} is above {precedent.max_ratio} x {precedent.ratio_of} ({bound})",
            )
    if now >= precedent.expires_at:
        fail("discretion.precedent.expired", f"expired at {precedent.expires_at.isoformat()}")
    if precedent.revoked_at is not None:
        fail("discretion.precedent.revoked", f"revoked: {precedent.revoked_reason}")
    if not precedent.learnable:
        fail("discretion.precedent.not-learnable", "a one-off exception, never citable")
    if precedent.citations_left <= 0:
        fail("discretion.precedent.exhausted", f"all {precedent.citations} citations are used")
    limit = precedent.grantor_limit
    granted = _measured(limit, amount, in_base)
    if granted is None or granted.minor > limit.minor:
        fail(
            "discretion.precedent.grantor-authority",
            f"its grantor ({precedent.grantor_role}) could grant at most {limit}",
        )
    return failures


def _measured(bound: Money, amount: Money, in_base: Money | None) -> Money | None:
    """The amount in `bound`'s currency: as it is, or in the base; None when it cannot be."""
    if bound.currency == amount.currency:
        return amount
    if in_base is not None and bound.currency == in_base.currency:
        return in_base
    return None


def _shown(value: Any) -> Any:
    if isinstance(value, Money):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value
