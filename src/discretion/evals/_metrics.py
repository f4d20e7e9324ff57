"""The figures an eval run is judged by: accuracy, leakage, false blocks, consistency, coverage."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, get_args

from discretion.evals._results import ALLOWED, CaseResult, EvalRun, SuiteRun
from discretion.evals._suite import ExpectedOutcome, Thresholds
from discretion.policy import SYSTEM_RULES, PolicyPack

__all__ = [
    "OUTCOMES",
    "CategoryMetrics",
    "Coverage",
    "Metrics",
    "SuiteMetrics",
    "coverage_of",
    "measure",
    "measure_run",
    "missed_thresholds",
]

OUTCOMES: tuple[str, ...] = get_args(ExpectedOutcome)
"""Rows and columns of the confusion matrix."""


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def _miss_rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Coverage:
    """Which of a pack's rules the cases exercised."""

    pack: str
    version: str
    rules: tuple[str, ...]
    """Every rule id the pack defines (rules, hard limits, reasons, budgets)."""
    covered: tuple[str, ...]
    uncovered: tuple[str, ...]
    """Rules no case exercised."""
    system_covered: tuple[str, ...]
    """discretion's own rule ids the cases exercised."""

    @property
    def ratio(self) -> float:
        """The share of the pack's rules exercised."""
        return _rate(len(self.covered), len(self.rules))

    def to_json(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "pack": self.pack,
            "version": self.version,
            "total": len(self.rules),
            "covered": len(self.covered),
            "ratio": self.ratio,
            "uncovered": list(self.uncovered),
            "system_rules_exercised": list(self.system_covered),
            "system_rules_not_exercised": sorted(set(SYSTEM_RULES) - set(self.system_covered)),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Metrics:
    """Figures over a set of case results."""

    cases: int
    """Cases in the set, skipped ones included."""
    ran: int
    skipped: int
    passed: int
    failed: int
    outcome_correct: int
    """Cases whose first run got the expected outcome (and role when routed)."""
    confusion: dict[str, dict[str, int]]
    """Expected outcome, then actual outcome, to a count of cases."""
    leakage: dict[str, Decimal]
    """Per currency: money that would have moved in cases expected to route, deny or fail."""
    leaked_cases: int
    expected_allowed: int
    false_blocks: int
    expected_routed: int
    over_escalations: int
    under_escalations: int
    consistent: int
    runs: int
    """Decisions of case proposals made (history not counted)."""
    judge_calls: int
    judge_tokens: int

    @property
    def accuracy(self) -> float:
        """The share of run cases that passed every check."""
        return _rate(self.passed, self.ran)

    @property
    def outcome_accuracy(self) -> float:
        """The share of run cases that got the expected outcome."""
        return _rate(self.outcome_correct, self.ran)

    @property
    def false_block_rate(self) -> float:
        """The share of cases expected to be allowed that were not."""
        return _miss_rate(self.false_blocks, self.expected_allowed)

    @property
    def over_escalation_rate(self) -> float:
        """The share of cases expected to route that went to a higher role."""
        return _miss_rate(self.over_escalations, self.expected_routed)

    @property
    def consistency(self) -> float:
        """The share of run cases whose every run agreed."""
        return _rate(self.consistent, self.ran)

    @property
    def judge_calls_per_case(self) -> float:
        """LLM judge calls per run case."""
        return _miss_rate(self.judge_calls, self.ran)

    @property
    def judge_tokens_per_case(self) -> float:
        """LLM judge tokens per run case."""
        return _miss_rate(self.judge_tokens, self.ran)

    @property
    def leakage_text(self) -> str:
        """Leakage per currency (`140.00 EUR, 90.00 USD`; `0.00` for none): never added up."""
        if not self.leakage:
            return "0.00"
        return ", ".join(f"{amount} {code}" for code, amount in sorted(self.leakage.items()))

    @property
    def total_leakage(self) -> Decimal:
        """Leakage summed over currencies, for charts; thresholds and reports go per currency."""
        return sum(self.leakage.values(), Decimal(0))

    def to_json(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "cases": self.cases,
            "ran": self.ran,
            "skipped": self.skipped,
            "passed": self.passed,
            "failed": self.failed,
            "accuracy": self.accuracy,
            "outcome_accuracy": self.outcome_accuracy,
            "confusion": self.confusion,
            "leakage": {currency: str(amount) for currency, amount in self.leakage.items()},
            "leaked_cases": self.leaked_cases,
            "expected_allowed": self.expected_allowed,
            "false_blocks": self.false_blocks,
            "false_block_rate": self.false_block_rate,
            "expected_routed": self.expected_routed,
            "over_escalations": self.over_escalations,
            "under_escalations": self.under_escalations,
            "over_escalation_rate": self.over_escalation_rate,
            "consistent": self.consistent,
            "consistency": self.consistency,
            "runs": self.runs,
            "judge_calls": self.judge_calls,
            "judge_tokens": self.judge_tokens,
            "judge_calls_per_case": self.judge_calls_per_case,
            "judge_tokens_per_case": self.judge_tokens_per_case,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoryMetrics:
    """Figures for the cases carrying one tag."""

    tag: str
    metrics: Metrics


@dataclass(frozen=True, slots=True, kw_only=True)
class SuiteMetrics:
    """A suite's figures, its rule coverage and the thresholds it missed."""

    run: SuiteRun
    metrics: Metrics
    coverage: Coverage
    missed: tuple[str, ...] = ()
    """Thresholds the suite missed, one sentence each."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunMetrics:
    """Everything measured over an eval run."""

    overall: Metrics
    suites: tuple[SuiteMetrics, ...]
    coverage: tuple[Coverage, ...]
    """Per pack, over every suite that runs against it."""
    categories: tuple[CategoryMetrics, ...] = field(default=())

    @property
    def is_passing(self) -> bool:
        """No case failed and every suite met its thresholds."""
        return self.overall.failed == 0 and not any(s.missed for s in self.suites)


def measure(results: Sequence[CaseResult]) -> Metrics:
    """Figures over `results`."""
    confusion = {expected: dict.fromkeys(OUTCOMES, 0) for expected in OUTCOMES}
    leakage: dict[str, Decimal] = defaultdict(Decimal)
    counts: dict[str, int] = defaultdict(int)
    for result in results:
        first = result.first
        if first is None:
            counts["skipped"] += 1
            continue
        expect = result.case.expect
        counts["ran"] += 1
        counts["passed" if result.passed else "failed"] += 1
        confusion[expect.outcome][first.outcome] += 1
        if first.outcome == expect.outcome and (
            expect.outcome != "route" or first.required_role == expect.role
        ):
            counts["outcome_correct"] += 1
        leaked = result.leaked
        if leaked:
            leakage[result.currency or "?"] += leaked
            counts["leaked"] += 1
        if expect.outcome in ALLOWED:
            counts["expected_allowed"] += 1
            counts["false_blocks"] += result.false_block
        if expect.outcome == "route":
            counts["expected_routed"] += 1
            counts["over"] += result.escalation == "over"
            counts["under"] += result.escalation == "under"
        counts["consistent"] += result.consistent
        counts["runs"] += sum(run.label != "retry" for run in result.runs)
        counts["calls"] += sum(run.judge_calls for run in result.runs)
        counts["tokens"] += sum(run.judge_tokens for run in result.runs)
    return Metrics(
        cases=len(results),
        ran=counts["ran"],
        skipped=counts["skipped"],
        passed=counts["passed"],
        failed=counts["failed"],
        outcome_correct=counts["outcome_correct"],
        confusion=confusion,
        leakage=dict(leakage),
        leaked_cases=counts["leaked"],
        expected_allowed=counts["expected_allowed"],
        false_blocks=counts["false_blocks"],
        expected_routed=counts["expected_routed"],
        over_escalations=counts["over"],
        under_escalations=counts["under"],
        consistent=counts["consistent"],
        runs=counts["runs"],
        judge_calls=counts["calls"],
        judge_tokens=counts["tokens"],
    )


def coverage_of(pack: PolicyPack, results: Iterable[CaseResult]) -> Coverage:
    """Which of `pack`'s rules `results` exercised."""
    seen: set[str] = set()
    for result in results:
        seen |= result.rules_seen
    rules = tuple(pack.rule_ids())
    return Coverage(
        pack=pack.name,
        version=pack.version,
        rules=rules,
        covered=tuple(rule for rule in rules if rule in seen),
        uncovered=tuple(rule for rule in rules if rule not in seen),
        system_covered=tuple(sorted(rule for rule in seen if rule in SYSTEM_RULES)),
    )


def missed_thresholds(thresholds: Thresholds, metrics: Metrics, coverage: Coverage) -> list[str]:
    """The thresholds `metrics` miss, one sentence each."""
    missed: list[str] = []
    t = thresholds
    if t.max_leakage is not None:
        # Amounts in two currencies are never added: the maximum holds in each.
        for currency, amount in sorted(metrics.leakage.items()):
            if isinstance(t.max_leakage, dict):
                most = t.max_leakage.get(currency, Decimal(0))
            else:
                most = t.max_leakage
            if amount > most:
                missed.append(f"leakage {amount} {currency} is above the maximum {most}")
    if t.min_accuracy is not None and metrics.accuracy < t.min_accuracy:
        missed.append(f"accuracy {metrics.accuracy:.1%} is below the minimum {t.min_accuracy:.1%}")
    if t.max_false_block_rate is not None and metrics.false_block_rate > t.max_false_block_rate:
        missed.append(
            f"false-block rate {metrics.false_block_rate:.1%} is above the maximum"
            f" {t.max_false_block_rate:.1%}"
        )
    if (
        t.max_over_escalation_rate is not None
        and metrics.over_escalation_rate > t.max_over_escalation_rate
    ):
        missed.append(
            f"over-escalation rate {metrics.over_escalation_rate:.1%} is above the maximum"
            f" {t.max_over_escalation_rate:.1%}"
        )
    if t.min_consistency is not None and metrics.consistency < t.min_consistency:
        missed.append(
            f"consistency {metrics.consistency:.1%} is below the minimum {t.min_consistency:.1%}"
        )
    if t.min_rule_coverage is not None and coverage.ratio < t.min_rule_coverage:
        missed.append(
            f"rule coverage {coverage.ratio:.1%} is below the minimum {t.min_rule_coverage:.1%}"
            f" (not exercised: {', '.join(coverage.uncovered)})"
        )
    return missed


def measure_run(run: EvalRun) -> RunMetrics:
    """Measure a whole eval run: overall, per suite, per pack and per tag."""
    suites = []
    for suite_run in run.suites:
        metrics = measure(suite_run.results)
        coverage = coverage_of(suite_run.pack, suite_run.results)
        suites.append(
            SuiteMetrics(
                run=suite_run,
                metrics=metrics,
                coverage=coverage,
                # A suite whose every case was skipped has no figures to hold to its thresholds.
                missed=tuple(missed_thresholds(suite_run.suite.thresholds, metrics, coverage))
                if metrics.ran
                else (),
            )
        )
    by_pack: dict[str, tuple[PolicyPack, list[CaseResult]]] = {}
    for suite_run in run.suites:
        entry = by_pack.setdefault(suite_run.pack.version, (suite_run.pack, []))
        entry[1].extend(suite_run.results)
    tags: dict[str, list[CaseResult]] = defaultdict(list)
    for result in run.results:
        for tag in result.case.tags or ["untagged"]:
            tags[tag].append(result)
    return RunMetrics(
        overall=measure(run.results),
        suites=tuple(suites),
        coverage=tuple(coverage_of(pack, results) for pack, results in by_pack.values()),
        categories=tuple(
            CategoryMetrics(tag=tag, metrics=measure(results))
            for tag, results in sorted(tags.items())
        ),
    )
