"""The approval queue: routed decisions waiting for a person, and what people do with them.

```
routed ──▶ pending ──approve──▶ approved ──▶ tool call queued (outbox), run once
              │ ──reject───▶ rejected
              │ ──cancel───▶ cancelled
              │ ──due time─▶ expired
              └─escalate─▶ pending (one rung up the ladder, a new due time)
```

Every transition happens in one store transaction, which holds the ledger lock: the row moves
only from `pending`, so of two approvers deciding at once one wins and the other gets
`ApprovalConflict`. Each transition appends a lineage record (`approval.approved`,
`approval.rejected`, ...) naming the approver, their role, their note and the time.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from discretion.approvals._exposure import Exposure, ExposureRow, exposure, exposure_report
from discretion.approvals._model import Approval, ApprovalStatus, Endorsement
from discretion.authority import rungs_above
from discretion.decision import Decision
from discretion.errors import (
    ApprovalConflict,
    ApprovalError,
    ApprovalNotFound,
    ProposalError,
    StoreError,
)
from discretion.execution import Execution, ToolCallable
from discretion.lineage import digest, storable
from discretion.money import Money
from discretion.policy import TWO_APPROVALS, PolicyPack, Role
from discretion.precedent import PrecedentSpec
from discretion.proposal import Actor
from discretion.store import ApprovalRow, SqlStore, SqlTransaction

if TYPE_CHECKING:
    from discretion.guard import Guard
    from discretion.pipeline._recheck import Recheck

__all__ = ["Approvals"]

MAX_NOTE = 2000
SYSTEM = "system"
"""The `decided_by` of an approval that expired."""


def _approval(row: ApprovalRow) -> Approval:
    return Approval(
        id=row.id,
        status=ApprovalStatus(row.status),
        action=row.action,
        reason=row.reason,
        required_role=row.required_role,
        actor_id=row.actor_id,
        actor_role=row.actor_role,
        customer_id=row.customer_id,
        case_id=row.case_id,
        requested_amount=row.requested,
        amount=row.approved if row.approved is not None else row.requested,
        proposal=row.proposal,
        policy_version=row.policy_version,
        opened_at=row.opened_at,
        due_at=row.due_at,
        escalations=row.escalations,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        decided_role=row.decided_role,
        note=row.note,
        endorsement=Endorsement.model_validate(row.endorsement)
        if row.endorsement is not None
        else None,
    )


def _found(row: ApprovalRow | None, approval_id: str) -> ApprovalRow:
    if row is None:
        raise ApprovalNotFound(
            f"no approval {approval_id!r}: only routed decisions open one; check the id",
            approval_id=approval_id,
        )
    return row


def _note(note: str) -> str:
    text = note.strip()
    if not text:
        raise ProposalError(
            "note: every approval decision needs a note saying why; write one", field="note"
        )
    if len(text) > MAX_NOTE:
        raise ProposalError(f"note: keep it under {MAX_NOTE} characters", field="note")
    if not storable(text):
        # No store holds it (PostgreSQL refuses NUL mid-write): bad input, not an outage.
        raise ProposalError(
            "note: it holds a NUL character (U+0000) or a lone UTF-16 surrogate, which no stored"
            " text holds; write it without",
            field="note",
        )
    return text


def _record(
    tx: SqlTransaction,
    approval_id: str,
    kind: str,
    status: ApprovalStatus,
    *,
    by: Actor | None,
    note: str,
    now: datetime,
    **extra: Any,
) -> None:
    """Append the lineage record of a transition (`approval.<kind>`) naming who, why and when."""
    tx.record(
        f"approval.{kind}",
        approval_id,
        {
            "approval_id": approval_id,
            "status": status.value,
            "by": {"id": by.id, "role": by.role} if by is not None else {"id": SYSTEM},
            "note": note,
            "at": now,
            **extra,
        },
        at=now,
    )


def _no_precedent_first(row: ApprovalRow, precedent: PrecedentSpec | None) -> None:
    """The first of two approvals sets no precedent: the second does.

    Raises:
        ProposalError: `precedent` is given.
    """
    if precedent is not None:
        raise ProposalError(
            f"precedent: approval {row.id} needs two approvers, and a precedent is set by"
            " the second; approve it without one now",
            field="precedent",
        )


def _endorsed(row: ApprovalRow, approver: Actor, precedent: PrecedentSpec | None) -> Money | None:
    """For a case that needs two approvals: what the first granted, when this is the second.

    None when this is the first of two.

    Raises:
        ApprovalError: the first approver approves again.
        ProposalError: the first of two sets a precedent (the second one does).
    """
    first = row.endorsement
    if first is None:
        _no_precedent_first(row, precedent)
        return None
    if first["by"] == approver.id:
        raise ApprovalError(
            f"approval {row.id} needs two approvers, and {approver.id!r} already approved it"
            f" at {first['at']}; a second person must approve it"
        )
    amount = first.get("amount")
    return Money.model_validate(amount) if amount is not None else row.requested


class Approvals:
    """The queue of routed decisions, and the only way to decide them.

    `guard.approvals` is one. A routed decision opens its approval in the decision's own
    transaction; approving re-checks the case (see `discretion.approvals`) and queues its tool
    call in the outbox in the same transaction, to run once through `run_approved`.

    Example:
        ```python
        ann = Actor(id="ann", role="tier2", is_ai=False)
        guard.approvals.approve(decision.id, approver=ann, note="carrier confirmed the loss",
                                amount=Money.of("60.00", "USD"))
        guard.approvals.register("issue_refund", lambda args, key: payments.refund(**args))
        guard.approvals.run_approved()
        ```

    Args:
        guard: the guard whose pack, store, context and clock the approvals use.
    """

    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        self._executors: dict[str, ToolCallable] = {}

    @property
    def _store(self) -> SqlStore:
        return self._guard.store

    # Reading -----------------------------------------------------------------------------------

    def get(self, approval_id: str) -> Approval:
        """The approval with this id (the routed decision's id).

        Raises:
            ApprovalNotFound: no routed decision has this id.
        """
        return _approval(_found(self._store.approvals.get(approval_id), approval_id))

    def list(
        self,
        status: ApprovalStatus | str | None = None,
        role: str | None = None,
        *,
        limit: int = 500,
    ) -> builtins.list[Approval]:
        """Approvals, soonest due first.

        Args:
            status: only those in this state.
            role: only those a holder of this role may decide: routed to it or to a lower rung.
            limit: at most this many.
        """
        below: builtins.list[str] | None = None
        if role is not None:
            holder = self._guard.pack.role(role)
            if holder is None or holder.is_ai:
                return []
            below = [r.id for r in self._guard.pack.roles if holder.decides_for(r)]
        rows = self._store.approvals.list(
            status=ApprovalStatus(status).value if status is not None else None,
            required_roles=below,
            limit=limit,
        )
        return [_approval(row) for row in rows]

    def decision(self, approval_id: str) -> Decision:
        """The routed decision an approval stands for."""
        found = self._store.decision(approval_id)
        if found is None:
            raise ApprovalNotFound(f"no decision {approval_id!r}", approval_id=approval_id)
        return found

    def history(self, approval_id: str) -> builtins.list[dict[str, Any]]:
        """The lineage records about an approval, oldest first.

        Its decision, what people did with it, and its execution.
        """
        return [
            {
                "seq": entry.seq,
                "kind": entry.kind,
                "at": entry.recorded_at,
                "body": json.loads(entry.body),
            }
            for entry in self._store.history(approval_id)
        ]

    def exposure(
        self,
        *,
        customer_id: str | None = None,
        actor_id: str | None = None,
        days: int = 30,
        currency: str | None = None,
    ) -> Exposure:
        """What a customer, or the cases an agent proposed, was granted in the last `days`.

        In a pack of several currencies, what was granted in `currency` (the pack's first when
        None): amounts in two currencies are never added.
        """
        since = self._guard.now() - timedelta(days=days)
        pack = self._guard.pack
        return exposure(
            self._store,
            currency=currency or pack.currency,
            since=since,
            customer_id=customer_id,
            actor_id=actor_id,
            only=len(pack.accepts) > 1 or bool(pack.units),
        )

    def exposure_report(self, *, days: int = 30) -> builtins.list[ExposureRow]:
        """Grants over the last `days` by day, exception reason and granting role."""
        now = self._guard.now()
        return exposure_report(
            self._store,
            currency=self._guard.pack.currency,
            since=now - timedelta(days=days),
            until=now,
        )

    # Deciding ----------------------------------------------------------------------------------

    def _approver(self, pack: PolicyPack, approver: Actor) -> Role:
        role = pack.role(approver.role)
        if role is None:
            raise ApprovalError(
                f"approver {approver.id!r}: role {approver.role!r} is not a role of pack"
                f" {pack.name!r}; roles: {', '.join(r.id for r in pack.roles)}"
            )
        if approver.is_ai or role.is_ai:
            fix = (
                " (an Actor is an AI unless given is_ai=False)"
                if approver.is_ai and not role.is_ai
                else ""
            )
            raise ApprovalError(
                f"approver {approver.id!r} ({role.id}) is an AI actor{fix}: AI actors never"
                " decide routed cases; a person must"
            )
        return role

    @staticmethod
    def _settled(row: ApprovalRow) -> ApprovalConflict:
        by = f" by {row.decided_by} ({row.decided_role})" if row.decided_by else ""
        at = row.decided_at
        when = f" at {at.isoformat()}" if at is not None else ""
        return ApprovalConflict(
            f"approval {row.id} was already {row.status}{by}{when}; nothing was changed, reload it",
            approval_id=row.id,
        )

    @staticmethod
    def _required(pack: PolicyPack, row: ApprovalRow | Approval) -> Role:
        # A role the current pack dropped routes to the top human rung (fail closed).
        return pack.role(row.required_role) or pack.highest_human

    def _transition(
        self,
        tx: SqlTransaction,
        row: ApprovalRow,
        status: ApprovalStatus,
        *,
        by: Actor | None,
        note: str,
        now: datetime,
        body: dict[str, Any],
        approved: Money | None = None,
        entities: Mapping[str, str] | None = None,
    ) -> None:
        settled = tx.approvals.settle(
            row.id,
            status=status.value,
            at=now,
            by=by.id if by is not None else SYSTEM,
            role=by.role if by is not None else None,
            note=note,
            approved=approved,
            entities=entities,
        )
        if not settled:
            # Only reachable if a writer bypassed the ledger lock; never move a settled row.
            raise ApprovalConflict(
                f"approval {row.id} was decided by someone else meanwhile; reload it",
                approval_id=row.id,
            )
        _record(tx, row.id, status.value, status, by=by, note=note, now=now, **body)

    @contextmanager
    def _pending(
        self, approval_id: str, now: datetime
    ) -> Iterator[tuple[SqlTransaction, ApprovalRow]]:
        """A write transaction holding a pending approval's row; it expires an overdue one."""
        expired: ApprovalRow | None = None
        with self._store.transaction() as tx:
            # Claimed (locked on PostgreSQL) by whoever decides it: a second approver waits,
            # then finds it decided. SQLite's write lock already serialises them.
            row = _found(tx.approvals.claim(approval_id), approval_id)
            if row.status != ApprovalStatus.PENDING.value:
                raise self._settled(row)
            if now > row.due_at:
                self._expire(tx, row, now)
                expired = row
            else:
                yield tx, row
        if expired is not None:
            # Raised after the block so that the expiry itself commits.
            due = expired.due_at
            raise ApprovalConflict(
                f"approval {approval_id} passed its due time ({due.isoformat()}) and has"
                " expired; it can no longer be decided",
                approval_id=approval_id,
            )

    def approve(
        self,
        approval_id: str,
        *,
        approver: Actor,
        note: str,
        amount: Money | None = None,
        precedent: PrecedentSpec | None = None,
    ) -> Approval:
        """Grant a routed case, possibly for a lower amount, and queue its tool call to run once.

        Re-checked first under the current pack, on fresh facts, budgets and precedents.

        Args:
            approval_id: the routed decision's id.
            approver: a person (never an AI actor, never the proposer) whose role covers it.
            note: why; required.
            amount: a lower amount to grant instead of the one asked for.
            precedent: a `PrecedentSpec` to make this grant citable (or a
                one-off with `learnable=False`), within what the pack allows.

        Raises:
            ApprovalNotFound: no approval has this id.
            ApprovalConflict: it is no longer pending (someone else decided it first), or it
                passed its due time.
            StaleApproval: the re-check failed: the current pack denies it, a budget is
                spent beyond what any approval may exceed, a precedent was revoked.
            ApprovalError: the approver is an AI, proposed it, or their role does not cover
                it (they may escalate it).
            ProposalError: a missing note, or an amount that is not lower or in another
                currency.
        """
        text = _note(note)
        guard = self._guard
        pack = guard.pack
        role = self._approver(pack, approver)
        now = guard.now()
        with self._pending(approval_id, now) as (tx, row):
            self._check_may_decide(pack, row, approver, role, "approve")
            decision = self._decision(tx, row.id)
            needs_two = TWO_APPROVALS in decision.rules or row.endorsement is not None
            endorsed = _endorsed(row, approver, precedent) if needs_two else None
            requested = row.requested
            granted = (
                self._granted(row, endorsed, amount, upto="the first approver granted")
                if endorsed is not None
                else self._granted(row, requested, amount)
            )
            proposal = row.proposal
            self._check_digest(row, decision, proposal)
            checked = guard.pipeline.recheck(
                tx,
                approval_id=row.id,
                decision=decision,
                proposal=proposal,
                approver=approver,
                role=role,
                amount=granted,
                is_edited=granted != requested,
                now=now,
            )
            if checked.two_approvals and not needs_two:
                # Measured on the whole as it stands now (a piece of a split, with the pieces
                # approved since it was decided), it is above the two-approvals amount: this
                # approval is the first of two.
                needs_two = True
                _no_precedent_first(row, precedent)
            if needs_two and row.endorsement is None:
                # The first of two: it holds for this approver, and waits for a second.
                endorsement = {
                    "by": approver.id,
                    "role": role.id,
                    "amount": granted.to_json() if granted is not None else None,
                    "note": text,
                    "at": now.isoformat(),
                }
                tx.approvals.endorse(row.id, endorsement)
                _record(
                    tx,
                    row.id,
                    "endorsed",
                    ApprovalStatus.PENDING,
                    by=approver,
                    note=text,
                    now=now,
                    amount=endorsement["amount"],
                    recheck=checked.to_json(),
                    to_role=row.required_role,
                )
            else:
                self._grant(tx, row, decision, checked, approver, text, granted, now, precedent)
        return self.get(approval_id)

    def _grant(
        self,
        tx: SqlTransaction,
        row: ApprovalRow,
        decision: Decision,
        checked: Recheck,
        approver: Actor,
        text: str,
        granted: Money | None,
        now: datetime,
        precedent: PrecedentSpec | None,
    ) -> None:
        """Approve a re-checked case: reserve its budgets, record it, queue its tool call."""
        guard = self._guard
        requested = row.requested
        proposal = row.proposal
        tx.reserve(row.id, checked.reservations, at=now)
        tx.release(row.id, checked.released, at=decision.decided_at)
        tool = proposal.get("tool")
        execution = (
            {"key": decision.execution_key, "tool": tool["name"]} if tool is not None else None
        )
        self._transition(
            tx,
            row,
            ApprovalStatus.APPROVED,
            by=approver,
            note=text,
            now=now,
            body={
                "amount": granted.to_json() if granted is not None else None,
                "requested_amount": requested.to_json() if requested is not None else None,
                "recheck": checked.to_json(),
                "reservations": [r.model_dump(mode="json") for r in checked.reservations],
                **(
                    {
                        "released": [r.model_dump(mode="json") for r in checked.released],
                        "released_at": decision.decided_at.isoformat(),
                    }
                    if checked.released
                    else {}
                ),
                "execution": execution,
                **({"endorsement": row.endorsement} if row.endorsement is not None else {}),
            },
            approved=granted,
            entities=checked.entities,
        )
        if precedent is not None:
            # After the approval.approved record: precedent is set from a granted case.
            guard.precedents.set(row.id, precedent, grantor=approver, tx=tx)
        if tool is not None and checked.arguments is not None:
            guard.executions.enqueue(
                tx,
                decision_id=row.id,
                key=decision.execution_key,
                tool=tool["name"],
                arguments=checked.arguments,
                at=now,
            )

    @staticmethod
    def _check_separation(row: ApprovalRow, actor: Actor) -> None:
        if actor.id == row.actor_id:
            raise ApprovalError(
                f"approval {row.id}: {actor.id!r} proposed this case and cannot decide it"
                " (separation of duties); another person must"
            )

    @classmethod
    def _check_may_decide(
        cls, pack: PolicyPack, row: ApprovalRow, approver: Actor, role: Role, verb: str
    ) -> None:
        """Separation of duties, and the approver's role reaches the rung the case waits on."""
        cls._check_separation(row, approver)
        required = cls._required(pack, row)
        if not role.decides_for(required):
            raise ApprovalError(
                f"approval {row.id}: role {role.id!r} cannot {verb} a case routed to"
                f" {required.id!r}"
                + (
                    f"; {required.id!r} decides it, beside the ladder"
                    if required.beside
                    else ", beside the ladder it decides only what is sent to it"
                    if role.beside
                    else "; escalate it instead"
                )
            )

    @staticmethod
    def _granted(
        row: ApprovalRow,
        requested: Money | None,
        amount: Money | None,
        *,
        upto: str = "asked for",
    ) -> Money | None:
        if amount is None:
            return requested
        if requested is None:
            raise ProposalError(
                f"amount: approval {row.id} moves no money, so it takes no amount", field="amount"
            )
        if amount.currency != requested.currency:
            raise ProposalError(
                f"amount: {amount} is not in {requested.currency}, the currency asked for",
                field="amount",
            )
        if amount.amount > requested.amount:
            raise ProposalError(
                f"amount: {amount} is more than the {requested} {upto}; an approver may only"
                " lower it",
                field="amount",
            )
        if amount.minor == 0:
            raise ProposalError(
                "amount: approving nothing is a rejection; reject it instead", field="amount"
            )
        return amount

    @staticmethod
    def _decision(tx: SqlTransaction, approval_id: str) -> Decision:
        decision = tx.decision(approval_id)
        if decision is None:  # pragma: no cover - the approval's key is its decision's id
            raise StoreError(f"approval {approval_id} has no decision on record")
        return decision

    @staticmethod
    def _check_digest(row: ApprovalRow, decision: Decision, proposal: Mapping[str, Any]) -> None:
        # The key and the ticket are recorded beside the digested content, outside it.
        content = {k: v for k, v in proposal.items() if k not in ("idempotency_key", "ticket")}
        if digest(content) != decision.proposal_digest:
            raise ApprovalError(
                f"approval {row.id}: the stored proposal does not match the digest its decision"
                " recorded; it was altered outside discretion and will not run. Run"
                " `discretion ledger verify` and reject it"
            )

    def reject(self, approval_id: str, *, approver: Actor, note: str) -> Approval:
        """Refuse a routed case. The approver's role must be the one it is routed to, or above.

        Raises:
            ApprovalNotFound, ApprovalConflict, ApprovalError, ProposalError: as for `approve`.
        """
        text = _note(note)
        pack = self._guard.pack
        role = self._approver(pack, approver)
        now = self._guard.now()
        with self._pending(approval_id, now) as (tx, row):
            self._check_may_decide(pack, row, approver, role, "decide")
            self._transition(
                tx,
                row,
                ApprovalStatus.REJECTED,
                by=approver,
                note=text,
                now=now,
                body={},
            )
        return self.get(approval_id)

    def escalate(self, approval_id: str, *, approver: Actor, note: str) -> Approval:
        """Send a case one rung up the ladder, with a new due time; it stays pending.

        One rung up of the roles that grant its action: a role above that holds no authority
        over it is passed over.

        Any person other than the proposer may escalate, whatever their role covers; a case a
        review with `only` routed waits for that role and is never escalated past it.

        Raises:
            ApprovalError: it is already at the top human rung, an `only` review holds it, or
                the approver may not act.
            ApprovalNotFound, ApprovalConflict, ProposalError: as for `approve`.
        """
        text = _note(note)
        pack = self._guard.pack
        self._approver(pack, approver)
        now = self._guard.now()
        with self._pending(approval_id, now) as (tx, row):
            self._check_separation(row, approver)
            current = self._required(pack, row)
            policy = pack.actions.get(row.action)
            rules = set(self._decision(tx, row.id).rules)
            reviews = policy.reviews if policy is not None else ()
            review = next((r for r in reviews if r.only and r.id in rules), None)
            if review is not None:
                # Only that role is the review: above it, nobody could approve the case.
                raise ApprovalError(
                    f"approval {row.id} waits on review {review.id!r}, which only"
                    f" {review.by!r} decides; it cannot be escalated past it: {review.by!r}"
                    " approves or rejects it"
                )
            if current.beside:
                raise ApprovalError(
                    f"approval {row.id} is routed to {current.id!r}, beside the ladder: no rung"
                    f" stands in for it; {current.id!r} approves or rejects it"
                )
            # The next rung that grants the action: a team above that holds no authority over
            # it (a compliance officer above refunds) could only send it on or reject it.
            above = next(
                (r for r in rungs_above(pack, current) if policy is None or r.holds(row.action)),
                None,
            )
            if above is None:
                raise ApprovalError(
                    f"approval {row.id} is already routed to {current.id!r}, the top of the"
                    f" ladder of those who grant {row.action!r}; approve or reject it"
                )
            due = now + pack.approval_sla_for(row.action, above)
            tx.approvals.escalate(
                row.id, required_role=above.id, due_at=due, escalations=row.escalations + 1
            )
            _record(
                tx,
                row.id,
                "escalated",
                ApprovalStatus.PENDING,
                by=approver,
                note=text,
                now=now,
                from_role=current.id,
                to_role=above.id,
                due_at=due,
            )
        return self.get(approval_id)

    def cancel(self, approval_id: str, *, by: Actor, note: str) -> Approval:
        """Withdraw a routed case: by the actor who proposed it, or by a person who may decide it.

        Raises:
            ApprovalError: `by` neither proposed it nor may decide it.
            ApprovalNotFound, ApprovalConflict, ProposalError: as for `approve`.
        """
        text = _note(note)
        pack = self._guard.pack
        now = self._guard.now()
        # Who may cancel it is settled before its state is told or an overdue one expired: a
        # stranger learns nothing of it and changes nothing.
        self._check_may_cancel(pack, self.get(approval_id), by)
        with self._pending(approval_id, now) as (tx, row):
            self._check_may_cancel(pack, row, by)
            self._transition(tx, row, ApprovalStatus.CANCELLED, by=by, note=text, now=now, body={})
        return self.get(approval_id)

    def _check_may_cancel(self, pack: PolicyPack, row: ApprovalRow | Approval, by: Actor) -> None:
        if by.id == row.actor_id:
            return
        role = self._approver(pack, by)
        required = self._required(pack, row)
        if not role.decides_for(required):
            raise ApprovalError(
                f"approval {row.id}: only its proposer or a person who may decide it"
                f" ({required.id!r}{'' if required.beside else ' or above'}) can cancel it"
            )

    def _expire(self, tx: SqlTransaction, row: ApprovalRow, now: datetime) -> None:
        due = row.due_at
        self._transition(
            tx,
            row,
            ApprovalStatus.EXPIRED,
            by=None,
            note=f"nobody decided it by its due time {due.isoformat()}",
            now=now,
            body={"due_at": due},
        )

    def expire_due(self) -> builtins.list[Approval]:
        """Expire every pending approval whose due time has passed; return them."""
        now = self._guard.now()
        with self._store.transaction() as tx:
            # One being decided right now is left to its approver, who finds it overdue.
            rows = tx.approvals.due(now)
            for row in rows:
                self._expire(tx, row, now)
        return [self.get(row.id) for row in rows]

    # Executing ---------------------------------------------------------------------------------

    def register(self, tool: str, call: ToolCallable) -> None:
        """Register the function that runs `tool` for approved calls (the original tool)."""
        self._executors[tool] = call

    @property
    def executors(self) -> Mapping[str, ToolCallable]:
        """The registered tools, by name."""
        return dict(self._executors)

    def run_approved(self, *, limit: int = 100) -> builtins.list[Execution]:
        """Run the queued calls of approved cases whose tools are registered, each once.

        The key passed to the tool is the proposal's idempotency key, so a payment API can
        deduplicate on it too. A call that started and never reported how it ended is not
        run again (see `discretion.Executions`).
        """
        return self._guard.executions.run_pending(self._executors, limit=limit)
