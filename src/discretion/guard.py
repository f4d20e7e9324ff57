"""`Guard.decide`: the only place that orders the pipeline steps.

1. validate and normalise        5. authority
2. idempotency                   6. precedent (when cited or found)
3. assemble context              7. rationale judges
4. evaluate the pack             8-9. reserve budgets and append the lineage, in one transaction
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from discretion._explain import explain
from discretion.authority import lowest_covering
from discretion.budget import BudgetCheck, check_budgets
from discretion.context import ContextProvider, ContextRequest, Snapshot, StaticContextProvider
from discretion.context import assemble as assemble_context
from discretion.decision import Decision, Outcome
from discretion.errors import ContextError, ProposalError, StoreError
from discretion.lineage import digest
from discretion.money import Money
from discretion.policy._evaluate import Evaluation, evaluate
from discretion.policy.pack import ActionPolicy, Budget, PolicyPack, Role, load_pack
from discretion.proposal import Proposal
from discretion.store import DuplicateKey, SqlStore, Store
from discretion.types import Clock, DecisionHook, IdFactory

__all__ = ["Guard", "Normalised"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return f"dec_{uuid.uuid4().hex}"


def _argument(arguments: Mapping[str, Any], path: str) -> Any:
    value: Any = arguments
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


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
    """

    def __init__(
        self,
        pack: PolicyPack | str | Path,
        *,
        store: Store | str | None = None,
        context: ContextProvider | None = None,
        clock: Clock | None = None,
        ids: IdFactory | None = None,
        on_decision: DecisionHook | None = None,
    ) -> None:
        self.pack = pack if isinstance(pack, PolicyPack) else load_pack(pack)
        self.store: Store = (
            SqlStore(store or "sqlite://") if store is None or isinstance(store, str) else store
        )
        self.context: ContextProvider = context or StaticContextProvider()
        self._clock = clock or _utc_now
        self._ids = ids or _new_id
        self._on_decision = on_decision

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
            raw = _argument(arguments, path) if path else None
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
            raw_amount = _argument(arguments, tool_spec.amount)
            if raw_amount is not None:
                raw_currency = (
                    _argument(arguments, tool_spec.currency) if tool_spec.currency else None
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
        item = self.normalise(proposal)
        # 2. idempotency: a key already decided returns the same decision, counted once.
        known = self.store.find_decision(item.idempotency_key)
        if known is not None:
            return self._replay(item, known)
        now = self.now()
        snapshot, evaluation = self._evaluate(item, now)
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

    def _replay(self, item: Normalised, known: Decision) -> Decision:
        if known.proposal_digest != item.digest:
            raise ProposalError(
                f"idempotency_key: {item.idempotency_key!r} was already used for a different"
                f" proposal (decision {known.id}); use a new key for a new proposal",
                field="idempotency_key",
            )
        return known

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
        try:
            snapshot = assemble_context(
                self.context, request, self.pack.fields, currency=request.currency
            )
        except ContextError as exc:
            causes = [str(exc)]
            return Snapshot.of({}), Evaluation(
                outcome=Outcome.ROUTE,
                rules=["discretion.context-unavailable"],
                required_role=lowest_covering(self.pack, action.name, amount_minor),
                causes=causes,
            )
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
        return snapshot, evaluation

    # 8-9. budgets and lineage, in one transaction
    def _record(
        self, item: Normalised, snapshot: Snapshot, evaluation: Evaluation, now: datetime
    ) -> Decision:
        amount_minor = item.amount.minor if item.amount is not None else 0
        try:
            with self.store.transaction() as tx:
                # Another process may have decided this key while we evaluated.
                known = tx.find_decision(item.idempotency_key)
                if known is not None:
                    return self._replay(item, known)

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
                decision = self._build(
                    item, snapshot, evaluation, now, reservations=check.reservations
                )
                body = {
                    "decision": decision.model_dump(mode="json", exclude={"lineage_hash"}),
                    "proposal": item.record(),
                    "context": dict(snapshot.data),
                }
                recorded = tx.append(decision, body=body)
        except DuplicateKey as exc:
            known = self.store.find_decision(item.idempotency_key)
            if known is None:
                # A constraint other than the idempotency key failed: nothing was recorded.
                raise StoreError(f"the decision could not be recorded: {exc.__cause__}") from exc
            return self._replay(item, known)
        if self._on_decision is not None:
            self._on_decision(recorded)
        return recorded

    def _over_budget(
        self, evaluation: Evaluation, exceeded: tuple[Budget, ...], causes: tuple[str, ...]
    ) -> Evaluation:
        changes: dict[str, Any] = {
            "rules": [*evaluation.rules, *(b.id for b in exceeded)],
            "causes": [*evaluation.causes, *causes, *(b.message for b in exceeded if b.message)],
            "notes": [*evaluation.notes, "a budget for this kind of exposure is used up"],
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
            context_digest=snapshot.digest,
            proposal_digest=item.digest,
            policy_version=self.pack.version,
            decided_at=now,
        )
