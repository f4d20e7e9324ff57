"""Step 3, continued: facts discretion keeps itself, from its own ledger.

A pack's `totals` (money allowed and pending on this order, case or customer within a window)
and an action's `cumulative` authority (what was already allowed on the same record) are read
from the decisions discretion recorded, keyed by the records as resolved (never ids the agent
typed). They are read twice: once while the facts are assembled, to evaluate, and again in the
decision's transaction, under a lock on the record's key, where the decision stands on them. A
change in between is re-evaluated there (see `Pipeline._record`). On SQLite the second read is
skipped when no other connection committed since the first (`SqlTransaction.totals`): the write
lock held since BEGIN IMMEDIATE then guarantees the first read is still what the ledger says.
On PostgreSQL, a decision that waits on nothing outside the process (`Pipeline.in_process`) is
assessed in its transaction and reads them once, under the locks (`Pipeline.govern`).
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

__all__ = ["CUMULATIVE", "LedgerFacts", "kept_under", "key_text", "read_ledger", "recorded_keys"]

CUMULATIVE = "cumulative"
"""The name the cumulative authority's own total is read and recorded under."""

WHOLE = "cumulative.everyone"
"""The name the whole on the record is read under, whoever granted it, when an action with
`two_approvals_above` keeps its cumulative authority among a role or an actor: two people are
needed above the amount however the pieces were shared out."""

_GRANTED = frozenset({"allow", "allow_exception", "approved"})
"""What cumulative authority sums: what was allowed, and routed cases a person approved (at
the amount approved). Four pieces of a refund, three of them approved one by one, are the
whole a fourth is measured on, as the single refund would have been."""

_PENDING = frozenset({"pending"})
"""Routed pieces still waiting: never authority, but where the next piece routes to."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerFacts:
    """The totals a decision read from the ledger."""

    minor: dict[str, int]
    """Each total read (minor units, or a count), by name; `cumulative` for the authority's."""
    other: dict[str, int]
    """For each money total of a pack in several currencies, by name: how many amounts in
    other currencies than the proposal's the same total holds (they are never added to it)."""
    queries: tuple[tuple[str, TotalQuery], ...]
    """What was read, to read again in the decision's transaction: the totals, then the counts
    of `other` (their queries say `other`)."""
    currency: str
    """The currency of the sums (the proposal's)."""

    @classmethod
    def of(
        cls,
        queries: tuple[tuple[str, TotalQuery], ...],
        values: Sequence[int | None],
        currency: str,
    ) -> LedgerFacts:
        """The totals `queries` read, `values` in their order (None read as 0)."""
        minor: dict[str, int] = {}
        other: dict[str, int] = {}
        for (name, query), value in zip(queries, values, strict=True):
            (other if query.other else minor)[name] = int(value or 0)
        return cls(minor=minor, other=other, queries=queries, currency=currency)

    @property
    def facts(self) -> dict[str, Any]:
        """The pack's totals as facts (money as `Money`), for the snapshot and CEL."""
        counts = {name for name, query in self.queries if query.count}
        return {
            name: value if name in counts else Money.from_minor(value, self.currency)
            for name, value in self.minor.items()
            if name not in (CUMULATIVE, WHOLE)
        }

    @property
    def mixed(self) -> list[str]:
        """The totals that hold amounts in another currency than the proposal's."""
        return [name for name, count in self.other.items() if count]

    @property
    def recorded(self) -> dict[str, Any]:
        """The totals as the snapshot records them: the pack's, and the cumulative authority's."""
        out = self.facts
        for name in (CUMULATIVE, WHOLE):
            if name in self.minor:
                out[name] = Money.from_minor(self.minor[name], self.currency)
        return out

    @property
    def prior_minor(self) -> int:
        """What was already allowed on the record, for cumulative authority (0 when unused)."""
        return self.minor.get(CUMULATIVE, 0)

    @property
    def whole_minor(self) -> int:
        """What was already granted on the record by anyone, for two approvals (`WHOLE`)."""
        return self.minor.get(WHOLE, self.prior_minor)

    @property
    def pending_query(self) -> TotalQuery | None:
        """What was routed on the cumulative authority's record and waits for a person.

        Kept as the cumulative authority is (the same record, window, currency and `among`);
        None when the action measures no cumulative authority.
        """
        for name, query in self.queries:
            if name == CUMULATIVE and not query.other:
                return replace(query, outcomes=_PENDING)
        return None

    def again(self, read: Callable[[Sequence[TotalQuery]], list[int]]) -> LedgerFacts:
        """The same totals read through `read` (the decision's transaction), in one go."""
        values = read([query for _, query in self.queries]) if self.queries else []
        return LedgerFacts.of(self.queries, values, self.currency)

    def moved(self, fresh: LedgerFacts) -> bool:
        """Whether `fresh`, the same totals read again, differs from these."""
        return fresh.minor != self.minor or fresh.other != self.other


def _reads(
    pack: PolicyPack, action: ActionPolicy
) -> tuple[tuple[str, Total, tuple[str, ...] | None, tuple[str, ...] | None], ...]:
    """The pack's totals `action` reads, each with its actions and reasons in order.

    Worked out once per pack and action.
    """
    return pack.memoised(
        "ledger.reads",
        action,
        lambda: tuple(
            (
                name,
                total,
                tuple(sorted(total.actions)) if total.actions is not None else None,
                tuple(sorted(total.reasons)) if total.reasons is not None else None,
            )
            for name in action.reads
            if (total := pack.totals.get(name)) is not None
        ),
    )


