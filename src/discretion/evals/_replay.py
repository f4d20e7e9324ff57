"""Replay a ledger under another pack, and read what a shadow pack would have decided.

Replay re-decides every recorded proposal on the context snapshot frozen in its lineage record,
under a candidate pack, in a scratch in-memory ledger (so budgets accumulate as they would have
under the candidate), and never writes to the ledger it reads.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from discretion.context import ContextRequest
from discretion.decision import Decision, Outcome
from discretion.errors import ApprovalError, DiscretionError, ProposalError, StoreError
from discretion.evals._results import ALLOWED
from discretion.guard import Guard
from discretion.judge import Judge
from discretion.money import Money
from discretion.pipeline import recorded_mapping
from discretion.policy import TWO_APPROVALS, PolicyPack, load_pack
from discretion.proposal import Actor
from discretion.shadow import SHADOW_RECORD
from discretion.store import SqlStore

__all__ = ["Exposure", "ReplayChange", "ReplayReport", "replay", "shadow_report"]

STANDARD = "(standard)"
"""The reason column for money moved inside standard policy."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """One side of a comparison: what was (or would have been) decided."""

    outcome: str
    """An `Outcome` value, or `error` when the proposal could not be decided."""
    required_role: str | None = None
    rules: tuple[str, ...] = ()
    reason: str | None = None
    detail: str | None = None
    """The error, or the first cause of a fail-closed decision."""

    @classmethod
    def of(cls, decision: Decision) -> Verdict:
        """The verdict a decision gave."""
        return cls(
            outcome=decision.outcome.value,
            required_role=decision.required_role,
            rules=tuple(decision.rules),
            reason=decision.reason,
            detail=decision.causes[0] if decision.causes else None,
        )

    @property
    def is_allowed(self) -> bool:
        """Whether money moved."""
        return self.outcome in ALLOWED

    def label(self) -> str:
        """`route to tier2`, `allow`, ..."""
        return f"route to {self.required_role}" if self.outcome == "route" else self.outcome

    def to_json(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "outcome": self.outcome,
            "required_role": self.required_role,
            "rules": list(self.rules),
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayChange:
    """A recorded decision whose outcome or routed role would change."""

    decision_id: str
    idempotency_key: str
    decided_at: datetime
    action: str
    amount: Money | None
    before: Verdict
    after: Verdict
    relied_on_precedent: bool = False
    """The recorded decision applied a precedent; replays decide without precedents."""
    loosens: bool = False
    """The change lets more through: money moves where it did not, a deny becomes a route,
    or a route goes to a lower role (or to one the candidate cannot rank)."""

    def to_json(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "loosens": self.loosens,
            "decision_id": self.decision_id,
            "idempotency_key": self.idempotency_key,
            "decided_at": self.decided_at.isoformat(),
            "action": self.action,
            "amount": self.amount.to_json() if self.amount is not None else None,
            "before": self.before.to_json(),
            "after": self.after.to_json(),
            "relied_on_precedent": self.relied_on_precedent,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Exposure:
    """Money moved for one action and reason, before and after."""

    action: str
    reason: str
    """The exception reason, or `(standard)` for money moved inside standard policy."""
    currency: str
    before: Decimal
    after: Decimal

    @property
    def delta(self) -> Decimal:
        """`after - before`: positive when the candidate lets more money move."""
        return self.after - self.before

    def to_json(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "action": self.action,
            "reason": self.reason,
            "currency": self.currency,
            "before": str(self.before),
            "after": str(self.after),
            "delta": str(self.delta),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReport:
    """Which decisions a candidate pack would change, and the exposure it would move."""

    pack: str
    """The candidate pack's name."""
    version: str
    """The candidate pack's version."""
    recorded_versions: tuple[str, ...]
    """The pack versions that made the recorded decisions."""
    since: datetime | None
    replayed: int
    """Recorded decisions re-decided (those since `since`)."""
    changes: tuple[ReplayChange, ...]
    exposure: tuple[Exposure, ...]
    transitions: dict[str, int]
    """`before -> after` outcome labels to a count, changed decisions only."""
    mode: str = "replay"
    """`replay` (re-decided now) or `shadow` (recorded beside each decision)."""

    @property
    def unchanged(self) -> int:
        """Decisions that would stay as they are."""
        return self.replayed - len(self.changes)

    @property
    def loosened(self) -> tuple[ReplayChange, ...]:
        """The changed decisions that would let more through."""
        return tuple(change for change in self.changes if change.loosens)

    @property
    def more_money(self) -> tuple[Exposure, ...]:
        """The actions and reasons under which the candidate would move more money."""
        return tuple(row for row in self.exposure if row.delta > 0)

    @property
    def is_looser(self) -> bool:
        """Whether any decision loosens, or any action and reason would move more money."""
        return bool(self.loosened or self.more_money)

    @property
    def is_changed(self) -> bool:
        """Whether any decision, or the money moved under any action and reason, would change."""
        return bool(self.changes) or any(row.delta != 0 for row in self.exposure)

    def exposure_delta(self) -> dict[str, Decimal]:
        """Per currency: how much more (or, negative, less) money the candidate would move."""
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for row in self.exposure:
            totals[row.currency] += row.delta
        return dict(totals)

    def print(self, console: Console, *, max_changes: int = 50) -> None:
        """Print what would change: transitions, the changed decisions, and the exposure."""
        what = "shadow pack" if self.mode == "shadow" else "candidate pack"
        console.print(
            f"{what} [bold]{escape(self.pack)}[/bold] {self.version[:19]}: {self.replayed}"
            f" decisions{' since ' + self.since.isoformat() if self.since else ''},"
            f" [yellow]{len(self.changes)} would change[/yellow], {self.unchanged} would not,"
            f" [red]{len(self.loosened)} would loosen[/red]",
            highlight=False,
        )
        if self.transitions:
            table = Table(title="changes by outcome", title_justify="left")
            table.add_column("before -> after")
            table.add_column("decisions", justify="right")
            for label, count in self.transitions.items():
                table.add_row(escape(label), str(count))
            console.print(table)
        if self.changes:
            table = Table(title="decisions that would change", title_justify="left")
            for column in ("decision", "at", "action", "amount", "before", "after", "why"):
                table.add_column(column, justify="right" if column == "amount" else "left")
            for change in self.changes[:max_changes]:
                note = change.after.detail or ", ".join(change.after.rules[-2:])
                if change.relied_on_precedent:
                    note = f"replayed without its precedent; {note}"
                table.add_row(
                    escape(change.decision_id),
                    change.decided_at.strftime("%Y-%m-%d %H:%M"),
                    escape(change.action),
                    str(change.amount) if change.amount is not None else "",
                    escape(change.before.label()),
                    escape(change.after.label()),
                    escape(note),
                )
            console.print(table)
            if len(self.changes) > max_changes:
                console.print(f"... and {len(self.changes) - max_changes} more (see --json)")
        # What code alone allows: a routed case moves money only once a person approves it,
        # which a replay does not do.
        table = Table(
            title="exposure allowed without a person, by action and reason", title_justify="left"
        )
        for column in ("action", "reason", "before", "after", "delta"):
            table.add_column(column, justify="left" if column in ("action", "reason") else "right")
        for row in self.exposure:
            delta = row.delta
            style = "red" if delta > 0 else "green" if delta < 0 else ""
            shown = f"{delta:+}" if delta else "0"
            table.add_row(
                escape(row.action),
                escape(row.reason),
                f"{row.before} {row.currency}",
                f"{row.after} {row.currency}",
                f"[{style}]{shown}[/{style}]" if style else shown,
            )
        console.print(table)

    def to_json(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "mode": self.mode,
            "pack": self.pack,
            "version": self.version,
            "recorded_versions": list(self.recorded_versions),
            "since": self.since.isoformat() if self.since is not None else None,
            "replayed": self.replayed,
            "changed": len(self.changes),
            "unchanged": self.unchanged,
            "loosened": len(self.loosened),
            "transitions": self.transitions,
            "exposure": [row.to_json() for row in self.exposure],
            "exposure_delta": {c: str(v) for c, v in self.exposure_delta().items()},
            "changes": [change.to_json() for change in self.changes],
        }


