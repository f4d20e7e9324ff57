"""Step 7 of the pipeline: the rationale judges review an exception the checks allowed.

Invariant 2: a judge can only lower an outcome. Only `allow_exception` is reviewed by the
judges; `allow`, `route` and `deny` pass through untouched, unless the action's `claims` policy
checks claims on every decision (`_claims.py`), and no LLM judge is consulted for them. The
grounded judge always runs; the LLM judge runs when the exception's reason asks for it at this
amount. Any failure routes with its cause and a rule id recorded, to the lowest human role above
the actor whose authority covers the exception.

The LLM call happens here, before the decision's write transaction opens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from discretion.authority import lowest_above
from discretion.context import Snapshot
from discretion.decision import JudgeRecord, Outcome
from discretion.errors import JudgeError, JudgeTimeout
from discretion.judge._cache import JudgeMemory
from discretion.judge._grounded import GROUNDED, Fault, ground
from discretion.judge._prompt import render, require_jinja
from discretion.judge._request import Assessment, Judge, JudgeRequest, verdict_key
from discretion.money import Money
from discretion.pipeline._claims import answer_faults
from discretion.pipeline._state import Evaluation
from discretion.policy import ASSERTED, PolicyPack, Role
from discretion.proposal import Claim, Rationale
from discretion.store import SqlStore

__all__ = ["Review"]

NOT_JUSTIFIED = "discretion.judge.not-justified"
FAILED = "discretion.judge.failed"
TIMEOUT = "discretion.judge.timeout"
BUDGET_SPENT = "discretion.judge.budget-spent"
UNAVAILABLE = "discretion.judge.unavailable"


class Review:
    """Runs the rationale judges for a guard.

    Args:
        pack: the guard's pack: evidence and judge bands per reason, and the judge's settings.
        store: where verdicts are cached and the judge's daily calls counted.
        judge: the LLM judge; None for the grounded judge alone.
        timer: measures a judge's latency when it does not report one, in seconds.
    """

    def __init__(
        self,
        pack: PolicyPack,
        *,
        store: SqlStore,
        judge: Judge | None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        if judge is not None:
            require_jinja()
        self.pack = pack
        self.judge = judge
        self._memory = JudgeMemory(store)
        self._timer = timer

    def apply(
        self,
        evaluation: Evaluation,
        *,
        action: str,
        role: Role,
        rationale: Rationale,
        amount: Money | None,
        proposal_digest: str,
        snapshot: Snapshot,
        now: datetime,
    ) -> Evaluation:
        """The evaluation after the judges: the same, or lowered to a route with the causes."""
        policy = self.pack.actions[action].claims if action in self.pack.actions else None
        # Measured as authority is: on the whole when the action's authority is cumulative, so
        # a split does not slip under the judge's band piece by piece.
        amount_minor = _whole(evaluation, amount)
        if evaluation.outcome is not Outcome.ALLOW_EXCEPTION:
            return self.check_claims(
                evaluation,
                action=action,
                role=role,
                rationale=rationale,
                amount=amount,
                snapshot=snapshot,
            )
        reason = evaluation.reason
        grounding = ground(reason, rationale, snapshot, action=action)
        record = JudgeRecord(claims=grounding.claims)

        def lower(faults: list[Fault], record: JudgeRecord) -> Evaluation:
            return _lower(self.pack, evaluation, faults, record, action, role, amount_minor)

        if grounding.faults:
            # A failed claim is answered as the pack's `claims` says; a reason's missing
            # evidence alone routes, as it always has.
            if policy is not None and any(c.rule != GROUNDED for c in grounding.claims):
                return answer_faults(
                    self.pack,
                    policy,
                    evaluation,
                    grounding.faults,
                    record,
                    action=action,
                    role=role,
                    amount_minor=amount_minor,
                )
            return lower(grounding.faults, record)
        band = reason.judge if reason is not None else None
        if reason is None or band is None or not band.covers(amount_minor):
            return _keep(evaluation, record)
        judge = self.judge
        if judge is None:
            record = record.model_copy(update={"llm": "unconfigured"})
            if self.pack.judge.without_model == "skip":
                return _keep(evaluation, record)
            cause = (
                f"the pack asks the LLM judge to review {reason.id!r} exceptions of this amount,"
                " but the guard has none; pass Guard(judge=OpenAIJudge(...)) or set the pack's"
                " judge.without_model to skip"
            )
            return lower([Fault(UNAVAILABLE, cause)], record)
        # The agent's assertions are not facts from the systems of record: the judge reads
        # them among what the agent claims, never among the facts it is told are true.
        facts = {k: v for k, v in snapshot.data.items() if not k.startswith(ASSERTED)}
        claims = (
            *rationale.claims,
            *(
                Claim(field=k, value=v)
                for k, v in snapshot.data.items()
                if k.startswith(ASSERTED) and v is not None
            ),
        )
        request = JudgeRequest(
            action=action,
            reason=reason.id,
            clause=band.clause,
            amount=amount,
            actor_role=role.id,
            actor_is_ai=role.is_ai,
            facts=facts,
            claims=claims,
            text=rationale.text,
            proposal_digest=proposal_digest,
            context_digest=snapshot.digest,
            prompt=render(
                clause_id=reason.id,
                clause=band.clause,
                action=action,
                amount=amount,
                actor_role=role.id,
                actor_is_ai=role.is_ai,
                facts=facts,
                claims=claims,
                text=rationale.text,
            ),
        )
        record, fault = self._consult(judge, request, record, now)
        if fault is not None:
            return lower([fault], record)
        return _keep(evaluation, record)

    def check_claims(
        self,
        evaluation: Evaluation,
        *,
        action: str,
        role: Role,
        rationale: Rationale,
        amount: Money | None,
        snapshot: Snapshot,
    ) -> Evaluation:
        """An outcome other than an allowed exception, after its claims are checked.

        Only when the action's `claims` policy checks claims on every decision.

        Deterministic (no LLM), so it also runs again when the ledger moved under a decision.
        """
        policy = self.pack.actions[action].claims if action in self.pack.actions else None
        if (
            evaluation.outcome is Outcome.ALLOW_EXCEPTION
            or policy is None
            or not policy.every_decision
            or not rationale.claims
        ):
            return evaluation
        grounding = ground(None, rationale, snapshot, action=action)
        record = JudgeRecord(claims=grounding.claims)
        if not grounding.faults:
            return replace(evaluation, judge=record)
        return answer_faults(
            self.pack,
            policy,
            evaluation,
            grounding.faults,
            record,
            action=action,
            role=role,
            amount_minor=_whole(evaluation, amount),
        )

    def _consult(
        self, judge: Judge, request: JudgeRequest, record: JudgeRecord, now: datetime
    ) -> tuple[JudgeRecord, Fault | None]:
        """Ask the LLM judge (or its cache); the record, and a fault unless it is justified."""
        model = str(judge.model)
        record = record.model_copy(
            update={
                "model": model,
                "prompt_version": request.prompt.version,
                "prompt_hash": request.prompt.hash,
            }
        )
        key = verdict_key(request, model)
        assessment = self._memory.cached(key)
        if assessment is not None:
            record = record.model_copy(update={"cached": True})
        else:
            limit = self.pack.judge.daily_calls
            day = now.astimezone(UTC).date().isoformat()
            if limit is not None and not self._memory.take_call(day, limit):
                cause = (
                    f"the LLM judge's {limit} calls for {day} (UTC) are used up; the pack's"
                    " judge.daily_calls sets how many"
                )
                return record.model_copy(update={"llm": "budget_spent"}), Fault(BUDGET_SPENT, cause)
            answer = self._ask(judge, model, request)
            if isinstance(answer, Fault):
                return record.model_copy(update={"llm": "failed"}), answer
            assessment = answer
            self._memory.remember(
                key, assessment, model=model, prompt_hash=request.prompt.hash, at=now
            )
            record = record.model_copy(
                update={
                    "prompt_tokens": assessment.prompt_tokens,
                    "completion_tokens": assessment.completion_tokens,
                    "latency_ms": assessment.latency_ms,
                }
            )
        verdict = assessment.verdict
        record = record.model_copy(update={"verdict": verdict})
        if not verdict.justified or verdict.unsupported_claims:
            cause = (
                f"the LLM judge ({model}) found the rationale does not support"
                f" {request.reason!r} ({len(verdict.unsupported_claims)} unsupported claim(s)):"
                f" {verdict.reason[:300]}"
            )
            return record.model_copy(update={"llm": "not_justified"}), Fault(NOT_JUSTIFIED, cause)
        if verdict.clause != request.reason:
            cause = (
                f"the LLM judge ({model}) relied on clause {verdict.clause[:100]!r}, not the clause"
                f" it was given ({request.reason!r}); its verdict is not used"
            )
            return record.model_copy(update={"llm": "failed"}), Fault(FAILED, cause)
        return record.model_copy(update={"llm": "justified"}), None

    def _ask(self, judge: Judge, model: str, request: JudgeRequest) -> Assessment | Fault:
        start = self._timer()
        try:
            answer: object = judge.assess(request)
        except JudgeTimeout as exc:
            return Fault(TIMEOUT, str(exc))
        except JudgeError as exc:
            return Fault(FAILED, str(exc))
        except Exception as exc:  # noqa: BLE001 - any judge failure routes; it never allows
            return Fault(FAILED, f"the LLM judge ({model}) failed: {type(exc).__name__}: {exc}")
        if not isinstance(answer, Assessment):
            # A judge that answers something else (a mock, a bare dict) never keeps an exception.
            return Fault(
                FAILED,
                f"the LLM judge ({model}) answered a {type(answer).__name__}, not an Assessment",
            )
        if answer.latency_ms is None:
            elapsed_ms = round((self._timer() - start) * 1000, 3)
            answer = answer.model_copy(update={"latency_ms": elapsed_ms})
        return answer


def _keep(evaluation: Evaluation, record: JudgeRecord) -> Evaluation:
    fallback = evaluation.fallback
    return replace(
        evaluation,
        judge=record,
        # What stands without an applied precedent keeps the judges' record too.
        fallback=replace(fallback, judge=record) if fallback is not None else None,
    )


def _whole(evaluation: Evaluation, amount: Money | None) -> int:
    """The amount in minor units, measured as authority is.

    With what was already allowed on the same record when the action's authority is
    cumulative (`LedgerFacts.prior_minor`).
    """
    prior = evaluation.ledger.prior_minor if evaluation.ledger is not None else 0
    return (amount.minor if amount is not None else 0) + prior


def _lower(
    pack: PolicyPack,
    evaluation: Evaluation,
    faults: list[Fault],
    record: JudgeRecord,
    action: str,
    role: Role,
    amount_minor: int,
) -> Evaluation:
    rules = list(evaluation.rules)
    for fault in faults:
        if fault.rule not in rules:
            rules.append(fault.rule)
    return replace(
        evaluation,
        outcome=Outcome.ROUTE,
        rules=rules,
        required_role=lowest_above(pack, action, role, evaluation.reason, amount_minor),
        causes=[*evaluation.causes, *(fault.cause for fault in faults)],
        judge=record,
        precedents=evaluation.unapplied(),
        fallback=None,
    )
