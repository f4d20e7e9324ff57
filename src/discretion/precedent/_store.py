"""Precedents kept in the store: set, find by scope, consume, revoke."""

from __future__ import annotations

import builtins
import functools
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from discretion.authority import covers_exception
from discretion.context import Snapshot
from discretion.decision import Decision, Outcome
from discretion.errors import ApprovalError, ConfigurationError, ProposalError
from discretion.lineage import canonical_json
from discretion.money import Money
from discretion.policy import PolicyPack, Role, Rule
from discretion.precedent._applicability import matches
from discretion.precedent._model import Precedent, PrecedentSpec, Range
from discretion.proposal import Actor
from discretion.store import NewPrecedent, PrecedentRow, SqlStore, SqlTransaction
from discretion.types import Clock, IdFactory

__all__ = ["Precedents"]

_HASHED_TYPES = ("string", "int", "bool")
"""Field types whose exact scope values go into the match digest; others are checked after."""


def _new_id() -> str:
    return f"prec_{uuid.uuid4().hex}"


def _stored_scope(scope: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in sorted(scope.items()):
        if isinstance(value, Range):
            out[key] = {
                bound: (v.isoformat() if isinstance(v, datetime) else str(v))
                for bound, v in (("min", value.min), ("max", value.max))
                if v is not None
            }
        else:
            out[key] = value
    return out


@functools.lru_cache(maxsize=1024)
def _parsed(body: str) -> Precedent:
    """A stored body validated once: the same text always validates to the same frozen model.

    Every decision whose case matches a scope reads the same candidates; validating their
    bodies again each time was most of the cost of finding them.
    """
    return Precedent.model_validate_json(body)


def _row(row: PrecedentRow) -> Precedent:
    # The body is validated as JSON in one pass (it holds the spec, revoked_by and
    # revoked_reason); the columns that change after setting are laid over it unvalidated.
    stored = _parsed(row.body)
    return stored.model_copy(update={"uses": row.uses, "revoked_at": row.revoked_at})


class Precedents:
    """The precedents on record, checked against the guard's pack.

    Example:
        ```python
        precedent = guard.precedents.set(decision.id, spec, grantor=manager)
        guard.precedents.revoke(precedent.id, by=manager, reason="carrier dispute settled")
        ```
    """

    def __init__(
        self,
        store: SqlStore,
        pack: PolicyPack | None,
        *,
        clock: Clock,
        ids: IdFactory | None = None,
    ) -> None:
        self.store = store
        self.pack = pack
        """The pack precedents are checked against; reading needs none, setting does."""
        self._clock = clock
        self._ids = ids or _new_id

    # Setting -----------------------------------------------------------------------------

    def set(
        self,
        decision_id: str,
        spec: PrecedentSpec | Mapping[str, Any],
        *,
        grantor: Actor,
        tx: SqlTransaction | None = None,
    ) -> Precedent:
        """Make the exception granted by `decision_id` citable within `spec`.

        The decision must have granted an exception (`allow_exception`, or a routed case a
        person approved). The pack must allow precedent for its reason; the scope must fix
        at least the keys the pack requires and cover the decision's own facts; the expiry and
        the citation cap stay inside the pack's maxima; the grantor's authority must cover the
        exception and the bounds. Pass `tx` to write inside an open transaction (an approval's).

        Raises:
            ApprovalError: the grantor may not set it.
            ProposalError: the spec does not fit the decision or the pack.
        """
        if not isinstance(spec, PrecedentSpec):
            try:
                spec = PrecedentSpec.model_validate(spec)
            except ValueError as exc:
                raise ProposalError(f"precedent spec: {exc}", field="precedent") from exc
        if tx is not None:
            return self._set(tx, decision_id, spec, grantor)
        with self.store.transaction() as own:
            return self._set(own, decision_id, spec, grantor)

    def _set(
        self, tx: SqlTransaction, decision_id: str, spec: PrecedentSpec, grantor: Actor
    ) -> Precedent:
        now = self._clock()
        # Sets from one decision happen one at a time, so "one precedent per decision" holds.
        tx.lock(decision_id)
        body = tx.decision_body(decision_id)
        if body is None:
            raise ProposalError(f"decision {decision_id!r} is not on record", field="decision_id")
        decision = Decision.model_validate(body["decision"])
        reason, policy = self._reason(decision, tx)
        # The grantor's authority in the decision's currency (at the rate it was decided at).
        priced = self._in_currency(decision, body.get("context", {}))
        role = self._grantor_role(priced, grantor, decision, reason, policy.set_by)
        action = self.policy.actions[decision.action]
        auth = role.authority[decision.action]
        grantor_limit = priced.money(auth.exception_minor)
        fields = self.policy.fields

        missing = [key for key in policy.scope if key not in spec.scope]
        if missing:
            raise ProposalError(
                f"precedent scope must fix {', '.join(missing)} for reason {reason.id!r}"
                f" (the pack requires: {', '.join(policy.scope)})",
                field="scope",
            )
        context = body.get("context", {})
        for key, value in spec.scope.items():
            if key not in action.reads:
                raise ProposalError(
                    f"scope key {key!r} is not a fact action {action.name!r} reads;"
                    f" reads: {', '.join(action.reads)}",
                    field=f"scope.{key}",
                )
            if key in self.policy.asserted:
                raise ProposalError(
                    f"scope key {key!r} is the agent's own assertion: a precedent's scope"
                    " matches grounded facts only",
                    field=f"scope.{key}",
                )
            self._check_scope_value(key, value, fields[key].type)
        facts = Snapshot.thaw(context, fields).values
        stored_scope = _stored_scope(spec.scope)
        uncovered = [k for k, v in stored_scope.items() if not matches(v, facts.get(k))]
        if uncovered:
            raise ProposalError(
                f"the scope does not cover decision {decision_id}'s own facts on"
                f" {', '.join(uncovered)}; a precedent must include the case it is set from",
                field="scope",
            )
        max_amount = spec.max_amount
        if policy.bound == "granted_amount":
            granted = self._granted(tx, decision)
            if spec.max_ratio is not None:
                raise ProposalError(
                    f"reason {reason.id!r} bounds a precedent by the amount granted"
                    f" ({granted}); give max_amount, not max_ratio",
                    field="max_ratio",
                )
            if (
                max_amount is not None
                and max_amount.currency == granted.currency
                and max_amount.minor > granted.minor
            ):
                raise ProposalError(
                    f"max_amount {max_amount} is above the {granted} granted in decision"
                    f" {decision_id}; reason {reason.id!r} reuses it for at most the same amount",
                    field="max_amount",
                )
        if max_amount is not None:
            if max_amount.currency != priced.currency:
                raise ProposalError(
                    f"max_amount must be in the decision's currency {priced.currency}",
                    field="max_amount",
                )
            if max_amount.minor > grantor_limit.minor:
                raise ApprovalError(
                    f"max_amount {max_amount} is above what role {role.id!r} may grant"
                    f" for {decision.action} ({grantor_limit})"
                )
        if spec.max_ratio is not None and policy.ratio_of is None:
            raise ProposalError(
                f"reason {reason.id!r} does not allow ratio bounds (the pack sets no ratio_of)",
                field="max_ratio",
            )
        if spec.expires_at <= now:
            raise ProposalError("expires_at must be in the future", field="expires_at")
        if spec.expires_at > now + policy.max_expiry:
            raise ProposalError(
                f"expires_at is past the longest expiry reason {reason.id!r} allows"
                f" ({now + policy.max_expiry:%Y-%m-%d %H:%M} UTC)",
                field="expires_at",
            )
        if policy.max_citations is not None and spec.citations > policy.max_citations:
            raise ProposalError(
                f"citations {spec.citations} is above the pack's cap of {policy.max_citations}"
                f" for reason {reason.id!r}",
                field="citations",
            )
        existing = tx.precedents.set_from(decision_id)
        if existing is not None:
            raise ProposalError(
                f"decision {decision_id} already set precedent {existing}; revoke it first",
                field="decision_id",
            )

        hashed = {
            key: value
            for key, value in stored_scope.items()
            if fields[key].type in _HASHED_TYPES and not isinstance(value, Mapping)
        }
        precedent = Precedent(
            id=self._ids(),
            source_decision_id=decision_id,
            action=decision.action,
            reason=reason.id,
            grantor_id=grantor.id,
            grantor_role=role.id,
            grantor_limit=grantor_limit,
            policy_version=self.policy.version,
            scope=stored_scope,
            max_amount=max_amount,
            max_ratio=spec.max_ratio,
            ratio_of=policy.ratio_of if spec.max_ratio is not None else None,
            expires_at=spec.expires_at,
            citations=spec.citations,
            learnable=spec.learnable,
            note=spec.note,
            created_at=now,
        )
        record = precedent.model_dump(mode="json", exclude={"uses", "revoked_at"})
        tx.precedents.add(
            NewPrecedent(
                id=precedent.id,
                source_decision_id=decision_id,
                action=precedent.action,
                reason=precedent.reason,
                exact_scope=hashed,
                bound_minor=precedent.max_amount.minor if precedent.max_amount else None,
                learnable=precedent.learnable,
                citations=precedent.citations,
                expires_at=precedent.expires_at,
                created_at=now,
                body=canonical_json(record),
            )
        )
        tx.record("precedent.set", precedent.id, record, at=now, chain=precedent.source_decision_id)
        return precedent

    def _in_currency(self, decision: Decision, context: Mapping[str, Any]) -> PolicyPack:
        """The pack with its amounts in `decision`'s currency, at the rate it recorded."""
        pack = self.policy
        if decision.amount is None or decision.amount.currency == pack.currency:
            return pack
        rate = None
        if pack.rates is not None:
            rate = Snapshot.thaw(context, pack.fields).values.get(pack.rates.fact)
        return pack.in_currency(decision.amount.currency, rate)

    def _reason(self, decision: Decision, tx: SqlTransaction) -> tuple[Rule, Any]:
        action = self.policy.actions.get(decision.action)
        reason = action.reason(decision.reason) if action and decision.reason else None
        if reason is None:
            raise ProposalError(
                f"decision {decision.id} granted no exception reason of pack {self.policy.name!r};"
                " only a granted exception can become precedent",
                field="decision_id",
            )
        if reason.precedent is None:
            raise ProposalError(
                f"pack {self.policy.name!r} does not let reason {reason.id!r} become precedent"
                " (it has no `precedent:` settings)",
                field="decision_id",
            )
        granted = decision.outcome is Outcome.ALLOW_EXCEPTION
        if decision.outcome is Outcome.ROUTE:
            granted = tx.has_record(decision.id, "approval.approved")
        if not granted:
            raise ProposalError(
                f"decision {decision.id} ({decision.outcome}) granted no exception: only an"
                " allow_exception or an approved routed case can become precedent",
                field="decision_id",
            )
        return reason, reason.precedent

    @staticmethod
    def _granted(tx: SqlTransaction, decision: Decision) -> Money:
        """What `decision` granted: its amount, or what the person who approved it granted."""
        if decision.outcome is Outcome.ROUTE:
            approved = tx.latest_record(decision.id, "approval.approved")
            if approved is not None and approved.get("amount") is not None:
                return Money.read(approved["amount"])
        if decision.amount is None:  # pragma: no cover - an exception always has an amount
            raise ProposalError(f"decision {decision.id} granted no amount", field="decision_id")
        return decision.amount

    def _grantor_role(
        self,
        pack: PolicyPack,
        grantor: Actor,
        decision: Decision,
        reason: Rule,
        set_by: frozenset[str] | None,
    ) -> Role:
        role = pack.role(grantor.role)
        if role is None or role.is_ai != grantor.is_ai:
            raise ApprovalError(
                f"grantor {grantor.id!r}: role {grantor.role!r} is not a matching role of the pack"
            )
        if set_by is not None and role.id not in set_by:
            raise ApprovalError(
                f"role {role.id!r} may not set precedent for reason {reason.id!r};"
                f" set_by: {', '.join(sorted(set_by))}"
            )
        if set_by is None and role.is_ai:
            raise ApprovalError("an AI actor sets precedent only where the pack's set_by names it")
        sent_to = (decision.required_role, decision.actor_role)
        if set_by is None and role.beside and role.id not in sent_to:
            # It decides only what is sent to it: a precedent on another's case would extend
            # what the agent may grant alone, past every rung.
            raise ApprovalError(
                f"role {role.id!r} is beside the ladder and decides only what is sent to it; it"
                f" sets precedent on its own cases and those routed to it, or where reason"
                f" {reason.id!r}'s precedent set_by names it"
            )
        amount = decision.amount.minor if decision.amount is not None else 0
        if not covers_exception(role, decision.action, reason, amount):
            raise ApprovalError(
                f"role {role.id!r} has no authority to grant {reason.id!r} for"
                f" {decision.amount}, so it cannot make it precedent"
            )
        return role

    def _check_scope_value(self, key: str, value: Any, kind: str) -> None:
        bound = (
            (value.min if value.min is not None else value.max)
            if isinstance(value, Range)
            else None
        )
        match kind:
            case "string" | "list[string]":
                ok = isinstance(value, str)
            case "bool":
                ok = isinstance(value, bool)
            case "int":
                ok = isinstance(bound, Decimal) or (
                    isinstance(value, int) and not isinstance(value, bool)
                )
            case "money":
                ok = isinstance(bound, Decimal) or _finite_number(value)
            case "timestamp":
                ok = isinstance(bound, datetime) or _aware_time(value)
            case _:
                ok = False
        if not ok:
            raise ProposalError(
                f"scope {key}: {value!r} does not fit a {kind} fact (exact values for strings,"
                " ints and bools; a member for lists; ranges for ints, money and times; a time"
                " as ISO 8601 with its offset, such as 2026-11-01T00:00:00+00:00)",
                field=f"scope.{key}",
            )

    @property
    def policy(self) -> PolicyPack:
        """The pack, which setting, finding and revoking need."""
        if self.pack is None:
            raise ConfigurationError("setting, finding or revoking precedent needs a policy pack")
        return self.pack

    # Reading -----------------------------------------------------------------------------

    def get(self, precedent_id: str) -> Precedent | None:
        """A precedent by id."""
        found = self.load([precedent_id])
        return found.get(precedent_id)

    def load(self, ids: Iterable[str]) -> dict[str, Precedent]:
        """The precedents with these ids that exist."""
        return {key: _row(row) for key, row in self.store.precedents.load(ids).items()}

    def list(
        self,
        *,
        action: str | None = None,
        reason: str | None = None,
        active_only: bool = False,
        limit: int = 100,
    ) -> builtins.list[Precedent]:
        """Precedents newest first; `active_only` leaves out revoked, expired and used-up ones."""
        rows = self.store.precedents.list(
            action=action,
            reason=reason,
            live_at=self._clock() if active_only else None,
            limit=limit,
        )
        return [_row(row) for row in rows]

    def find(
        self, *, action: str, reason: str, snapshot: Snapshot, amount: Money, now: datetime
    ) -> builtins.list[Precedent]:
        """Live precedents whose exact scope matches the case, through the match index.

        Those whose fixed bound is below `amount` are left unread. Range, money, time and list
        scope keys, and ratio bounds, are checked afterwards by `check`.
        """
        fields = self.policy.fields
        # Only facts with an exact value can equal a stored scope value; a key set naming any
        # other fact finds nothing.
        facts = {
            k: v
            for k, v in snapshot.values.items()
            if k in fields and isinstance(v, (str, int, bool))
        }
        rows = self.store.precedents.find(
            action=action, reason=reason, facts=facts, now=now, amount_minor=amount.minor
        )
        return [_row(row) for row in rows]

    # Writing -----------------------------------------------------------------------------

    def consume(self, tx: SqlTransaction, precedent_id: str, *, now: datetime) -> bool:
        """Take one citation inside the decision's transaction; False when none is left.

        The conditional update is atomic: two decisions cannot both take the last citation.
        """
        return tx.precedents.consume(precedent_id, now=now)

    def revoke(self, precedent_id: str, *, by: Actor, reason: str) -> Precedent:
        """Stop a precedent from being cited; recorded in the lineage with who and why.

        Raises:
            ApprovalError: `by` is an AI actor, or has no authority over the precedent's action.
            ProposalError: no such precedent, it is already revoked, or `reason` is empty.
        """
        if not reason.strip():
            raise ProposalError("revoking needs a reason", field="reason")
        role = self.policy.role(by.role)
        if role is None or role.is_ai or by.is_ai:
            raise ApprovalError(f"{by.id!r} ({by.role}) may not revoke precedent: a person must")
        now = self._clock()
        with self.store.transaction() as tx:
            row = tx.precedents.claim(precedent_id)
            if row is None:
                raise ProposalError(f"precedent {precedent_id!r} does not exist", field="id")
            if row.revoked_at is not None:
                raise ProposalError(f"precedent {precedent_id} is already revoked", field="id")
            if row.action not in role.authority:
                raise ApprovalError(f"role {role.id!r} has no authority over {row.action!r}")
            body = json.loads(row.body)
            body.update(revoked_by=by.id, revoked_reason=reason.strip())
            tx.precedents.revoke(precedent_id, at=now, body=canonical_json(body))
            tx.record(
                "precedent.revoked",
                precedent_id,
                {"precedent_id": precedent_id, "by": by.id, "role": role.id, "reason": reason},
                at=now,
                chain=row.source_decision_id,
            )
        revoked = self.get(precedent_id)
        if revoked is None:  # pragma: no cover - the row was just updated
            raise ProposalError(f"precedent {precedent_id!r} vanished", field="id")
        return revoked


def _finite_number(value: Any) -> bool:
    """Whether `value` is an int or a numeric string with a finite value (a money amount)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return False
    try:
        return Decimal(str(value)).is_finite()
    except ArithmeticError:
        return False


def _aware_time(value: Any) -> bool:
    """Whether `value` is an ISO 8601 time with its offset, as a timestamp fact is compared to."""
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False
