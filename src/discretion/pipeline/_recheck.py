"""The re-check an approval passes before its tool call is queued (the pipeline, once more).

A routed case may wait hours. Before it runs, it is decided again from code, as if the approver
had proposed it: under the current pack, on fresh facts, at the approved amount, with the reason
it was routed for. The approver's role must cover it (standard or exception authority), no hard
limit may fire, the budgets it counts against must still have room (or the approver must hold
the role a spent budget routes to), and no precedent it relies on may have been revoked.
The LLM judge takes no part: the approver's judgment is what a routed case waits for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from discretion.context import ContextProvider, Snapshot
from discretion.decision import Decision, Outcome, Reservation
from discretion.errors import (
    ApprovalError,
    ContextError,
    CurrencyMismatch,
    ProposalError,
    StaleApproval,
)
from discretion.money import Money
from discretion.pipeline._assemble import UNKNOWN, assemble_facts, named
from discretion.pipeline._budgets import (
    BudgetKeys,
    approved_as,
    budget_key,
    check_budgets,
    route_target,
)
from discretion.pipeline._currency import at_rate
from discretion.pipeline._evaluate import evaluate, needs_two
from discretion.pipeline._ledger import read_ledger
from discretion.pipeline._normalise import (
    normalise,
    recorded_mapping,
    write_amount,
    write_records,
)
from discretion.pipeline._state import Evaluation
from discretion.policy import PolicyPack, Role, ToolSpec
from discretion.proposal import Actor
from discretion.store import SqlTransaction, TotalQuery

__all__ = ["Recheck", "recheck"]

# Rules that mean the code could not decide: the case is not the approver's to grant now.
_FAILED_CLOSED = {"discretion.evaluation-error", "discretion.context-unavailable"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Recheck:
    """What the re-check found: the outcome for the approver and what to reserve and run."""

    outcome: Outcome
    rules: list[str]
    policy_version: str
    context_digest: str
    amount: Money | None
    """The amount that runs: the approved one."""
    arguments: dict[str, Any] | None
    """The tool arguments that run, with an edited amount written in; None without a tool."""
    reservations: list[Reservation]
    """Exposure to reserve now, at the approval's time: what its budgets charge it."""
    released: list[Reservation] = field(default_factory=list)
    """The routed decision's own reservations these replace: released as of the decision's
    time, so the approved amount counts from when it moved, not from when it was asked."""
    overridden: list[str]
    """Spent budgets the approver's role may go beyond (`on_exceed: route` to their rung)."""
    entities: dict[str, str]
    """The customer, order and case it is about, as their records say now (`Resolved.ids`):
    what the approved row is totalled under, whatever ids the proposal typed."""
    two_approvals: bool = False
    """The whole it is measured on (with what was allowed and approved on the record since it
    was decided) is above the action's `two_approvals_above`: two people must approve it."""

    def to_json(self) -> dict[str, Any]:
        """The re-check as the lineage records it."""
        return {
            "outcome": self.outcome.value,
            "rules": self.rules,
            "policy_version": self.policy_version,
            "context_digest": self.context_digest,
            "budgets_exceeded_with_authority": self.overridden,
            "entities": self.entities,
        }


def _arguments(
    pack: PolicyPack,
    tool: Mapping[str, Any] | None,
    mapping: ToolSpec | None,
    amount: Money | None,
    *,
    is_edited: bool,
) -> dict[str, Any] | None:
    if tool is None:
        return None
    arguments = dict(tool.get("arguments") or {})
    if not is_edited or amount is None:
        return arguments
    name = str(tool.get("name"))
    mapped = pack.tools.get(name)
    try:
        return write_amount(name, mapped[1] if mapped is not None else mapping, arguments, amount)
    except ProposalError:
        raise ApprovalError(
            f"tool {name!r} takes no amount argument the pack maps, so a lower"
            " amount cannot reach it; approve the amount asked for, or reject"
        ) from None


