"""`Pipeline.decide`: the only place that orders the decision steps.

```
1. normalise         validate; read the tool's arguments through the pack's mapping
2. idempotency       a key already decided returns the same decision, counted once
3. assemble          only the fields the action declares (invariant 6)
4-5. evaluate        hard limits, standard policy, exception reasons, authority
6. precedent         cited or found precedent may stand in for exception authority
7. review            the rationale judges: they can only lower an exception (invariant 2)
8-9. record          budgets reserved and the lineage appended in one transaction (invariant 4)
```

Nothing here refers back to what built the pipeline: a `Guard` holds one, approvals re-check
through it, and a shadow pack decides with one of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple, TypeAlias, TypeVar

from discretion import _telemetry
from discretion.authority import lowest_above, lowest_covering
from discretion.context import ContextProvider, Snapshot
from discretion.decision import Decision, Outcome
from discretion.errors import ContextError, CurrencyMismatch, ProposalError, StoreError
from discretion.money import Money
from discretion.pipeline._assemble import Facts, Resolved, assemble_facts, named
from discretion.pipeline._budgets import (
    BudgetCheck,
    BudgetKeys,
    beyond_approval,
    check_budgets,
    over_budget,
)
from discretion.pipeline._currency import at_rate, mixed_currencies
from discretion.pipeline._evaluate import (
    decided_without,
    entity_faults,
    evaluate,
    past_pending,
    two_approvals,
)
from discretion.pipeline._ledger import CUMULATIVE, LedgerFacts, read_ledger, recorded_keys
from discretion.pipeline._normalise import Normalised, normalise, write_records
from discretion.pipeline._precedent import apply_precedent, take_precedent
from discretion.pipeline._recheck import Recheck, recheck
from discretion.pipeline._record import approval_for, build_decision
from discretion.pipeline._review import Review
from discretion.pipeline._state import Evaluation
from discretion.pipeline._unlocks import cap_assertions
from discretion.policy import ActionPolicy, PolicyPack, Role, ToolSpec
from discretion.precedent import Precedents
from discretion.proposal import Actor, Proposal
from discretion.store import DecisionRecord, DuplicateKey, SqlStore, SqlTransaction, TotalQuery
from discretion.types import Clock, DecisionHook, IdFactory

__all__ = ["Assessment", "Governed", "Pipeline", "RecordHook"]

RecordHook: TypeAlias = Callable[[Normalised, Snapshot, Decision], None]
"""Called after a new decision is committed, with what it was decided on."""

_T = TypeVar("_T")


class Assessment(NamedTuple):
    """What steps 3 to 7 found: the outcome before budgets, and what it was decided on."""

    item: Normalised
    """The proposal, on the view of the pack it was decided on: for a pack with rates, its
    view at the rate the facts hold (`PolicyPack.in_currency`)."""
    snapshot: Snapshot
    evaluation: Evaluation


@dataclass(frozen=True, slots=True, kw_only=True)
class Governed:
    """A decision, and the tool arguments it governed: what the tool must run with."""

    decision: Decision
    arguments: dict[str, Any]
    """The tool call's arguments as normalised (the amount in canonical form); empty without a
    tool call."""


def _governed(item: Normalised, decision: Decision) -> Governed:
    """`decision`, with the arguments its tool runs with: the records' own ids written in."""
    arguments = item.arguments
    if decision.entities and item.mapping is not None:
        arguments = write_records(item.mapping, arguments, decision.entities)
    return Governed(decision=decision, arguments=arguments)


def _read_only(item: Normalised) -> bool:
    """Whether `item` calls a tool the pack lists as read-only, naming no action beside it."""
    tool = item.proposal.tool
    return tool is not None and item.proposal.action is None and item.pack.is_ungoverned(tool.name)