def kept_under(per: str, actor_id: str, resolved: Resolved) -> str | None:
    """The key a total or budget kept per a record, the actor or everyone counts under.

    A resolved record's id (never one the agent typed), the actor's id, or `*` for the whole
    organisation; None when the proposal names no such record.
    """
    if per == "actor":
        return actor_id
    if per == "organisation":
        return "*"
    return resolved.get(per)


def key_text(value: Any) -> str | None:
    """A string or int fact or argument as the text a total or budget is keyed by.

    None when it has no value.
    """
    return None if value is None or isinstance(value, bool) else str(value)


def _matched(names: tuple[str, ...], args: Mapping[str, Any]) -> tuple[tuple[str, str], ...] | None:
    """The call's values of the arguments a total is kept per; None when one has none."""
    matched: list[tuple[str, str]] = []
    for name in names:
        text = key_text(args.get(name))
        if text is None:
            return None
        matched.append((name, text))
    return tuple(matched)


def recorded_keys(pack: PolicyPack, item: Normalised) -> dict[str, str] | None:
    """The call's values of the arguments the pack's totals of its action are kept per.

    Recorded with the decision (its lineage record's `keys`), so a later decision's total
    counts it under them; None when no total of the action is kept per an argument.
    """
    action = item.action
    if action is None:
        return None
    names: tuple[str, ...] = pack.memoised(
        "ledger.keys",
        action,
        lambda: tuple(
            sorted(
                {
                    name
                    for total in pack.totals.values()
                    if total.actions is None or action.name in total.actions
                    for name in total.args
                }
            )
        ),
    )
    if not names:
        return None
    keys = {name: text for name in names if (text := key_text(item.args.get(name))) is not None}
    return keys or None


def queries(
    pack: PolicyPack,
    item: Normalised,
    action: ActionPolicy,
    resolved: Resolved,
    now: datetime,
    *,
    proposer: tuple[str, str] | None = None,
    facts: Mapping[str, Any] | None = None,
) -> tuple[list[tuple[str, TotalQuery]], list[str]]:
    """What to read for `item`, and the names that cannot be keyed (no such record named).

    `proposer`: the id and role of the actor whose case it is, when not `item`'s own (an
    approval's re-check: the approver is measured on the proposer's whole).
    """
    wanted: list[tuple[str, TotalQuery]] = []
    unkeyed: list[str] = []
    actor, role = proposer or (item.proposal.actor.id, item.role.id)
    # A pack in several currencies sums each total in the proposal's currency alone, and
    # counts beside it what the same total holds in any other.
    currency = item.amount.currency if item.amount is not None and len(pack.accepts) > 1 else None
    for name, total, actions, reasons in _reads(pack, action):
        key = kept_under(total.per, actor, resolved)
        matched = _matched(total.args, item.args)
        # A calendar in the case's own time zone (`timezone`): none named, no window to read.
        since = total.since_in(now, facts or {})
        if key is None or matched is None or since is None:
            unkeyed.append(name)
            continue
        wanted.append(
            (
                name,
                TotalQuery(
                    per=total.per,
                    key=key,
                    since=since,
                    outcomes=total.outcomes,
                    actions=actions,
                    reasons=reasons,
                    count=total.type == "int",
                    currency=currency if total.type == "money" else None,
                    args=matched,
                ),
            )
        )
    cumulative = action.cumulative
    if cumulative is not None:
        key = resolved.get(cumulative.per)
        if key is None:
            unkeyed.append(CUMULATIVE)
        else:
            since = cumulative.since(now)

            def on_record(actor_id: str | None = None, role_id: str | None = None) -> TotalQuery:
                # Built whole: `dataclasses.replace` costs more than the constructor.
                return TotalQuery(
                    per=cumulative.per,
                    key=key,
                    since=since,
                    outcomes=_GRANTED,
                    actions=cumulative.actions,
                    actor_id=actor_id,
                    role=role_id,
                    currency=currency,
                )

            wanted.append(
                (
                    CUMULATIVE,
                    on_record(
                        actor if cumulative.among == "actor" else None,
                        role if cumulative.among == "role" else None,
                    ),
                )
            )
            if action.two_approvals_minor is not None and cumulative.among != "everyone":
                wanted.append((WHOLE, on_record()))
    if currency is not None:
        wanted += [
            (name, replace(query, other=True))
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
    proposer: tuple[str, str] | None = None,
    facts: Mapping[str, Any] | None = None,
) -> tuple[LedgerFacts, list[str]]:
    """Read the totals `action` reads and its cumulative authority; and what cannot be keyed.

    `frozen` holds totals as another decision recorded them (money or counts by name): a shadow
    pack decides on the enforced decision's facts, not on a ledger that now holds it too.
    `proposer`: whose case it is, when not `item`'s actor's (see `queries`). `facts`: the
    case's, for totals counted in the time zone one names (`timezone`).
    """
    wanted, unkeyed = queries(pack, item, action, resolved, now, proposer=proposer, facts=facts)
    currency = item.amount.currency if item.amount is not None else pack.currency

    def kept(name: str, query: TotalQuery) -> int | None:
        if frozen is None or query.other:
            return None
        recorded = frozen.get(name)
        if isinstance(recorded, Money):
            return recorded.minor
        if isinstance(recorded, int) and not isinstance(recorded, bool):
            return recorded
        return None

    values = [kept(name, query) for name, query in wanted]
    unread = [index for index, value in enumerate(values) if value is None]
    if unread:
        # Every total the action reads, in one statement.
        for index, value in zip(unread, read([wanted[i][1] for i in unread]), strict=True):
            values[index] = value
    return LedgerFacts.of(tuple(wanted), values, currency), unkeyed