class _Frozen:
    """Serves the facts frozen in one recorded decision, typed as the candidate declares."""

    def __init__(self, pack: PolicyPack) -> None:
        self._pack = pack
        self.facts: Mapping[str, Any] = {}

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        """The recorded facts among `request.fields`; a field the ledger lacks stays missing."""
        out: dict[str, Any] = {}
        for name in request.fields:
            if name not in self.facts:
                continue
            value = self.facts[name]
            spec = self._pack.fields.get(name)
            if spec is not None and spec.type == "duration" and isinstance(value, (int, float)):
                # Snapshots record durations as seconds.
                value = timedelta(seconds=value)
            out[name] = value
        return out


class _Clock:
    def __init__(self) -> None:
        self.now: datetime | None = None

    def __call__(self) -> datetime:
        if self.now is None:
            raise StoreError("replay clock read before a recorded decision set it")
        return self.now


_APPROVED = ("approval.endorsed", "approval.approved", "approval.rejected", "approval.escalated")
"""The records of a person acting on a routed case: the first of two approvals, the approval,
the rejection, or an escalation (which moves its due time too)."""


def _approve_again(
    guard: Guard,
    routed: Mapping[str, tuple[str, Mapping[str, Any]]],
    kind: str,
    approval_id: str,
    body: Mapping[str, Any],
    clock: _Clock,
    frozen: _Frozen,
) -> None:
    """The recorded person deciding the replayed case again, when the candidate routed it too.

    At the recorded time and amount, on the facts it was decided on, re-checked under the
    candidate: what it would not let that person approve is not approved (and moves nothing).
    """
    found = routed.get(approval_id)
    by = body.get("by") or {}
    if found is None or not by.get("id") or not by.get("role"):
        return
    replayed, facts = found
    clock.now = datetime.fromisoformat(body["at"])
    frozen.facts = facts
    person = Actor(id=by["id"], role=by["role"], is_ai=False)
    amount = body.get("amount")
    try:
        if kind == "approval.rejected":
            guard.approvals.reject(replayed, approver=person, note="replayed from the ledger")
            return
        if kind == "approval.escalated":
            guard.approvals.escalate(replayed, approver=person, note="replayed from the ledger")
            return
        guard.approvals.approve(
            replayed,
            approver=person,
            note="replayed from the ledger",
            amount=Money.read(amount) if amount else None,
        )
    except (ApprovalError, ProposalError):
        # Not one the candidate lets this person decide (its re-check, their role, the case
        # already decided): what they did does not happen.
        return


