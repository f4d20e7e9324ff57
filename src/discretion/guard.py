"""`Guard.decide`: the only place that orders the pipeline steps.

1. validate and normalise        5. authority
2. idempotency                   6. precedent (when cited or found)
3. assemble context              7. rationale judges
4. evaluate the pack             8-9. reserve budgets and append the lineage, in one transaction
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discretion import _telemetry
from discretion._explain import explain
from discretion._similar import SimilarDecision, similar_decisions
from discretion.approvals import Approvals
from discretion.authority import lowest_above, lowest_covering
from discretion.budget import BudgetCheck, check_budgets
from discretion.context import ContextProvider, ContextRequest, Snapshot, StaticContextProvider
from discretion.context import assemble as assemble_context
from discretion.decision import Decision, Outcome, PrecedentUse
from discretion.errors import ContextError, ProposalError, StoreError
from discretion.execution import Executions
from discretion.judge import Judge
from discretion.judge._review import Review
from discretion.lineage import digest
from discretion.money import Money
from discretion.policy._evaluate import Evaluation, evaluate
from discretion.policy.pack import ActionPolicy, Budget, PolicyPack, Role, load_pack
from discretion.precedent import Failure, Precedents
from discretion.precedent import check as check_precedent
from discretion.proposal import Proposal, argument_at
from discretion.shadow import Shadow
from discretion.store import DecisionRecord, DuplicateKey, SqlStore
from discretion.types import Clock, DecisionHook, IdFactory, utc_now

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from discretion.integrations._call import ActorSource, RationaleSource, TextSource
    from discretion.integrations._decorator import _Decorator

__all__ = ["Guard", "Normalised"]


def _new_id() -> str:
    return f"dec_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Normalised:
    """A proposal with every field the pack reads from the tool's arguments filled in."""

    proposal: Proposal
    action: ActionPolicy | None
    """None when the tool or action is not governed by the pack."""
    action_name: str
    role: Role
    amount: Money | None
    customer_id: str | None
    case_id: str | None
    order_id: str | None
    content: dict[str, Any]
    """The normalised proposal as JSON: what `digest` covers."""
    digest: str
    idempotency_key: str

    def record(self) -> dict[str, Any]:
        """The proposal as the lineage records it: its digested content and its key."""
        return {**self.content, "idempotency_key": self.idempotency_key}


