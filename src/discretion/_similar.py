"""How like cases were decided: the nearest past decisions of the same action and reason.

Like cases rank by the same rules firing first, then by closeness of the amount and of the facts
that matter: those the rules that fired, in either case, read. A fact no rule of either case
read is not shown as a difference, however different it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from discretion.decision import Decision, Outcome
from discretion.money import Money
from discretion.policy import ActionPolicy
from discretion.store import SqlStore

__all__ = ["SimilarDecision", "fields_by_rule", "similar_decisions"]

WINDOW = 500
"""How many of the most recent decisions of an action and reason are compared: enough to find
close cases, bounded so the cost does not grow with the history on record."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SimilarDecision:
    """A past decision like the one at hand, and how it ended."""

    decision: Decision
    """The past decision."""
    distance: float
    """0 when every fact the action reads is the same; 1 per fact that differs entirely."""
    differs: tuple[str, ...]
    """The facts that differ among those that matter, and `amount` when it does."""
    same_rules: bool = True
    """Whether the same rules fired as in the case at hand."""
    resolution: str | None
    """What people did with it later (the kind of its last lineage record), if anything."""


def _number(value: Any) -> Decimal | None:
    if isinstance(value, Mapping) and "amount" in value:
        return Decimal(str(value["amount"]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(datetime.fromisoformat(value).timestamp())
        except ValueError:
            return None
    return None


def _gap(a: Any, b: Any) -> float:
    if a == b:
        return 0.0
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return 1.0
    scale = max(abs(x), abs(y), Decimal(1))
    return float(min(Decimal(1), abs(x - y) / scale))


def fields_by_rule(policy: ActionPolicy) -> dict[str, tuple[str, ...]]:
    """For each rule of an action, the facts of `policy.reads` its expressions read."""
    found: dict[str, tuple[str, ...]] = {}
    for rule in policy.rules:
        sources = [rule.when.source] + ([rule.max_amount.source] if rule.max_amount else [])
        found[rule.id] = tuple(
            name
            for name in policy.reads
            if any(re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", s) for s in sources)
        )
    return found


def similar_decisions(
    store: SqlStore,
    *,
    action: str,
    reason: str | None,
    context: Mapping[str, Any],
    fields: Sequence[str],
    amount: Money | None,
    exclude: str | None = None,
    limit: int = 5,
    rules: Sequence[str] | None = None,
    rule_fields: Mapping[str, Sequence[str]] | None = None,
) -> list[SimilarDecision]:
    """The `limit` decisions nearest to `context` among the latest of `action` and `reason`.

    Reads at most `WINDOW` rows through the (action, reason, time) index, so it costs the
    same with a hundred decisions on record as with a million.

    Args:
        store: where the decisions are.
        action: the action of the case at hand.
        reason: its exception reason, or None inside standard policy.
        context: its facts.
        fields: the facts its action reads.
        amount: its amount.
        exclude: its own decision id, when it is on record.
        limit: how many to return.
        rules: the rules that fired for it, when it was decided: past decisions where the same
            fired rank first, and only the facts the rules of either read are compared.
        rule_fields: for each rule id, the facts it reads (`fields_by_rule`).
    """
    rows = store.reports.like_cases(action=action, reason=reason, limit=WINDOW)
    reads = rule_fields or {}
    scored: list[tuple[bool, float, int, dict[str, Any], tuple[str, ...]]] = []
    for order, row in enumerate(rows):
        if row.decision_id == exclude:
            continue
        record = json.loads(row.body)
        past = record.get("context", {})
        fired = tuple(record["decision"].get("rules", ()))
        compared: Sequence[str] = fields
        if rules is not None:
            matter = {name for rule in (*rules, *fired) for name in reads.get(rule, ())}
            compared = [name for name in fields if name in matter]
        gaps = {name: _gap(context.get(name), past.get(name)) for name in compared}
        if amount is not None and row.amount_minor is not None:
            gaps["amount"] = _gap(amount.minor, row.amount_minor)
        differs = tuple(name for name, gap in gaps.items() if gap > 0)
        same = rules is None or set(rules) == set(fired)
        scored.append((not same, sum(gaps.values()), order, record["decision"], differs))
    scored.sort(key=lambda item: (item[0], item[1], item[2]))
    # Only the chosen few are read whole (with their lineage hash) and validated.
    best = scored[:limit]
    stamped = store.decisions(body["id"] for *_, body, _ in best)
    chosen = [
        (not other, distance, stamped[body["id"]], differs)
        for other, distance, _, body, differs in best
    ]
    resolutions = store.reports.resolutions([decision.id for _, _, decision, _ in chosen])
    return [
        SimilarDecision(
            decision=decision,
            distance=round(distance, 6),
            differs=differs,
            same_rules=same,
            resolution=resolutions.get(decision.id)
            or (None if decision.outcome is Outcome.ROUTE else decision.outcome.value),
        )
        for same, distance, decision, differs in chosen
    ]