def _proposal(recorded: Mapping[str, Any], pack: PolicyPack) -> dict[str, Any]:
    """The recorded proposal, as the candidate should read it.

    When the candidate maps the recorded tool, the fields normalisation filled in from the
    tool's arguments are left out so the candidate's own mapping reads them.
    """
    tool = recorded.get("tool")
    keys: tuple[str, ...] = ("actor", "tool", "rationale", "idempotency_key")
    if not (isinstance(tool, Mapping) and tool.get("name") in pack.tools):
        keys += ("action", "amount", "customer_id", "case_id", "order_id")
    return {key: recorded[key] for key in keys if recorded.get(key) is not None}


def _open(source: SqlStore | str) -> tuple[SqlStore, bool]:
    if isinstance(source, SqlStore):
        return source, False
    return SqlStore(source, create=False), True


def _money_moved(verdict: Verdict, amount: Money | None) -> Money | None:
    return amount if verdict.is_allowed and amount is not None else None


_REPLAY_VARIES = ("discretion.judge.", "discretion.precedent.")
"""Rules a replay cannot reproduce (it calls no judge and holds no precedent): a difference in
them alone is no change of the pack's."""


def _compared(verdict: Verdict) -> frozenset[str]:
    return frozenset(rule for rule in verdict.rules if not rule.startswith(_REPLAY_VARIES))