def _unknown_cause(item: Normalised) -> str:
    """Why `item` is not governed: its action is not the pack's, or its tool is not mapped."""
    pack, tool = item.pack, item.proposal.tool
    if tool is not None and item.action_name in pack.actions:
        return (
            f"tool {tool.name!r} is not mapped by pack {pack.name!r}, so its arguments cannot"
            f" be read and it is not decided as {item.action_name!r}; map it under the"
            " action's tools"
        )
    return f"action {item.action_name!r} is not defined by pack {pack.name!r}"


class Pipeline:
    """The decision steps over one pack, store, context provider and set of judges.

    Args:
        pack: the compiled pack.
        store: where decisions, budgets and the lineage are kept.
        context: where facts come from.
        review: the rationale judges (step 7).
        precedents: the precedent on record (step 6).
        clock: the current time as an aware datetime.
        ids: makes decision ids.
    """

    def __init__(
        self,
        pack: PolicyPack,
        *,
        store: SqlStore,
        context: ContextProvider,
        review: Review,
        precedents: Precedents,
        clock: Clock,
        ids: IdFactory,
    ) -> None:
        self.pack = pack
        self.store = store
        self.context = context
        self.review = review
        self.precedents = precedents
        self._clock = clock
        self._ids = ids
        self.observers: list[DecisionHook] = []
        """Called with each newly recorded decision (not with idempotent replays)."""
        self.recorded: list[RecordHook] = []
        """Called with each newly recorded decision and what it was decided on."""

    @property
    def in_process(self) -> bool:
        """Whether a decision waits on nothing outside this process and its database.

        True without an LLM judge and with a context provider that says `in_process` (the
        built-in static, JSON and SQLite providers do).
        """
        return self.review.judge is None and getattr(self.context, "in_process", False)

    @property
    def decides_inline(self) -> bool:
        """Whether async callers decide on their own event loop, with no worker thread.

        True when a decision waits on nothing but an embedded database (`in_process` on a
        SQLite store, `SqlStore.embedded`): the hop to a thread and back cost more than the
        decision itself (see `SqlStore.arun`). The loop then waits its turn for the database's
        write lock while another writer holds it, as a thread would.
        """
        return self.store.embedded and self.in_process

    def now(self) -> datetime:
        """The pipeline's clock, checked to be aware."""
        moment = self._clock()
        if moment.tzinfo is None:
            raise ProposalError("the guard's clock returned a naive datetime; return an aware one")
        return moment

    # 1. validate and normalise
    def normalise(
        self, proposal: Proposal | Mapping[str, Any], *, mapping: ToolSpec | None = None
    ) -> Normalised:
        """Validate a proposal and read what the pack maps from its tool call (step 1).

        Raises:
            ProposalError: naming the field at fault.
        """
        return normalise(self.pack, proposal, mapping=mapping)

    def decide(
        self, proposal: Proposal | Mapping[str, Any], *, mapping: ToolSpec | None = None
    ) -> Decision:
        """Decide a proposal and record the decision before returning it.

        Args:
            proposal: the proposal, or its JSON.
            mapping: how to read the arguments of a tool the pack does not map, for a proposal
                with an explicit action (see `normalise`).

        Raises:
            ProposalError: the proposal is malformed, or its idempotency key was used for a
                different proposal. Nothing is recorded.
            StoreError: the decision could not be recorded; it is not answered.
        """
        return self.govern(proposal, mapping=mapping).decision

    def govern(
        self, proposal: Proposal | Mapping[str, Any], *, mapping: ToolSpec | None = None
    ) -> Governed:
        """`decide`, with the tool arguments the decision governed: what the tool runs with.

        Raises:
            ProposalError, StoreError: as for `decide`.
        """
        with _telemetry.step("decide"):
            with _telemetry.step("normalise"):
                item = self.normalise(proposal, mapping=mapping)
            # 2. idempotency: a key already decided returns the same decision, counted once.
            # The key's unique constraint, met when the decision is recorded, is what makes it
            # exactly once; this early look only saves a retry the LLM judge's call.
            if self.review.judge is not None:
                with _telemetry.step("idempotency"):
                    known = self.store.find_decision(item.proposal.actor.id, item.idempotency_key)
                if known is not None:
                    return _governed(item, self._replay(item, known))
            now = self.now()
            # Across the network, a decision that waits on nothing else reads its totals once,
            # in its transaction under their locks (`_record`). Otherwise they are read first,
            # so neither the judge's call nor the provider's holds the ledger's locks, and read
            # again under the locks. SQLite's write lock is the whole database's: it is taken
            # only once the decision is assessed, and the second read is skipped when no
            # other connection committed (`SqlTransaction.totals`).
            assessed = None if self._assess_locked else self.assess(item, now)
            with _telemetry.step("record"):
                decision = self._record(item, now, assessed)
            return _governed(item, decision)

    @property
    def _assess_locked(self) -> bool:
        """Whether steps 3 to 7 run in the decision's transaction (see `govern`)."""
        return not self.store.embedded and self.in_process

    async def adecide(
        self, proposal: Proposal | Mapping[str, Any], *, mapping: ToolSpec | None = None
    ) -> Decision:
        """`decide` for async callers: see `agovern`."""
        return (await self.agovern(proposal, mapping=mapping)).decision

    async def agovern(
        self, proposal: Proposal | Mapping[str, Any], *, mapping: ToolSpec | None = None
    ) -> Governed:
        """`govern` for async callers.

        A decision that waits on nothing but an embedded database (`decides_inline`) runs on
        the caller's event loop; any other runs in a worker thread, so the loop never waits on
        the network (an LLM judge, a context provider, a database server).
        """
        return await self.arun(self.govern, proposal, mapping=mapping)

    async def arun(self, call: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """`call(*args, **kwargs)` for an async caller, where a decision would run.

        On the caller's event loop when `decides_inline` (see `SqlStore.arun`); else in a
        worker thread, so the loop never waits on the network.
        """
        if self.in_process:
            return await self.store.arun(call, *args, **kwargs)
        return await asyncio.to_thread(call, *args, **kwargs)

    def preview(
        self,
        proposal: Proposal | Mapping[str, Any],
        *,
        mapping: ToolSpec | None = None,
        now: datetime | None = None,
        context: ContextProvider | None = None,
        frozen: Mapping[str, Any] | None = None,
    ) -> Decision:
        """What the pack would decide, without budgets and without recording anything.

        Args:
            proposal: the proposal, or its JSON.
            mapping: see `decide`.
            now: decide as of this time instead of the clock's.
            context: read facts from this provider instead of the pipeline's.
            frozen: the facts another decision recorded: ledger totals are taken from them
                rather than read anew.
        """
        item = self.normalise(proposal, mapping=mapping)
        moment = now if now is not None else self.now()
        item, snapshot, evaluation = self.assess(item, moment, context=context, frozen=frozen)
        return build_decision(
            item.pack,
            item,
            evaluation,
            decision_id=self._ids(),
            context_digest=snapshot.digest,
            now=moment,
        )

    # 3. context
    def assemble(
        self, item: Normalised, now: datetime, *, context: ContextProvider | None = None
    ) -> Facts:
        """The facts the proposal's action reads (step 3), and the records they are about.

        Raises:
            ContextError: the provider failed, or a fact is missing or ill-typed.
        """
        if item.action is None:
            return Facts(snapshot=Snapshot.of({}), resolved=named(item))
        return assemble_facts(item.pack, context or self.context, item, item.action, now).whole()

    # 3-7. context, policy, authority, precedent, judges
    def assess(
        self,
        item: Normalised,
        now: datetime,
        *,
        context: ContextProvider | None = None,
        frozen: Mapping[str, Any] | None = None,
        totals: Callable[[Sequence[TotalQuery]], list[int]] | None = None,
    ) -> Assessment:
        """Steps 3 to 7: the facts, and the outcome they lead to before budgets.

        `frozen`: facts another decision recorded, whose ledger totals stand (see `preview`).
        `totals`: where the ledger's totals are read (the decision's transaction, under their
        locks); the store, unlocked, by default.
        """
        action = item.action
        amount_minor = item.amount.minor if item.amount is not None else 0
        if action is None and _read_only(item):
            # The pack says it runs without a decision: asked anyway, it is allowed, never queued.
            listed = Evaluation(outcome=Outcome.ALLOW, rules=["discretion.ungoverned-tool"])
            return Assessment(item, Snapshot.of({}), listed)
        if action is None:
            # Invariant 1: an unknown tool or action never allows.
            unknown = Evaluation(
                outcome=Outcome.ROUTE,
                rules=["discretion.unknown-action"],
                required_role=self.pack.unknown_role,
                causes=[_unknown_cause(item)],
            )
            if self.pack.unknown_tools == "deny":
                unknown = replace(unknown, outcome=Outcome.DENY, required_role=None)
            return Assessment(item, Snapshot.of({}), unknown)
        try:
            with _telemetry.step("context"):
                facts = assemble_facts(item.pack, context or self.context, item, action, now)
        except ContextError as exc:
            return self._unassembled(item, action, exc, None, now)
        if facts.faults:
            return self._unassembled(item, action, facts.faults[0], facts, now)
        snapshot, resolved = facts.snapshot, facts.resolved
        if item.pack.rates is not None and item.amount is not None:
            priced = at_rate(self.pack, item, snapshot)
            if isinstance(priced, Evaluation):
                return Assessment(item, snapshot, priced)
            item, action = priced, priced.action or action
        if resolved.faults:
            faults = entity_faults(item.pack, action.name, amount_minor, resolved)
            return Assessment(item, snapshot, faults)
        ledger = None
        if action.reads_ledger:
            with _telemetry.step("totals"):
                ledger, unkeyed = read_ledger(
                    totals or self.store.totals,
                    item.pack,
                    item,
                    action,
                    resolved,
                    now,
                    frozen=frozen,
                    facts=snapshot.values,
                )
            snapshot = snapshot.merged(ledger.recorded)
            if ledger.mixed:
                return Assessment(item, snapshot, mixed_currencies(item, ledger))
            if CUMULATIVE in unkeyed:
                return Assessment(
                    item,
                    snapshot,
                    Evaluation(
                        outcome=Outcome.ROUTE,
                        rules=["discretion.cumulative-unkeyed"],
                        required_role=lowest_covering(item.pack, action.name, amount_minor),
                        causes=[
                            f"{action.name} authority is measured per {action.cumulative.per}"  # type: ignore[union-attr]
                            " and the proposal names none, so it cannot be measured"
                        ],
                        resolved=resolved,
                    ),
                )
        evaluation = self._evaluate(item, action, snapshot, resolved, ledger, now)
        # Runs before the write transaction opens: an LLM call never holds the ledger lock.
        with _telemetry.step("judge"):
            evaluation = self.review.apply(
                evaluation,
                action=item.action_name,
                role=item.role,
                rationale=item.proposal.rationale,
                amount=item.amount,
                proposal_digest=item.digest,
                snapshot=snapshot,
                now=now,
            )
        return Assessment(item, snapshot, evaluation)

    def recheck(
        self,
        tx: SqlTransaction,
        *,
        approval_id: str,
        decision: Decision,
        proposal: Mapping[str, Any],
        approver: Actor,
        role: Role,
        amount: Money | None,
        is_edited: bool,
        now: datetime,
    ) -> Recheck:
        """Decide a routed case again, for its approver, before its tool call is queued.

        The same steps as a decision (normalise, assemble, evaluate, budgets) under the current
        pack, on fresh facts, at the approved amount; see `discretion.pipeline._recheck`.

        Raises:
            StaleApproval: it no longer holds (a hard limit, a fact, a spent budget, a revoked
                precedent).
            ApprovalError: the approver's role does not cover it; they may escalate it.
        """
        return recheck(
            self.pack,
            self.context,
            tx,
            approval_id=approval_id,
            decision=decision,
            proposal=proposal,
            approver=approver,
            role=role,
            amount=amount,
            is_edited=is_edited,
            now=now,
        )

    def _unassembled(
        self,
        item: Normalised,
        action: ActionPolicy,
        error: ContextError,
        facts: Facts | None,
        now: datetime,
    ) -> Assessment:
        """A case whose facts could not all be assembled: denied by a hard limit, else routed.

        `facts`: those that could be read (None when the provider failed). A hard limit that
        holds on them denies, the snapshot on record those facts: it would have whatever the
        others said. Otherwise the case routes, nothing assembled on record.
        """
        amount_minor = item.amount.minor if item.amount is not None else 0
        routed = Assessment(
            item,
            Snapshot.of({}),
            Evaluation(
                outcome=Outcome.ROUTE,
                rules=["discretion.context-unavailable"],
                required_role=lowest_covering(item.pack, action.name, amount_minor),
                causes=[str(error)],
                # Money on record in another currency does not come right by waiting: the
                # agent is told in which currency the same proposal can be decided.
                grounds=[
                    f"{error.field} is in {error.currency}: the same proposed in"
                    f" {error.currency} can be decided"
                ]
                if isinstance(error, CurrencyMismatch)
                else [],
            ),
        )
        if facts is None:
            return routed
        if item.pack.rates is not None and item.amount is not None:
            # Limits stated in the base are read at the rate of the proposal's currency, when
            # the rate is among the facts that could be read.
            priced = at_rate(self.pack, item, facts.snapshot)
            if isinstance(priced, Evaluation):
                # Not measurable in the pack's base: it goes where no limit is needed. A rate
                # that could not be read is the fact missing; one read and unusable (or the
                # rate of another currency) says so.
                if facts.snapshot.values.get(item.pack.rates.fact) is None:
                    routed.evaluation.required_role = priced.required_role
                    return routed
                priced.causes = [*priced.causes, *routed.evaluation.causes]
                return Assessment(item, Snapshot.of({}), priced)
            item, action = priced, priced.action or action
            amount_minor = item.amount.minor if item.amount is not None else 0
        decided = decided_without(
            item.pack,
            action,
            role=item.role,
            actor_is_ai=item.proposal.actor.is_ai,
            actor_id=item.proposal.actor.id,
            amount_minor=amount_minor,
            facts=facts.snapshot.cel_values(action.reads),
            unreadable=facts.unreadable,
            unnamed=facts.unnamed,
            now=now,
            args=item.cel_args(),
            cited_reason=item.proposal.rationale.reason,
        )
        if not isinstance(decided, Evaluation):
            if decided is not None:
                # A review only its role decides still holds on what could be read.
                routed.evaluation.required_role = decided
            return routed
        denied = decided
        denied.causes.append(str(error))
        denied.resolved = facts.resolved
        return Assessment(item, facts.snapshot, denied)

    def _evaluate(
        self,
        item: Normalised,
        action: ActionPolicy,
        snapshot: Snapshot,
        resolved: Resolved,
        ledger: LedgerFacts | None,
        now: datetime,
    ) -> Evaluation:
        """Steps 4 to 6: the pack, authority (on the whole, when measured so), precedent.

        Precedent and assertion caps are measured as authority is: on the whole, when the
        action measures it cumulatively, so a split does not unlock piece by piece what the
        whole could not.
        """
        prior = ledger.prior_minor if ledger is not None else 0
        with _telemetry.step("policy"):
            evaluation = evaluate(
                item.pack,
                action,
                role=item.role,
                actor_is_ai=item.proposal.actor.is_ai,
                actor_id=item.proposal.actor.id,
                amount_minor=item.amount.minor if item.amount is not None else 0,
                cited_reason=item.proposal.rationale.reason,
                facts=snapshot.cel_values(action.reads),
                now=now,
                prior_minor=prior,
                shown=snapshot.values,
                args=item.cel_args(),
            )
        evaluation.resolved = resolved
        evaluation.ledger = ledger
        with _telemetry.step("precedent"):
            evaluation = apply_precedent(
                item.pack, self.precedents, item, snapshot, evaluation, now, prior_minor=prior
            )
        whole = (item.amount.minor if item.amount is not None else 0) + prior
        if item.pack.asserted:
            # An allowed case resting on an assertion above what it unlocks goes to a person.
            evaluation = cap_assertions(
                item.pack,
                evaluation,
                action=item.action_name,
                role=item.role,
                amount_minor=whole,
                facts=snapshot.values,
                call_minor=item.amount.minor if item.amount is not None else 0,
            )
        if item.amount is None:
            return evaluation
        # Two people above the amount on the whole, whoever granted its pieces (`WHOLE`).
        everyone = ledger.whole_minor if ledger is not None else prior
        return two_approvals(
            item.pack,
            action,
            evaluation,
            item.amount.minor + everyone,
            authority_minor=whole,
            actor=item.role,
        )

    def _settle(
        self,
        tx: SqlTransaction,
        item: Normalised,
        snapshot: Snapshot,
        evaluation: Evaluation,
        now: datetime,
    ) -> tuple[Snapshot, Evaluation]:
        """The ledger's totals read again under their locks; a change is decided anew here.

        Between the first read and this transaction another decision may have been recorded on
        the same record. Steps 4 to 6 are code and run again on the fresh totals. The judges ran
        on the first: an exception they did not review as it now stands goes to a person.
        """
        ledger = evaluation.ledger
        if ledger is None or evaluation.resolved is None or item.action is None:
            return snapshot, evaluation
        fresh = ledger.again(tx.totals)
        if not ledger.moved(fresh):
            return snapshot, evaluation
        snapshot = snapshot.merged(fresh.recorded)
        if fresh.mixed:
            return snapshot, mixed_currencies(item, fresh)
        again = self._evaluate(item, item.action, snapshot, evaluation.resolved, fresh, now)
        # Claims checked on every decision are checked on the outcome as it now stands.
        again = self.review.check_claims(
            again,
            action=item.action_name,
            role=item.role,
            rationale=item.proposal.rationale,
            amount=item.amount,
            snapshot=snapshot,
        )
        if again.outcome is Outcome.ALLOW_EXCEPTION and not (
            evaluation.outcome is Outcome.ALLOW_EXCEPTION and again.reason is evaluation.reason
        ):
            return snapshot, replace(
                again,
                outcome=Outcome.ROUTE,
                rules=[*again.rules, "discretion.ledger-moved"],
                required_role=lowest_above(
                    item.pack,
                    item.action_name,
                    item.role,
                    again.reason,
                    item.amount.minor if item.amount is not None else 0,
                ),
                causes=[
                    *again.causes,
                    "what was allowed on the same record changed while it was decided",
                ],
            )
        return snapshot, replace(again, judge=again.judge or evaluation.judge)

    @staticmethod
    def _past_pending(tx: SqlTransaction, item: Normalised, evaluation: Evaluation) -> Evaluation:
        """A routed piece of a split, raised past the pieces still pending on its record.

        Read only for a route whose action measures cumulative authority, in the decision's
        transaction, so an allow pays nothing for it.
        """
        ledger, action = evaluation.ledger, item.action
        if ledger is None or action is None or item.amount is None:
            return evaluation
        query = ledger.pending_query
        if query is None or evaluation.required_role is item.pack.top_for(action.name):
            return evaluation
        (pending,) = tx.totals([query])
        return past_pending(
            item.pack, action, evaluation, item.amount.minor + ledger.prior_minor, pending or 0
        )

    def _replay(self, item: Normalised, known: Decision) -> Decision:
        if known.proposal_digest != item.digest:
            raise ProposalError(
                f"idempotency_key: {item.idempotency_key!r} was already used for a different"
                f" proposal (decision {known.id}); use a new key for a new proposal",
                field="idempotency_key",
            )
        return known

    # 8-9. budgets and lineage, in one transaction
    def _record(self, item: Normalised, now: datetime, assessed: Assessment | None) -> Decision:
        """Steps 8 and 9: budgets and the lineage, in one transaction.

        With `assessed` None, steps 3 to 7 run first in the same transaction, the ledger's
        totals read under their locks (see `govern`).
        """
        try:
            # A key decided before, or by another process while we evaluated, fails the
            # decision's insert (`DuplicateKey`): everything written is rolled back and the
            # recorded decision returned. Looking the key up first would cost every decision a
            # round trip to save a rare retry some work.
            with self.store.transaction() as tx:
                if assessed is None:
                    item, snapshot, evaluation = self.assess(item, now, totals=tx.totals)
                else:
                    item, snapshot, evaluation = assessed
                    snapshot, evaluation = self._settle(tx, item, snapshot, evaluation, now)
                pack = item.pack
                keys = BudgetKeys(
                    resolved=evaluation.resolved or named(item),
                    actor_id=item.proposal.actor.id,
                    role=item.role,
                    facts=snapshot.values,
                    args=item.args,
                )

                def budgets(outcome: Outcome, amount_minor: int | None = None) -> BudgetCheck:
                    if amount_minor is None:
                        amount_minor = item.amount.minor if item.amount is not None else 0
                    return check_budgets(
                        pack,
                        tx,
                        action=item.action_name,
                        outcome=outcome,
                        amount_minor=amount_minor,
                        now=now,
                        keys=keys,
                    )

                if evaluation.outcome is Outcome.ROUTE:
                    evaluation = self._past_pending(tx, item, evaluation)
                check = budgets(evaluation.outcome)
                if check.exceeded and evaluation.outcome is not Outcome.DENY:
                    evaluation = over_budget(pack, evaluation, check, item.role, item.action_name)
                    check = budgets(evaluation.outcome)
                if evaluation.outcome is Outcome.ROUTE:
                    # Its approval counts against budgets a route does not: one with no room
                    # left sends it now to whoever may approve beyond it.
                    evaluation = beyond_approval(
                        pack, evaluation, budgets, item.role, item.action_name
                    )
                    if evaluation.outcome is not Outcome.ROUTE:
                        check = budgets(evaluation.outcome)
                taken = take_precedent(self.precedents, tx, evaluation, now)
                if taken is not evaluation:
                    evaluation = taken
                    check = budgets(evaluation.outcome)
                decision = build_decision(
                    pack,
                    item,
                    evaluation,
                    decision_id=self._ids(),
                    context_digest=snapshot.digest,
                    now=now,
                    reservations=check.reservations,
                )
                record = DecisionRecord(
                    decision=decision,
                    proposal=item.record(),
                    context=dict(snapshot.data),
                    context_json=snapshot.canonical,
                    keys=recorded_keys(pack, item),
                )
                # A route's approval (the decision's id) commits with the decision or not at all,
                # bound to the decision's record.
                opens = (
                    approval_for(pack, decision, record.proposal)
                    if decision.outcome is Outcome.ROUTE
                    else None
                )
                recorded = tx.append(record, opens=opens, last=True)
        except DuplicateKey as exc:
            known = self.store.find_decision(item.proposal.actor.id, item.idempotency_key)
            if known is None:
                # A constraint other than the idempotency key failed: nothing was recorded.
                raise StoreError(f"the decision could not be recorded: {exc.__cause__}") from exc
            return self._replay(item, known)
        for hook in self.recorded:
            hook(item, snapshot, recorded)
        _telemetry.decided(recorded, self.observers)
        return recorded