def recheck(
    pack: PolicyPack,
    context: ContextProvider,
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
    """Decide the stored proposal again for `approver` at `amount`.

    Raises:
        StaleApproval: the current pack denies it, a fact cannot be read, a budget it needs
            is spent with `on_exceed: deny`, or a precedent it relies on was revoked.
        ApprovalError: the approver's role does not cover it, or a spent budget routes
            beyond their rung; they may escalate it.
    """
    tool = proposal.get("tool")
    try:
        mapping = recorded_mapping(proposal)
    except ProposalError as exc:
        raise StaleApproval(
            f"approval {approval_id}: {exc}; reject it", approval_id=approval_id
        ) from exc
    arguments = _arguments(pack, tool, mapping, amount, is_edited=is_edited)
    rationale = dict(proposal.get("rationale") or {})
    if decision.reason is not None:
        rationale["reason"] = decision.reason
    data = {
        "actor": approver.model_dump(mode="json"),
        "tool": {"name": tool["name"], "arguments": arguments} if tool is not None else None,
        "action": proposal.get("action"),
        "amount": amount.to_json() if amount is not None else None,
        "customer_id": proposal.get("customer_id"),
        "case_id": proposal.get("case_id"),
        "order_id": proposal.get("order_id"),
        "rationale": rationale,
        "idempotency_key": f"approval:{approval_id}",
    }
    try:
        item = normalise(pack, data, mapping=mapping)
    except ProposalError as exc:
        raise StaleApproval(
            f"approval {approval_id}: the proposal no longer fits pack {pack.name!r}"
            f" ({pack.version[:19]}): {exc}",
            approval_id=approval_id,
        ) from exc
    amount_minor = item.amount.minor if item.amount is not None else 0
    role = item.pack.role(role.id) or role
    action = item.action
    if action is None:
        if "discretion.unknown-action" not in decision.rules:
            # Decided as one of the pack's actions, and no longer read as any: nothing the
            # approver may be checked against (fail closed).
            raise StaleApproval(
                f"approval {approval_id}: its proposal was decided as {decision.action!r} and"
                f" no longer reads as an action of pack {pack.name!r}; reject it",
                approval_id=approval_id,
            )
        # Not governed by the pack: nothing to evaluate, and the case was routed to the top
        # human rung, which the approver was checked to hold.
        outcome, rules, two = Outcome.ALLOW, ["discretion.unknown-action"], False
        context_digest = Snapshot.of({}).digest
        resolved = named(item)
        known: Mapping[str, Any] = {}
    else:
        try:
            # The same context assembly as a decision: only the fields the pack declares.
            facts = assemble_facts(pack, context, item, action, now).whole()
        except CurrencyMismatch as exc:
            # Not a fact yet to come: the record's money stays in its currency.
            raise StaleApproval(
                f"approval {approval_id}: it cannot be re-checked ({exc}); reject it: the"
                f" agent may propose it in {exc.currency}",
                approval_id=approval_id,
            ) from exc
        except ContextError as exc:
            raise StaleApproval(
                f"approval {approval_id}: the facts to re-check it cannot be read now ({exc});"
                " try again later, or reject it",
                approval_id=approval_id,
            ) from exc
        snapshot, resolved = facts.snapshot, facts.resolved
        if pack.rates is not None:
            priced = at_rate(pack, item, snapshot)
            if isinstance(priced, Evaluation):
                raise StaleApproval(
                    f"approval {approval_id}: {'; '.join(priced.causes)}; try again when the"
                    " rate is known, or reject it",
                    approval_id=approval_id,
                )
            item, action = priced, priced.action or action
            role = item.pack.role(role.id) or role
        if resolved.faults:
            # A record not on file may come in (try again); records that disagree do not.
            waiting = all(f.rule == UNKNOWN for f in resolved.faults)
            raise StaleApproval(
                f"approval {approval_id}: its records do not check out"
                f" ({'; '.join(f.cause for f in resolved.faults)}); "
                + ("try again once they are on file, or reject it" if waiting else "reject it"),
                approval_id=approval_id,
            )
        prior_minor = whole_minor = 0
        if action.reads_ledger:
            # The ledger's totals, read in this transaction under their locks, as a decision,
            # without this case: pending, it would count against itself.
            def totals(queries: Sequence[TotalQuery]) -> list[int]:
                return tx.totals([replace(query, exclude=approval_id) for query in queries])

            # The case's whole is its proposer's, as when it was decided: what was allowed on
            # the record, and approved there since, to proposals of the same actor or role
            # (`cumulative.among`). The approver's authority must cover it with this amount.
            ledger, unkeyed = read_ledger(
                totals,
                item.pack,
                item,
                action,
                resolved,
                now,
                proposer=(decision.actor_id, decision.actor_role),
                facts=snapshot.values,
            )
            top = item.pack.top_for(action.name) if ledger.mixed else None
            if top is not None and not role.decides_for(top):
                # Amounts in two currencies cannot be added: only the top rung may judge it.
                raise ApprovalError(
                    f"approval {approval_id}: {', '.join(ledger.mixed)} holds amounts in"
                    f" another currency than {item.pack.currency}, so role {role.id!r}'s"
                    f" authority cannot be measured on it; it needs"
                    f" {top.id!r}: escalate it"
                )
            if unkeyed:
                raise StaleApproval(
                    f"approval {approval_id}: the totals it is measured on cannot be keyed"
                    f" ({', '.join(unkeyed)}); reject it",
                    approval_id=approval_id,
                )
            snapshot = snapshot.merged(ledger.recorded)
            prior_minor, whole_minor = ledger.prior_minor, ledger.whole_minor
        evaluation = evaluate(
            item.pack,
            action,
            role=role,
            actor_is_ai=False,
            actor_id=approver.id,
            amount_minor=amount_minor,
            cited_reason=item.proposal.rationale.reason,
            facts=snapshot.cel_values(action.reads),
            now=now,
            prior_minor=prior_minor,
            args=item.cel_args(),
            asked_at=decision.decided_at,
            # A review that routed it holds still, and every review reads the case as asked:
            # its `when` may read the agent that asked (`actor.is_ai`), never the approver.
            held=frozenset(decision.rules),
            asked_by=_asked_by(item.pack, decision, proposal, role),
        )
        two = needs_two(action, amount_minor + whole_minor)
        outcome, rules, context_digest = evaluation.outcome, evaluation.rules, snapshot.digest
        known = snapshot.values
        what = f"{action.name} of {item.amount}"
        match outcome:
            case Outcome.DENY:
                if evaluation.deciding and all(rule.personal for rule in evaluation.deciding):
                    # It forbids this approver (their own account), not the case.
                    raise ApprovalError(
                        f"approval {approval_id}: the pack forbids {approver.id!r} to approve"
                        f" {what} (rules: {', '.join(rules)}): leave it to another person"
                    )
                raise StaleApproval(
                    f"approval {approval_id}: the current pack denies {what}"
                    f" (rules: {', '.join(rules)}); it cannot run, reject it",
                    approval_id=approval_id,
                )
            case Outcome.ROUTE:
                needed = evaluation.required_role
                if needed is None or _FAILED_CLOSED & set(rules):
                    raise StaleApproval(
                        f"approval {approval_id}: {what} cannot be decided from code now"
                        f" ({'; '.join(evaluation.causes) or ', '.join(rules)}); reject it, or"
                        " try again when the cause is fixed",
                        approval_id=approval_id,
                    )
                if evaluation.person is not None:
                    # A review leaves it to one person of its role: not this approver.
                    raise ApprovalError(
                        f"approval {approval_id}: only {evaluation.person!r}, as role"
                        f" {needed.id!r}, may approve {what} (rules: {', '.join(rules)});"
                        f" {approver.id!r} may not: leave it to them, or reject it"
                    )
                if needed.beside and needed.id != role.id:
                    # A team beside the ladder it was not routed to: no escalation reaches it.
                    raise StaleApproval(
                        f"approval {approval_id}: {what} now needs {needed.id!r}, beside the"
                        f" ladder (rules: {', '.join(rules)}), which no escalation reaches;"
                        " reject it, and propose it anew as the case now stands",
                        approval_id=approval_id,
                    )
                if role.beside and needed.id != role.id:
                    raise ApprovalError(
                        f"approval {approval_id}: {what} needs {needed.id!r} as well (rules:"
                        f" {', '.join(rules)}), and {role.id!r} is beside the ladder: no one"
                        " person can approve it; reject it"
                    )
                if needed.id == role.id:
                    # Not the approver's authority: the proposal itself no longer stands as it
                    # was made (a standard case now needs a reason it never cited), and the
                    # role it names is the approver's own, so no one could approve it.
                    raise StaleApproval(
                        f"approval {approval_id}: {what} cannot be approved as it was proposed"
                        f" (rules: {', '.join(rules)}); reject it, and propose it anew as the"
                        " case now stands",
                        approval_id=approval_id,
                    )
                raise ApprovalError(
                    f"approval {approval_id}: role {role.id!r} does not cover {what}"
                    f" (rules: {', '.join(rules)}); it needs {needed.id!r}: escalate it"
                )
            case Outcome.ALLOW | Outcome.ALLOW_EXCEPTION:
                pass

    keys = BudgetKeys(
        resolved=resolved,
        actor_id=decision.actor_id,
        role=item.pack.role(decision.actor_role) or item.pack.roles[0],
        facts=known,
        args=item.args,
    )
    reservations, released, overridden = _budgets(
        item.pack,
        tx,
        approval_id,
        decision,
        item.action_name,
        approved_as(decision.reason is not None, outcome),
        amount_minor,
        role,
        now,
        keys,
    )
    _precedents(tx, approval_id, decision, proposal)
    return Recheck(
        released=released,
        outcome=outcome,
        rules=rules,
        policy_version=pack.version,
        context_digest=context_digest,
        amount=item.amount,
        arguments=(
            write_records(item.mapping, arguments, resolved.ids())
            if arguments is not None
            else None
        ),
        reservations=reservations,
        overridden=overridden,
        entities=resolved.ids(),
        two_approvals=two,
    )


def _asked_by(
    pack: PolicyPack, decision: Decision, proposal: Mapping[str, Any], approver: Role
) -> tuple[Role, bool, str]:
    """Who proposed the case, as its reviews read them: role, whether an AI, id."""
    asked = proposal.get("actor") or {}
    role = pack.role(decision.actor_role) or approver
    return role, bool(asked.get("is_ai", True)), decision.actor_id


def _budgets(
    pack: PolicyPack,
    tx: SqlTransaction,
    approval_id: str,
    decision: Decision,
    action: str,
    outcome: Outcome,
    amount_minor: int,
    role: Role,
    now: datetime,
    keys: BudgetKeys,
) -> tuple[list[Reservation], list[Reservation], list[str]]:
    """What the approval reserves, the route's reservations it releases, the budgets it passes.

    A budget the routed decision already reserved (one that counts routes) is charged the
    approval now, and the route's reservation is released as of its own time: the exposure
    counts once, from when the money moves, whatever the window (in a rolling one it would
    lapse a window after it was asked). While that reservation is in the window, the approval
    takes its place and is not measured again; one the window left behind counts nowhere now,
    so the approval is measured as if nothing were reserved.
    """
    windows = {budget.id: budget for budget in pack.budgets}
    already = {
        (r.budget, r.key): r
        for r in decision.reservations
        if (budget := windows.get(r.budget)) is not None
        and (since := budget.since_in(now, keys.facts)) is not None
        and decision.decided_at > since
    }
    # The proposer's budgets: exposure counts against the actor who asked, whoever approves.
    check = check_budgets(
        pack,
        tx,
        action=action,
        outcome=outcome,
        amount_minor=amount_minor,
        now=now,
        keys=keys,
    )
    reserve = list(check.reservations)
    overridden: list[str] = []
    for budget in check.exceeded:
        key = budget_key(budget, keys)
        if key is not None and (budget.id, key) in already:
            # Its route took the room already: the approval takes its place.
            charge = check.charged.get(budget.id)
            if charge is not None:
                reserve.append(Reservation(budget=budget.id, key=key, amount=charge))
            continue
        if budget.on_exceed == "deny" and budget.id not in check.charged:
            raise StaleApproval(
                f"approval {approval_id}: budget {budget.id!r}, which the pack forbids going"
                f" beyond, cannot be measured now ({'; '.join(check.causes)}); try again once"
                " it can, or reject it",
                approval_id=approval_id,
            )
        if budget.on_exceed == "deny":
            raise StaleApproval(
                f"approval {approval_id}: budget {budget.id!r} has no room for"
                f" {pack.money(amount_minor)}, and the pack forbids going beyond it; approve a"
                " lower amount that fits, reject it, or wait until its window has room",
                approval_id=approval_id,
            )
        needed = route_target(pack, budget, keys.role, action)
        if not role.decides_for(needed):
            raise ApprovalError(
                f"approval {approval_id}: budget {budget.id!r} is used up; only {needed.id!r}"
                + (
                    " may approve beyond it, beside the ladder"
                    if needed.beside
                    else " or above may approve beyond it: escalate it"
                )
            )
        overridden.append(budget.id)
        if key is not None:
            charge = check.charged.get(budget.id)
            if charge is not None:
                reserve.append(Reservation(budget=budget.id, key=key, amount=charge))
    released = [already[(r.budget, r.key)] for r in reserve if (r.budget, r.key) in already]
    return reserve, released, overridden


def _precedents(
    tx: SqlTransaction, approval_id: str, decision: Decision, proposal: Mapping[str, Any]
) -> None:
    # Read in this transaction: on SQLite a second connection would wait for our own lock.
    fallen = tx.precedents.fallen(decision.relied_on(proposal))
    if fallen is not None:
        precedent_id, why = fallen
        raise StaleApproval(
            f"approval {approval_id}: precedent {precedent_id!r} it relies on {why}; reject it,"
            " or ask for a new proposal that stands without it",
            approval_id=approval_id,
        )
