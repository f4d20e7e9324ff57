"""What an eval run found: each decision of a case, each case, each suite, the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from discretion.decision import Outcome
from discretion.evals._judging import JudgeMode
from discretion.evals._suite import Case, Suite
from discretion.policy import PolicyPack

__all__ = ["ALLOWED", "CaseResult", "EvalRun", "Run", "SuiteRun"]

ALLOWED = frozenset(outcome.value for outcome in Outcome if outcome.is_allowed)
"""Outcomes under which money moves."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One decision of a case's proposal."""

    label: str
    """`first`, `repeat`, `retry` or `paraphrase N`."""
    outcome: str
    """An `Outcome` value, or `error` when discretion refused the proposal as malformed."""
    required_role: str | None = None
    rules: tuple[str, ...] = ()
    reason: str | None = None
    amount: Decimal | None = None
    """The amount the proposal moves, in `currency`."""
    currency: str | None = None
    explanation: str = ""
    causes: tuple[str, ...] = ()
    error: str | None = None
    """The error's message when the outcome is `error`."""
    error_type: str | None = None
    error_field: str | None = None
    decision_id: str | None = None
    judge_calls: int = 0
    judge_tokens: int = 0

    @property
    def is_allowed(self) -> bool:
        """Whether money would move."""
        return self.outcome in ALLOWED

    def key(self) -> tuple[str, str | None]:
        """What must agree between runs of one case: the outcome and the routed role."""
        return (self.outcome, self.required_role)

    def to_json(self) -> dict[str, Any]:
        """The run as JSON."""
        return {
            "label": self.label,
            "outcome": self.outcome,
            "required_role": self.required_role,
            "rules": list(self.rules),
            "reason": self.reason,
            "amount": str(self.amount) if self.amount is not None else None,
            "currency": self.currency,
            "explanation": self.explanation,
            "causes": list(self.causes),
            "error": self.error,
            "judge_calls": self.judge_calls,
            "judge_tokens": self.judge_tokens,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseResult:
    """What happened to one case."""

    suite: str
    case: Case
    first: Run | None
    """The first run; None when the case was skipped."""
    runs: tuple[Run, ...] = ()
    """Every run: first, retry, repeat and paraphrases."""
    failures: tuple[str, ...] = ()
    """Why the case failed, one sentence each; empty when it passed."""
    rules_seen: frozenset[str] = frozenset()
    """Every rule id any decision of the case carried, history included."""
    escalation: str | None = None
    """`over` or `under` when routed to a higher or lower role than expected."""
    skipped: str | None = None
    """Why the case was not run."""

    @property
    def passed(self) -> bool:
        """Whether every check of the case held."""
        return self.skipped is None and not self.failures

    @property
    def consistent(self) -> bool:
        """Whether every run got the same outcome and role."""
        return len({run.key() for run in self.runs}) <= 1

    @property
    def leaked(self) -> Decimal:
        """Money that would have moved although the case expected a route, deny or refusal.

        Counted once per case, at the proposal's amount, when any run allowed it.
        """
        if self.case.expect.outcome in ALLOWED:
            return Decimal(0)
        for run in self.runs:
            if run.is_allowed and run.amount is not None:
                return run.amount
        return Decimal(0)

    @property
    def false_block(self) -> bool:
        """Expected to be allowed, but routed, denied or refused."""
        return (
            self.first is not None
            and self.case.expect.outcome in ALLOWED
            and not self.first.is_allowed
        )

    @property
    def currency(self) -> str | None:
        """The currency of the proposal's amount."""
        return next((run.currency for run in self.runs if run.currency), None)

    def to_json(self) -> dict[str, Any]:
        """The result as JSON."""
        first = self.first
        return {
            "suite": self.suite,
            "id": self.case.id,
            "description": self.case.description,
            "tags": list(self.case.tags),
            "expected": self.case.expect.model_dump(mode="json", exclude_defaults=True),
            "actual": {
                "outcome": first.outcome,
                "required_role": first.required_role,
                "rules": list(first.rules),
            }
            if first is not None
            else None,
            "passed": self.passed,
            "skipped": self.skipped,
            "failures": list(self.failures),
            "consistent": self.consistent,
            "leaked": str(self.leaked),
            "currency": self.currency,
            "false_block": self.false_block,
            "escalation": self.escalation,
            "judge_calls": sum(run.judge_calls for run in self.runs),
            "judge_tokens": sum(run.judge_tokens for run in self.runs),
            "runs": [run.to_json() for run in self.runs],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SuiteRun:
    """A suite and its case results."""

    suite: Suite
    pack: PolicyPack
    results: tuple[CaseResult, ...]
    judge: JudgeMode = JudgeMode.OFF
    """The judge its cases were decided with."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalRun:
    """Every suite's results, as `run_suites` returns them."""

    suites: tuple[SuiteRun, ...]
    judge: JudgeMode | None
    """The judge every suite was decided with; None when each used its own."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Further sections for the reports, such as the decision-amnesia simulation."""

    @property
    def results(self) -> list[CaseResult]:
        """Every case result, suite by suite."""
        return [result for suite in self.suites for result in suite.results]
