"""What an assertion unlocks: an allowed case resting on one, above its cap, goes to a person.

A standard rule or an exception reason that reads `asserted.<name>` rests on what the agent
says the customer said. The pack's `asserted.<name>.unlocks.max_amount` caps what such a rule
may allow without a person: above it the case routes to the lowest person above the actor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from discretion.authority import lowest_above
from discretion.decision import Outcome
from discretion.money import Money
from discretion.pipeline._state import Evaluation
from discretion.policy import PolicyPack, Role

__all__ = ["UNLOCK_EXCEEDED", "cap_assertions"]

UNLOCK_EXCEEDED = "discretion.asserted.unlock-exceeded"


def cap_assertions(
    pack: PolicyPack,
    evaluation: Evaluation,
    *,
    action: str,
    role: Role,
    amount_minor: int,
    facts: Mapping[str, Any],
    call_minor: int,
) -> Evaluation:
    """An allowed case resting on an assertion above what it unlocks, routed to a person.

    `amount_minor` is the call's amount, with what the record already received for an action
    measured on the whole; a cap that counts a total (`unlocks.counting`) is measured on the
    call's own (`call_minor`) and the total's value among `facts` together. A total that could
    not be read is over.
    """
    if not evaluation.outcome.is_allowed:
        return evaluation
    # The view a unit's proposal is decided on has the unit for its currency.
    unit = pack.currency if pack.currency in pack.units else None
    over = [
        name
        for rule in evaluation.deciding
        for name in rule.rests_on
        if (cap := pack.asserted[name].cap(unit)) is not None
        and _measured(pack.asserted[name].counting, amount_minor, call_minor, facts) > cap
    ]
    if not over:
        return evaluation
    over = list(dict.fromkeys(over))
    return replace(
        evaluation,
        outcome=Outcome.ROUTE,
        rules=[*evaluation.rules, UNLOCK_EXCEEDED, *(f"{UNLOCK_EXCEEDED}:{name}" for name in over)],
        required_role=lowest_above(pack, action, role, evaluation.reason, amount_minor),
        causes=[
            *evaluation.causes,
            *(
                f"the rule that allows it rests on {name}, which the agent asserted; the pack"
                " lets an assertion unlock no more than this without a person"
                for name in over
            ),
        ],
        precedents=evaluation.unapplied(),
        fallback=None,
    )


def _measured(counting: str | None, whole: int, call: int, facts: Mapping[str, Any]) -> float:
    if counting is None:
        return whole
    held = facts.get(counting)
    if not isinstance(held, Money):
        return math.inf  # not read: what the record already received is not known
    return call + held.minor
