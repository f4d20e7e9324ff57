"""Step 3, continued: facts discretion keeps itself, from its own ledger.

A pack's `totals` (money allowed and pending on this order, case or customer within a window)
and an action's `cumulative` authority (what was already allowed on the same record) are read
from the decisions discretion recorded, keyed by the records as resolved (never ids the agent
typed). They are read twice: once while the facts are assembled, to evaluate, and again in the
decision's transaction, under a lock on the record's key, where the decision stands on them. A
change in between is re-evaluated there (see `Pipeline._record`). On SQLite the second read is
skipped when no other connection committed since the first (`SqlTransaction.totals`): the write
lock held since BEGIN IMMEDIATE then guarantees the first read is still what the ledger says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from discretion.money import Money
from discretion.pipeline._assemble import Resolved
from discretion.pipeline._normalise import Normalised
from discretion.policy import ActionPolicy, PolicyPack, Total
from discretion.store import TotalQuery

__all__ = ["CUMULATIVE", "LedgerFacts", "read_ledger"]

CUMULATIVE = "cumulative"
"""The name the cumulative authority's own total is read and recorded under."""

_OTHER = "#other:"
"""Prefixes the count, read beside a money total of a pack in several currencies, of what the
same total holds in the other currencies."""

_ALLOWED = frozenset({"allow", "allow_exception"})


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerFacts:
    """The totals a decision read from the ledger."""

    minor: dict[str, int]
    """Each total read (minor units, or a count), by name; `cumulative` for the authority's."""
    queries: tuple[tuple[str, TotalQuery], ...]
    """What was read, to read again in the decision's transaction."""
    currency: str
    """The currency of the sums (the proposal's)."""

    @property
    def facts(self) -> dict[str, Any]:
        """The pack's totals as facts (money as `Money`), for the snapshot and CEL."""
        counts = {name for name, query in self.queries if query.count}
        return {
            name: value if name in counts else Money.from_minor(value, self.currency)
            for name, value in self.minor.items()
            if name != CUMULATIVE and not name.startswith(_OTHER)
        }

    @property
    def mixed(self) -> list[str]:
        """The totals that hold amounts in another currency than the proposal's."""
        return [
            name.removeprefix(_OTHER)
            for name, value in self.minor.items()
            if name.startswith(_OTHER) and value
        ]

    @property
    def recorded(self) -> dict[str, Any]:
        """The totals as the snapshot records them: the pack's, and the cumulative authority's."""
        out = self.facts
        if CUMULATIVE in self.minor:
            out[CUMULATIVE] = Money.from_minor(self.minor[CUMULATIVE], self.currency)
        return out

    @property
    def prior_minor(self) -> int:
        """What was already allowed on the record, for cumulative authority (0 when unused)."""
        return self.minor.get(CUMULATIVE, 0)

    def again(self, read: Callable[[Sequence[TotalQuery]], list[int]]) -> LedgerFacts:
        """The same totals read through `read` (the decision's transaction), in one go."""
        values = read([query for _, query in self.queries]) if self.queries else []
        return LedgerFacts(
            minor={name: value for (name, _), value in zip(self.queries, values, strict=True)},
            queries=self.queries,
            currency=self.currency,
        )


def _reads(
    pack: PolicyPack, action: ActionPolicy
) -> tuple[tuple[str, Total, tuple[str, ...] | None], ...]:
    """The pack's totals `action` reads, each with its actions in order; once per pack."""
    key = ("ledger.reads", action.name)
    memo = pack.memo.get(key)
    if memo is None or memo[0] is not action:
        reads = tuple(
            (name, total, tuple(sorted(total.actions)) if total.actions is not None else None)
            for name in action.reads
            if (total := pack.totals.get(name)) is not None
        )
        memo = pack.memo[key] = (action, reads)
    return memo[1]


def queries(
    pack: PolicyPack,
    item: Normalised,
    action: ActionPolicy,
    resolved: Resolved,
    now: datetime,
) -> tuple[list[tuple[str, TotalQuery]], list[str]]:
    """What to read for `item`, and the names that cannot be keyed (no such record named)."""
    wanted: list[tuple[str, TotalQuery]] = []
    unkeyed: list[str] = []
    actor = item.proposal.actor.id
    # A pack in several currencies sums each total in the proposal's currency alone, and
    # counts beside it what the same total holds in any other.
    currency = item.amount.currency if item.amount is not None and len(pack.accepts) > 1 else None
    for name, total, actions in _reads(pack, action):
        key = actor if total.per == "actor" else resolved.get(total.per)
        if key is None:
            unkeyed.append(name)
            continue
        wanted.append(
            (
                name,
                TotalQuery(
                    per=total.per,
                    key=key,
                    since=now - total.window,
                    outcomes=total.outcomes,
                    actions=actions,
                    count=total.type == "int",
                    currency=currency if total.type == "money" else None,
                ),
            )
        )
    cumulative = action.cumulative
    if cumulative is not None:
        key = resolved.get(cumulative.per)
        if key is None:
            unkeyed.append(CUMULATIVE)
        else:
            wanted.append(
                (
                    CUMULATIVE,
                    TotalQuery(
                        per=cumulative.per,
                        key=key,
                        since=now - cumulative.window,
                        outcomes=_ALLOWED,
                        actions=(action.name,),
                        actor_id=actor if cumulative.among == "actor" else None,
                        role=item.role.id if cumulative.among == "role" else None,
                        currency=currency,
                    ),
                )
            )
    if currency is not None:
        wanted += [
            (_OTHER + name, replace(query, other=True))
            for name, query in wanted
            if query.currency is not None
        ]
    return wanted, unkeyed


def read_ledger(
    read: Callable[[Sequence[TotalQuery]], list[int]],
    pack: PolicyPack,
    item: Normalised,
    action: ActionPolicy,
    resolved: Resolved,
    now: datetime,
    *,
    frozen: Mapping[str, Any] | None = None,
) -> tuple[LedgerFacts, list[str]]:
    """Read the totals `action` reads and its cumulative authority; and what cannot be keyed.

    `frozen` holds totals as another decision recorded them (money or counts by name): a shadow
    pack decides on the enforced decision's facts, not on a ledger that now holds it too.
    """
    wanted, unkeyed = queries(pack, item, action, resolved, now)
    currency = item.amount.currency if item.amount is not None else pack.currency

    def kept(name: str) -> int | None:
        recorded = frozen.get(name) if frozen is not None else None
        if isinstance(recorded, Money):
            return recorded.minor
        if isinstance(recorded, int) and not isinstance(recorded, bool):
            return recorded
        return None

    minor = {name: kept(name) for name, _ in wanted}
    unread = [(name, query) for name, query in wanted if minor[name] is None]
    if unread:
        # Every total the action reads, in one statement.
        values = read([query for _, query in unread])
        minor.update({name: value for (name, _), value in zip(unread, values, strict=True)})
    facts = LedgerFacts(
        minor={name: int(value or 0) for name, value in minor.items()},
        queries=tuple(wanted),
        currency=currency,
    )
    return facts, unkeyed