class Guard:
    """Decides proposals against a policy pack and records every decision.

    Example:
        ```python
        guard = Guard(load_pack("acme/pack"), store=SqlStore("sqlite:///discretion.db"),
                      context=SqliteCaseStore.open("cases.db"))
        decision = guard.decide(proposal)
        if decision.is_allowed:
            run_the_tool()
        ```

    Args:
        pack: a loaded pack, or the path of one.
        store: where decisions are recorded; a store URL; an in-memory SQLite store when absent.
        context: where facts come from; no facts when absent (every fact a rule needs routes).
        clock: the current time as an aware datetime; inject one in tests.
        ids: makes decision ids.
        on_decision: called with each newly recorded decision (not with idempotent replays).
        judge: the LLM judge (`discretion.judge.OpenAIJudge`, ...) for the exceptions the pack
            asks it to review; it can only lower them to a route. The grounded judge, which
            checks the rationale's claims against the facts, always runs.
        shadow: a candidate pack (or its path) to decide in shadow beside `pack`: each new
            decision gets a `shadow.decision` record of what the candidate would have decided,
            and never changes (see `discretion.shadow`).
    """

    def __init__(
        self,
        pack: PolicyPack | str | Path,
        *,
        store: SqlStore | str | None = None,
        context: ContextProvider | None = None,
        clock: Clock | None = None,
        ids: IdFactory | None = None,
        on_decision: DecisionHook | None = None,
        judge: Judge | None = None,
        shadow: PolicyPack | str | Path | None = None,
    ) -> None:
        self.pack = pack if isinstance(pack, PolicyPack) else load_pack(pack)
        self.store: SqlStore = (
            SqlStore(store or "sqlite://") if store is None or isinstance(store, str) else store
        )
        self.context: ContextProvider = context or StaticContextProvider()
        self._clock = clock or utc_now
        self._ids = ids or _new_id
        self._on_decision = on_decision
        self.observers: list[DecisionHook] = []
        """Called with each newly recorded decision after `on_decision` (metrics, ...)."""
        self.shadow = Shadow(shadow) if shadow is not None else None
        """The candidate pack decided in shadow, if any."""
        self._review = Review(self.pack, store=self.store, judge=judge)
        self.precedents = Precedents(self.store, self.pack, clock=self.now)
        """Citable precedent: set, find, revoke."""
        self.executions = Executions(self.store, clock=self.now)
        """Exactly-once execution of governed tool calls, and the outbox of approved ones."""
        self.approvals = Approvals(self)
        """The queue of routed decisions waiting for a person: approve, reject, escalate."""

    @property
    def in_process(self) -> bool:
        """Whether a decision waits on nothing outside this process and its database.

        True without an LLM judge and with a context provider that says `in_process` (the
        built-in static, JSON and SQLite providers do).
        """
        return self._review.judge is None and getattr(self.context, "in_process", False)

    def now(self) -> datetime:
        """The guard's clock, checked to be aware."""
        moment = self._clock()
        if moment.tzinfo is None:
            raise ProposalError("the guard's clock returned a naive datetime; return an aware one")
        return moment

    # 1. validate and normalise
    def normalise(self, proposal: Proposal | Mapping[str, Any]) -> Normalised:
        """Validate a proposal and fill in what the pack reads from the tool's arguments.

        Raises:
            ProposalError: naming the field at fault.
        """
        proposal = Proposal.parse(proposal)
        pack = self.pack
        role = pack.role(proposal.actor.role)
        if role is None:
            raise ProposalError(
                f"actor.role: {proposal.actor.role!r} is not a role of pack {pack.name!r};"
                f" roles: {', '.join(r.id for r in pack.roles)}",
                field="actor.role",
            )
        if role.is_ai != proposal.actor.is_ai:
            kind = "an AI" if proposal.actor.is_ai else "a person"
            raise ProposalError(
                f"actor: {proposal.actor.id!r} is {kind} but role {role.id!r} is"
                f" {'an AI' if role.is_ai else 'a human'} role",
                field="actor.is_ai",
            )
        arguments: Mapping[str, Any] = proposal.tool.arguments if proposal.tool else {}
        tool_spec = None
        action_name = proposal.action
        if proposal.tool is not None:
            mapped = pack.tools.get(proposal.tool.name)
            if mapped is not None:
                tool_action, tool_spec = mapped
                if action_name is not None and action_name != tool_action:
                    raise ProposalError(
                        f"action: {action_name!r} disagrees with tool {proposal.tool.name!r},"
                        f" which performs {tool_action!r}",
                        field="action",
                    )
                action_name = tool_action
        if action_name is None:
            action_name = proposal.tool.name if proposal.tool is not None else ""
            if not action_name:
                raise ProposalError("a proposal needs an action or a tool call", field="action")
        action = pack.actions.get(action_name)

        def pick(field: str, given: str | None, path: str | None) -> str | None:
            raw = argument_at(arguments, path) if path else None
            found = str(raw) if raw is not None and not isinstance(raw, (dict, list)) else None
            if given is not None and found is not None and given != found:
                raise ProposalError(
                    f"{field}: {given!r} disagrees with the tool argument {path!r} ({found!r})",
                    field=field,
                )
            return given if given is not None else found

        customer_id = pick(
            "customer_id", proposal.customer_id, tool_spec.customer if tool_spec else None
        )
        case_id = pick("case_id", proposal.case_id, tool_spec.case if tool_spec else None)
        order_id = pick("order_id", proposal.order_id, tool_spec.order if tool_spec else None)
        amount = proposal.amount
        if tool_spec is not None and tool_spec.amount is not None:
            raw_amount = argument_at(arguments, tool_spec.amount)
            if raw_amount is not None:
                raw_currency = (
                    argument_at(arguments, tool_spec.currency) if tool_spec.currency else None
                )
                currency = raw_currency if raw_currency is not None else pack.currency
                try:
                    from_tool = Money.of(raw_amount, currency)
                except ProposalError as exc:
                    raise ProposalError(
                        f"tool argument {tool_spec.amount!r}: {exc}", field=exc.field
                    ) from None
                if amount is not None and amount != from_tool:
                    raise ProposalError(
                        f"amount: {amount} disagrees with the tool's {from_tool}", field="amount"
                    )
                amount = from_tool
        if action is not None:
            if amount is None:
                raise ProposalError(
                    f"amount: action {action_name!r} moves money but no amount was given"
                    + (
                        f" (tool argument {tool_spec.amount!r})"
                        if tool_spec and tool_spec.amount
                        else ""
                    ),
                    field="amount",
                )
            if amount.currency != pack.currency:
                raise ProposalError(
                    f"currency: {amount.currency} does not match the pack's currency"
                    f" {pack.currency}; convert before proposing",
                    field="currency",
                )
        content = {
            "actor": proposal.actor.model_dump(mode="json"),
            "action": action_name,
            "tool": proposal.tool.model_dump(mode="json") if proposal.tool else None,
            "amount": amount.to_json() if amount is not None else None,
            "customer_id": customer_id,
            "case_id": case_id,
            "order_id": order_id,
            "rationale": proposal.rationale.model_dump(mode="json"),
        }
        proposal_digest = digest(content)
        key = proposal.idempotency_key or f"auto:{proposal_digest[:40]}"
        return Normalised(
            proposal=proposal,
            action=action,
            action_name=action_name,
            role=role,
            amount=amount,
            customer_id=customer_id,
            case_id=case_id,
            order_id=order_id,
            content=content,
            digest=proposal_digest,
            idempotency_key=key,
        )

    def decide(self, proposal: Proposal | Mapping[str, Any]) -> Decision:
        """Decide a proposal and record the decision before returning it.

        Raises:
            ProposalError: the proposal is malformed, or its idempotency key was used for a
                different proposal. Nothing is recorded.
            StoreError: the decision could not be recorded; it is not answered.
        """
        with _telemetry.step("decide"):
            with _telemetry.step("normalise"):
                item = self.normalise(proposal)
            # 2. idempotency: a key already decided returns the same decision, counted once.
            # The key's unique constraint, met when the decision is recorded, is what makes it
            # exactly once; this early look only saves a retry the LLM judge's call.
            if self._review.judge is not None:
                with _telemetry.step("idempotency"):
                    known = self.store.find_decision(item.idempotency_key)
                if known is not None:
                    return self._replay(item, known)
            now = self.now()
            snapshot, evaluation = self._evaluate(item, now)
            with _telemetry.step("record"):
                return self._record(item, snapshot, evaluation, now)

    async def adecide(self, proposal: Proposal | Mapping[str, Any]) -> Decision:
        """`decide` for async callers; the store and providers run in a worker thread."""
        return await asyncio.to_thread(self.decide, proposal)

    def preview(self, proposal: Proposal | Mapping[str, Any]) -> Decision:
        """What the pack would decide now, without budgets and without recording anything."""
        item = self.normalise(proposal)
        now = self.now()
        snapshot, evaluation = self._evaluate(item, now)
        return self._build(item, snapshot, evaluation, now, reservations=())

    def similar(
        self, subject: Decision | Proposal | Mapping[str, Any], *, limit: int = 5
    ) -> list[SimilarDecision]:
        """The past decisions most like `subject`: same action and reason, nearest facts.

        For approvers weighing a case: how were like cases decided? A proposal's facts are
        assembled now; a decision's are the ones it was decided on.

        Raises:
            ContextError: a proposal's facts could not be assembled.
        """
        if isinstance(subject, Decision):
            body = self.store.decision_body(subject.id)
            if body is None:
                raise ProposalError(f"decision {subject.id!r} is not on record", field="id")
            action, reason = subject.action, subject.reason
            context, amount, exclude = body.get("context", {}), subject.amount, subject.id
        else:
            item = self.normalise(subject)
            if item.action is None:
                return []
            snapshot = self._assemble(item, item.action, self.now())
            action, reason = item.action_name, item.proposal.rationale.reason
            context, amount, exclude = dict(snapshot.data), item.amount, None
        policy = self.pack.actions.get(action)
        return similar_decisions(
            self.store,
            action=action,
            reason=reason,
            context=context,
            fields=policy.reads if policy is not None else tuple(context),
            amount=amount,
            exclude=exclude,
            limit=limit,
        )

    def _replay(self, item: Normalised, known: Decision) -> Decision:
        if known.proposal_digest != item.digest:
            raise ProposalError(
                f"idempotency_key: {item.idempotency_key!r} was already used for a different"
                f" proposal (decision {known.id}); use a new key for a new proposal",
                field="idempotency_key",
            )
        return known

    # 3. context: only the fields the pack declares for the action (invariant 6)
    def _assemble(self, item: Normalised, action: ActionPolicy, now: datetime) -> Snapshot:
        request = ContextRequest(
            fields=action.reads,
            action=action.name,
            customer_id=item.customer_id,
            case_id=item.case_id,
            order_id=item.order_id,
            now=now,
            currency=item.amount.currency if item.amount is not None else None,
            arguments=item.proposal.tool.arguments if item.proposal.tool else {},
        )
        return assemble_context(self.context, request, self.pack.fields, currency=request.currency)

    # 3-7. context, policy, authority
    def _evaluate(self, item: Normalised, now: datetime) -> tuple[Snapshot, Evaluation]:
        action = item.action
        amount_minor = item.amount.minor if item.amount is not None else 0
        if action is None:
            # Invariant 1: an unknown tool or action never allows.
            return Snapshot.of({}), Evaluation(
                outcome=Outcome.ROUTE,
                rules=["discretion.unknown-action"],
                required_role=self.pack.highest_human,
                causes=[f"action {item.action_name!r} is not defined by pack {self.pack.name!r}"],
            )
        try:
            with _telemetry.step("context"):
                snapshot = self._assemble(item, action, now)
        except ContextError as exc:
            causes = [str(exc)]
            return Snapshot.of({}), Evaluation(
                outcome=Outcome.ROUTE,
                rules=["discretion.context-unavailable"],
                required_role=lowest_covering(self.pack, action.name, amount_minor),
                causes=causes,
            )
        with _telemetry.step("policy"):
            evaluation = evaluate(
                self.pack,
                action,
                role=item.role,
                actor_is_ai=item.proposal.actor.is_ai,
                amount_minor=amount_minor,
                cited_reason=item.proposal.rationale.reason,
                facts=snapshot.cel_values(),
                now=now,
            )
        # 6. precedent: cited or found precedents may extend the actor's exception authority.
        with _telemetry.step("precedent"):
            evaluation = self._precedent(item, snapshot, evaluation, now)
        # 7. rationale judges: they can only lower an exception to a route (invariant 2).
        with _telemetry.step("judge"):
            evaluation = self._judge(item, snapshot, evaluation, now)
        return snapshot, evaluation

    def _precedent(
        self, item: Normalised, snapshot: Snapshot, evaluation: Evaluation, now: datetime
    ) -> Evaluation:
        cited = item.proposal.rationale.precedents
        # A precedent can only stand in for the actor's exception authority: the cited reason's
        # preconditions hold and no hard limit fired, but the actor may not grant this much.
        extendable = (
            evaluation.outcome is Outcome.ROUTE
            and "discretion.exception-authority" in evaluation.rules
            and evaluation.reason is not None
            and item.amount is not None
        )
        if not cited and not extendable:
            return evaluation
        reason_id = item.proposal.rationale.reason
        amount = item.amount or self.pack.money(0)
        known = self.precedents.load(cited)
        if extendable and reason_id is not None:
            for found in self.precedents.find(
                action=item.action_name,
                reason=reason_id,
                snapshot=snapshot,
                amount=amount,
                now=now,
            ):
                known.setdefault(found.id, found)
        considered = list(dict.fromkeys([*cited, *known]))
        failed: dict[str, list[Failure]] = {
            pid: [Failure("discretion.precedent.unknown", f"precedent {pid}: not on record")]
            for pid in cited
            if pid not in known
        }
        for pid, precedent in known.items():
            failures = check_precedent(
                precedent,
                action=item.action_name,
                reason=reason_id,
                facts=snapshot.values,
                amount=amount,
                now=now,
            )
            if failures:
                failed[pid] = failures
        applicable = [pid for pid in considered if pid not in failed]
        use = PrecedentUse(
            cited=list(cited),
            considered=considered,
            applicable=applicable,
            failed={pid: sorted({f.rule for f in fs}) for pid, fs in failed.items()},
        )
        bad_citations = [pid for pid in cited if pid in failed]
        if bad_citations:
            # Citing a precedent that does not apply routes: a person decides (fail closed).
            rules = sorted({f.rule for pid in bad_citations for f in failed[pid]})
            causes = [f.detail for pid in bad_citations for f in failed[pid]]
            changes: dict[str, Any] = {
                "rules": [*evaluation.rules, "discretion.precedent.cited-not-applicable", *rules],
                "causes": [*evaluation.causes, *causes],
                "precedents": use,
            }
            if evaluation.outcome is Outcome.DENY:
                return replace(evaluation, **changes)
            return replace(
                evaluation,
                outcome=Outcome.ROUTE,
                # The lowest person who could decide it without the precedent cited.
                required_role=evaluation.required_role
                or lowest_above(
                    self.pack,
                    item.action_name,
                    item.role,
                    evaluation.reason,
                    item.amount.minor if item.amount is not None else 0,
                ),
                **changes,
            )
        if not extendable or not applicable:
            return replace(evaluation, precedents=use)
        # The actor's citations first, then the found precedent that expires soonest.
        ordered = [pid for pid in cited if pid in applicable] + sorted(
            (pid for pid in applicable if pid not in cited),
            key=lambda pid: (known[pid].expires_at, pid),
        )
        chosen = known[ordered[0]]
        return replace(
            evaluation,
            outcome=Outcome.ALLOW_EXCEPTION,
            rules=[
                *(r for r in evaluation.rules if r != "discretion.exception-authority"),
                "discretion.precedent.applied",
            ],
            required_role=None,
            precedents=use.model_copy(update={"applied": chosen.id}),
            notes=[
                *evaluation.notes,
                f"precedent {chosen.id}, set by a {chosen.grantor_role}, covers this case",
            ],
            fallback=replace(evaluation, precedents=use),
        )

    def _judge(
        self, item: Normalised, snapshot: Snapshot, evaluation: Evaluation, now: datetime
    ) -> Evaluation:
        # Runs before the write transaction opens: an LLM call never holds the ledger lock.
        return self._review.apply(
            evaluation,
            action=item.action_name,
            role=item.role,
            rationale=item.proposal.rationale,
            amount=item.amount,
            proposal_digest=item.digest,
            snapshot=snapshot,
            now=now,
        )

    # 8-9. budgets and lineage, in one transaction
    def _record(
        self, item: Normalised, snapshot: Snapshot, evaluation: Evaluation, now: datetime
    ) -> Decision:
        amount_minor = item.amount.minor if item.amount is not None else 0
        try:
            # A key decided before, or by another process while we evaluated, fails the
            # decision's insert (`DuplicateKey`): everything written is rolled back and the
            # recorded decision returned. Looking the key up first would cost every decision a
            # round trip to save a rare retry some work.
            with self.store.transaction() as tx:

                def budgets(outcome: Outcome) -> BudgetCheck:
                    return check_budgets(
                        self.pack,
                        tx,
                        action=item.action_name,
                        outcome=outcome,
                        amount_minor=amount_minor,
                        now=now,
                        customer_id=item.customer_id,
                        actor_id=item.proposal.actor.id,
                        case_id=item.case_id,
                    )

                check = budgets(evaluation.outcome)
                if check.exceeded and evaluation.outcome is not Outcome.DENY:
                    evaluation = self._over_budget(evaluation, check.exceeded, check.causes)
                    check = budgets(evaluation.outcome)
                applied = evaluation.precedents.applied if evaluation.precedents else None
                if applied is not None and not self.precedents.consume(tx, applied, now=now):
                    # Another decision took the last citation first: what stands without it.
                    evaluation = self._without_precedent(evaluation, applied)
                    check = budgets(evaluation.outcome)
                decision = self._build(
                    item, snapshot, evaluation, now, reservations=check.reservations
                )
                record = DecisionRecord(
                    decision=decision,
                    proposal=item.record(),
                    context=dict(snapshot.data),
                    customer_id=item.customer_id,
                    case_id=item.case_id,
                )
                recorded = tx.append(record)
                if recorded.outcome is Outcome.ROUTE:
                    # The approval (the decision's id) commits with the decision or not at all.
                    self.approvals.open(tx, recorded, proposal=record.proposal)
        except DuplicateKey as exc:
            known = self.store.find_decision(item.idempotency_key)
            if known is None:
                # A constraint other than the idempotency key failed: nothing was recorded.
                raise StoreError(f"the decision could not be recorded: {exc.__cause__}") from exc
            return self._replay(item, known)
        if self.shadow is not None:
            self.shadow.observe(self, item.proposal, snapshot, recorded)
        if self._on_decision is not None:
            self._on_decision(recorded)
        _telemetry.decided(recorded, self.observers)
        return recorded

    def _without_precedent(self, evaluation: Evaluation, applied: str) -> Evaluation:
        fallback = evaluation.fallback or evaluation
        use = fallback.precedents or PrecedentUse()
        return replace(
            fallback,
            precedents=use.model_copy(
                update={
                    "applicable": [p for p in use.applicable if p != applied],
                    "failed": {**use.failed, applied: ["discretion.precedent.exhausted"]},
                }
            ),
            causes=[*fallback.causes, f"precedent {applied}: its last citation was just taken"],
        )

    def _over_budget(
        self, evaluation: Evaluation, exceeded: tuple[Budget, ...], causes: tuple[str, ...]
    ) -> Evaluation:
        changes: dict[str, Any] = {
            "rules": [*evaluation.rules, *(b.id for b in exceeded)],
            "causes": [*evaluation.causes, *causes, *(b.message for b in exceeded if b.message)],
            "notes": [*evaluation.notes, "a budget for this kind of exposure is used up"],
            # A precedent only counts as used when the exception it justified stands.
            "precedents": evaluation.precedents.model_copy(update={"applied": None})
            if evaluation.precedents is not None
            else None,
        }
        if any(b.on_exceed == "deny" for b in exceeded):
            return replace(evaluation, outcome=Outcome.DENY, required_role=None, **changes)
        targets = [self.pack.role(b.route_to) or self.pack.highest_human for b in exceeded]
        if evaluation.required_role is not None:
            targets.append(evaluation.required_role)
        required = max(targets, key=lambda r: r.rank)
        return replace(evaluation, outcome=Outcome.ROUTE, required_role=required, **changes)

    def _build(
        self,
        item: Normalised,
        snapshot: Snapshot,
        evaluation: Evaluation,
        now: datetime,
        *,
        reservations: tuple[Any, ...],
    ) -> Decision:
        required = evaluation.required_role.id if evaluation.required_role is not None else None
        return Decision(
            id=self._ids(),
            idempotency_key=item.idempotency_key,
            outcome=evaluation.outcome,
            action=item.action_name,
            actor_id=item.proposal.actor.id,
            actor_role=item.role.id,
            amount=item.amount,
            rules=evaluation.rules,
            reason=evaluation.reason.id if evaluation.reason is not None else None,
            required_role=required,
            explanation=explain(
                outcome=evaluation.outcome,
                action=item.action_name,
                amount=item.amount,
                rules=evaluation.rules,
                deciding=evaluation.deciding,
                required_role=required,
                extra=evaluation.notes,
            ),
            causes=evaluation.causes,
            reservations=list(reservations),
            precedents=evaluation.precedents,
            judge=evaluation.judge,
            context_digest=snapshot.digest,
            proposal_digest=item.digest,
            policy_version=self.pack.version,
            decided_at=now,
        )

    # Agent integrations: thin doors to discretion.integrations.
    def wrap_tools(
        self,
        tools: Sequence[BaseTool],
        *,
        actor: ActorSource = None,
        case_id: TextSource = None,
        customer_id: TextSource = None,
        rationale: RationaleSource = None,
    ) -> list[BaseTool]:
        """Govern langchain-core tools: each call is decided before the tool runs.

        Tools the pack governs come back as `GovernedTool`s with the same name, description and
        argument schema; the others come back untouched. An allowed call runs the tool once
        per tool-call id (a retried or resumed call returns the first result); a routed call
        returns a `ToolMessage` with the approval id, a denied one an error `ToolMessage`.
        Needs the `langchain` extra.

        Example:
            ```python
            tools = guard.wrap_tools([issue_refund, lookup_order], actor=bot)
            agent = create_agent(model, tools)
            ```

        Args:
            tools: langchain-core tools.
            actor: who proposes the calls: an `Actor`, or a callable given the
                `ToolCallInfo`; by default the run's `configurable["discretion_actor"]`.
            case_id: the support case, when the tools' arguments do not carry it.
            customer_id: the customer, when the tools' arguments do not carry it.
            rationale: why; by default the tool's own `reason` and `rationale` arguments.
        """
        from discretion.integrations._langchain import wrap_tools

        return wrap_tools(
            self,
            tools,
            actor=actor,
            case_id=case_id,
            customer_id=customer_id,
            rationale=rationale,
        )

    def governed(
        self,
        *,
        action: str | None = None,
        tool: str | None = None,
        actor: ActorSource = None,
        case_id: TextSource = None,
        customer_id: TextSource = None,
        rationale: RationaleSource = None,
        fields: Mapping[str, str] | None = None,
    ) -> _Decorator:
        """Govern a plain Python function (sync or async): decide each call before it runs.

        An allowed call runs once per key and returns what the function returns; a denied call
        raises `CallDenied`, a routed one `CallRouted` (with `.approval_id`); both carry the
        `.decision`. `fn.call(...)` returns a `GovernedResult` with the decision and result. A
        function with an `idempotency_key` parameter receives the call's key (and a caller
        who passes one chooses it); otherwise the key comes from the case, the function and
        its arguments.

        Example:
            ```python
            @guard.governed(action="refund", actor=bot)
            def refund(order_id: str, amount: str, customer_id: str, case_id: str,
                       idempotency_key: str = "") -> str:
                return payments.refund(order_id, amount, key=idempotency_key)
            ```

        Args:
            action: the governed action, when the pack does not map the function by name.
            tool: the tool name the pack maps; the function's name by default.
            actor: who proposes the calls (an `Actor` or a callable).
            case_id: the support case, when the arguments do not carry it.
            customer_id: the customer, when the arguments do not carry it.
            rationale: why; by default the function's `reason` and `rationale` arguments.
            fields: with `action`: which parameters carry the amount, currency, customer,
                case and order (`amount`, `currency`, `customer_id`, `case_id`, `order_id`
                by default).
        """
        from discretion.integrations._decorator import governed

        return governed(
            self,
            action=action,
            tool=tool,
            actor=actor,
            case_id=case_id,
            customer_id=customer_id,
            rationale=rationale,
            fields=fields,
        )
