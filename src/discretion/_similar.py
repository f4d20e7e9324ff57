"""How like cases were decided: the nearest past decisions of the same action and reason."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from discretion.decision import Decision, Outcome
from discretion.money import Money
from discretion.store import SqlStore

__all__ = ["SimilarDecision", "similar_decisions"]

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
    """The facts that differ."""
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
) -> list[SimilarDecision]:
    """The `limit` decisions nearest to `context` among the latest of `action` and `reason`.

    Reads at most `WINDOW` rows through the (action, reason, time) index, so it costs the
    same with a hundred decisions on record as with a million.
    """
    rows = store.reports.like_cases(action=action, reason=reason, limit=WINDOW)
    scored: list[tuple[float, int, dict[str, Any], tuple[str, ...]]] = []
    for order, row in enumerate(rows):
        if row.decision_id == exclude:
            continue
        record = json.loads(row.body)
        past = record.get("context", {})
        gaps = {name: _gap(context.get(name), past.get(name)) for name in fields}
        if amount is not None and row.amount_minor is not None:
            gaps["amount"] = _gap(amount.minor, row.amount_minor)
        differs = tuple(name for name, gap in gaps.items() if gap > 0)
        scored.append((sum(gaps.values()), order, record["decision"], differs))
    scored.sort(key=lambda item: (item[0], item[1]))
    # Only the chosen few are read whole (with their lineage hash) and validated.
    best = scored[:limit]
    stamped = store.decisions(body["id"] for _, _, body, _ in best)
    chosen = [(distance, stamped[body["id"]], differs) for distance, _, body, differs in best]
    resolutions = store.reports.resolutions([decision.id for _, decision, _ in chosen])
    return [
        SimilarDecision(
            decision=decision,
            distance=round(distance, 6),
            differs=differs,
            resolution=resolutions.get(decision.id)
            or (None if decision.outcome is Outcome.ROUTE else decision.outcome.value),
        )
        for distance, decision, differs in chosen
    ]