def _loosens(
    before: Verdict,
    after: Verdict,
    ranks: Mapping[str, int],
    kept: frozenset[str] | None = None,
) -> bool:
    """Whether `after` lets through what `before` did not, or a person fewer decide it.

    `kept`: the candidate's rule ids that never decide who approves (its standard rules,
    reasons, hard limits and budgets); every other lost rule on a route to the same rung may
    have been a second approval or a review naming who approves.
    """
    if after.is_allowed:
        return not before.is_allowed
    if after.outcome != "route":
        return False
    if before.outcome == "deny":
        return True
    if before.outcome != "route":
        return False
    if before.required_role == after.required_role:
        # The same rung without a rule it was routed under: two approvals, or an `only` review
        # naming who may approve, may be gone. That cannot be shown not to loosen it.
        lost = _compared(before) - _compared(after)
        return TWO_APPROVALS in lost or any(
            not rule.startswith("discretion.") and (kept is None or rule not in kept)
            for rule in lost
        )
    was, now = ranks.get(before.required_role or ""), ranks.get(after.required_role or "")
    # A role the candidate cannot rank cannot be shown to be no lower: a gate fails closed.
    return was is None or now is None or now < was


class _Tally:
    def __init__(
        self, ranks: Mapping[str, int] | None = None, kept: frozenset[str] | None = None
    ) -> None:
        self.ranks: Mapping[str, int] = ranks or {}
        self.kept = kept
        self.exposure: dict[tuple[str, str, str], list[Decimal]] = defaultdict(
            lambda: [Decimal(0), Decimal(0)]
        )
        self.transitions: Counter[str] = Counter()
        self.versions: dict[str, None] = {}
        self.changes: list[ReplayChange] = []
        self.count = 0

    def add(self, before_decision: Decision, before: Verdict, after: Verdict) -> None:
        self.count += 1
        self.versions.setdefault(before_decision.policy_version)
        amount = before_decision.amount
        for side, verdict in ((0, before), (1, after)):
            moved = _money_moved(verdict, amount)
            if moved is not None:
                key = (before_decision.action, verdict.reason or STANDARD, moved.currency)
                self.exposure[key][side] += moved.amount
        if (before.outcome, before.required_role, _compared(before)) != (
            after.outcome,
            after.required_role,
            _compared(after),
        ):
            self.transitions[f"{before.label()} -> {after.label()}"] += 1
            use = before_decision.precedents
            self.changes.append(
                ReplayChange(
                    decision_id=before_decision.id,
                    idempotency_key=before_decision.idempotency_key,
                    decided_at=before_decision.decided_at,
                    action=before_decision.action,
                    amount=amount,
                    before=before,
                    after=after,
                    relied_on_precedent=use is not None and use.applied is not None,
                    loosens=_loosens(before, after, self.ranks, self.kept),
                )
            )

    def report(self, name: str, version: str, *, since: datetime | None, mode: str) -> ReplayReport:
        return ReplayReport(
            pack=name,
            version=version,
            recorded_versions=tuple(self.versions),
            since=since,
            replayed=self.count,
            changes=tuple(self.changes),
            exposure=tuple(
                Exposure(action=a, reason=r, currency=c, before=v[0], after=v[1])
                for (a, r, c), v in sorted(self.exposure.items())
            ),
            transitions=dict(sorted(self.transitions.items())),
            mode=mode,
        )


