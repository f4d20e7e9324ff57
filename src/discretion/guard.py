"""`Guard`: builds the parts of discretion over one pack and holds them.

The guard builds the decision `Pipeline` (which alone orders the steps), the precedent on record,
the exactly-once executions, the approval queue and an optional shadow pack, and hands each the
parts it needs; none of them refers back to the guard. It offers `decide`, `adecide`, `preview`
and `similar`, and the doors to the agent integrations (`wrap_tools`, `governed`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discretion._similar import SimilarDecision, fields_by_rule, similar_decisions
from discretion.approvals import Approvals
from discretion.context import ContextProvider, StaticContextProvider
from discretion.decision import Decision
from discretion.errors import ProposalError
from discretion.execution import Executions
from discretion.judge import Judge
from discretion.pipeline import Normalised, Pipeline, Review
from discretion.policy import PolicyPack, load_pack
from discretion.precedent import Precedents
from discretion.proposal import Proposal
from discretion.shadow import Shadow
from discretion.store import SqlStore
from discretion.types import Clock, DecisionHook, IdFactory, utc_now

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from discretion.integrations._call import ActorSource, RationaleSource, TextSource
    from discretion.integrations._decorator import _Decorator

__all__ = ["Guard"]


def _new_id() -> str:
    # 128 random bits as 32 hex digits, the form of a uuid4's hex, at a fifth of its cost.
    return "dec_" + os.urandom(16).hex()


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
        self.store = store if isinstance(store, SqlStore) else SqlStore(store or "sqlite://")
        self.context: ContextProvider = context or StaticContextProvider()
        self._clock = clock or utc_now
        self.precedents = Precedents(self.store, self.pack, clock=self.now)
        """Citable precedent: set, find, revoke."""
        self.pipeline = Pipeline(
            self.pack,
            store=self.store,
            context=self.context,
            review=Review(self.pack, store=self.store, judge=judge),
            precedents=self.precedents,
            clock=self._clock,
            ids=ids or _new_id,
        )
        """The decision steps, in order."""
        if on_decision is not None:
            self.pipeline.observers.append(on_decision)
        self.shadow = (
            Shadow(shadow, store=self.store, context=self.context, clock=self._clock)
            if shadow is not None
            else None
        )
        """The candidate pack decided in shadow, if any."""
        if self.shadow is not None:
            self.pipeline.recorded.append(self.shadow.observe)
        self.executions = Executions(self.store, clock=self.now)
        """Exactly-once execution of governed tool calls, and the outbox of approved ones."""
        self.approvals = Approvals(self)
        """The queue of routed decisions waiting for a person: approve, reject, escalate."""

    @property
    def observers(self) -> list[DecisionHook]:
        """Called with each newly recorded decision after `on_decision` (metrics, ...)."""
        return self.pipeline.observers

    @property
    def in_process(self) -> bool:
        """Whether a decision waits on nothing outside this process and its database.

        True without an LLM judge and with a context provider that says `in_process` (the
        built-in static, JSON and SQLite providers do).
        """
        return self.pipeline.in_process

    def now(self) -> datetime:
        """The guard's clock, checked to be aware."""
        moment = self._clock()
        if moment.tzinfo is None:
            raise ProposalError("the guard's clock returned a naive datetime; return an aware one")
        return moment

    def normalise(self, proposal: Proposal | Mapping[str, Any]) -> Normalised:
        """Validate a proposal and fill in what the pack reads from the tool's arguments.

        Raises:
            ProposalError: naming the field at fault.
        """
        return self.pipeline.normalise(proposal)

    def decide(self, proposal: Proposal | Mapping[str, Any]) -> Decision:
        """Decide a proposal and record the decision before returning it.

        Raises:
            ProposalError: the proposal is malformed, or its idempotency key was used for a
                different proposal. Nothing is recorded.
            StoreError: the decision could not be recorded; it is not answered.
        """
        return self.pipeline.decide(proposal)

    async def adecide(self, proposal: Proposal | Mapping[str, Any]) -> Decision:
        """`decide` for async callers.

        On the event loop when a decision waits on nothing but an embedded database
        (`Pipeline.decides_inline`), else in a worker thread.
        """
        return await self.pipeline.adecide(proposal)

    def preview(self, proposal: Proposal | Mapping[str, Any]) -> Decision:
        """What the pack would decide now, without budgets and without recording anything."""
        return self.pipeline.preview(proposal)

    def similar(
        self, subject: Decision | Proposal | Mapping[str, Any], *, limit: int = 5
    ) -> list[SimilarDecision]:
        """The past decisions most like `subject`: same action and reason, nearest facts.

        For approvers weighing a case: how were like cases decided? A proposal's facts are
        assembled now; a decision's are the ones it was decided on.

        Raises:
            ContextError: a proposal's facts could not be assembled.
        """
        store = self.store
        rules: tuple[str, ...] | None = None
        if isinstance(subject, Decision):
            body = store.decision_body(subject.id)
            if body is None:
                raise ProposalError(f"decision {subject.id!r} is not on record", field="id")
            action, reason = subject.action, subject.reason
            context, amount, exclude = body.get("context", {}), subject.amount, subject.id
            rules = tuple(subject.rules)
        else:
            item = self.normalise(subject)
            if item.action is None:
                return []
            snapshot = self.pipeline.assemble(item, self.now()).snapshot
            action, reason = item.action_name, item.proposal.rationale.reason
            context, amount, exclude = dict(snapshot.data), item.amount, None
        policy = self.pack.actions.get(action)
        return similar_decisions(
            store,
            action=action,
            reason=reason,
            context=context,
            fields=policy.reads if policy is not None else tuple(context),
            amount=amount,
            exclude=exclude,
            limit=limit,
            rules=rules,
            rule_fields=fields_by_rule(policy) if policy is not None else None,
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
        per tool-call id within the LangGraph thread, or, in a run without one, per case, tool
        and arguments (a retried or resumed call returns the first result); a routed call
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
        `.decision`. `fn.call(...)` returns a `GovernedResult` with the decision and result.

        The key: by default from the case, the function and its arguments, so a retried call
        replays the first result instead of running again. `fn.keyed("K-1:refund-2")(...)`
        marks a new call with a key of its own (a second, legitimate identical refund on the
        same case is decided anew); a function with an `idempotency_key` parameter receives
        the call's key, and a caller who passes one chooses it.

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