def replay(
    source: SqlStore | str,
    pack: PolicyPack | str | Path,
    *,
    since: datetime | None = None,
    judge: Judge | None = None,
) -> ReplayReport:
    """Re-decide the recorded proposals of a ledger under `pack`; write nothing to it.

    Each proposal is decided at its recorded time on its recorded context snapshot, in order, in
    a scratch ledger: budgets fill as they would have under `pack` (decisions up to one budget
    window before `since` are replayed silently to fill them), and the people who approved a
    case the candidate routes too approve it again at their recorded time and amount, re-checked
    under `pack` (what it would not let them approve moves nothing). A fact `pack` reads that the
    snapshot lacks routes the replayed decision (fail closed) and names the field; decisions
    that applied a precedent are re-decided without it, and say so.

    Args:
        source: the ledger, or its database URL.
        pack: the candidate pack, or its path.
        since: replay decisions made at or after this time only.
        judge: the LLM judge for exceptions `pack` asks one to review (a `ReplayJudge` of the
            recorded verdicts, say); without one, the pack's `judge.without_model` applies.

    Raises:
        LedgerIntegrityError: the ledger does not verify, so its snapshots cannot be trusted.
        StoreError: the ledger cannot be read.
    """
    store, owned = _open(source)
    candidate = pack if isinstance(pack, PolicyPack) else load_pack(pack)
    scratch = SqlStore("sqlite://")
    try:
        store.verify()
        frozen = _Frozen(candidate)
        clock = _Clock()
        counter = itertools.count(1)
        guard = Guard(
            candidate,
            store=scratch,
            context=frozen,
            clock=clock,
            ids=lambda: f"replay_{next(counter):06d}",
            judge=judge,
        )
        warm_from = None
        if since is not None:
            longest = max((b.window for b in candidate.budgets), default=timedelta(0))
            warm_from = since - longest
        kept = frozenset(
            [
                *(
                    rule.id
                    for action in candidate.actions.values()
                    for rule in (*action.standard, *action.exceptions, *action.hard_limits)
                ),
                *(budget.id for budget in candidate.budgets),
            ]
        )
        tally = _Tally({role.id: role.rank for role in candidate.roles}, kept)
        # Recorded routed cases the candidate routes too, by recorded id: the replayed case's
        # id and the facts it was decided on, for the people who approved it.
        routed: dict[str, tuple[str, Mapping[str, Any]]] = {}
        for record in store.records():
            if record.kind in _APPROVED:
                _approve_again(
                    guard,
                    routed,
                    record.kind,
                    record.subject_id,
                    json.loads(record.body),
                    clock,
                    frozen,
                )
                continue
            if record.kind != "decision":
                continue
            body = json.loads(record.body)
            before_decision = Decision.model_validate(body["decision"])
            at = before_decision.decided_at
            if warm_from is not None and at < warm_from:
                continue
            clock.now = at
            frozen.facts = body.get("context") or {}
            try:
                recorded = body["proposal"]
                decided = guard.pipeline.decide(
                    _proposal(recorded, candidate), mapping=recorded_mapping(recorded)
                )
                after = Verdict.of(decided)
                if decided.outcome is Outcome.ROUTE:
                    routed[before_decision.id] = (decided.id, frozen.facts)
            except DiscretionError as exc:
                after = Verdict(outcome="error", detail=f"{type(exc).__name__}: {exc}")
            if since is not None and at < since:
                continue
            tally.add(before_decision, Verdict.of(before_decision), after)
        return tally.report(candidate.name, candidate.version, since=since, mode="replay")
    finally:
        scratch.close()
        if owned:
            store.close()


def shadow_report(source: SqlStore | str, *, since: datetime | None = None) -> ReplayReport:
    """Compare each decision with what the shadow pack recorded it would have decided.

    Reads the `shadow.decision` records a `Guard(..., shadow=...)` appends; writes nothing.

    Raises:
        StoreError: the ledger cannot be read, or holds no shadow decisions.
    """
    store, owned = _open(source)
    try:
        tally = _Tally()
        decisions: dict[str, Decision] = {}
        shadow_pack: tuple[str, str] | None = None
        for record in store.records():
            if record.kind == "decision":
                decision = Decision.model_validate(json.loads(record.body)["decision"])
                if since is None or decision.decided_at >= since:
                    decisions[decision.id] = decision
                continue
            if record.kind != SHADOW_RECORD:
                continue
            before_decision = decisions.pop(record.subject_id, None)
            if before_decision is None:
                continue
            body = json.loads(record.body)
            shadow_pack = (body.get("pack", "?"), body.get("version", "?"))
            if body.get("decision") is not None:
                after = Verdict.of(Decision.model_validate(body["decision"]))
            else:
                after = Verdict(outcome="error", detail=body.get("error"))
            tally.add(before_decision, Verdict.of(before_decision), after)
        if shadow_pack is None:
            raise StoreError(
                "the ledger holds no shadow decisions; run a Guard with shadow=PACK first"
            )
        name, version = shadow_pack
        return tally.report(name, version, since=since, mode="shadow")
    finally:
        if owned:
            store.close()
