"""Prometheus metrics of a guard, served at `/metrics` by the HTTP app.

Counted as decisions are recorded (per process): decisions by outcome and action, the rules
that fired, exception money granted, the LLM judge's latency, verdicts and errors. Read from
the database at each scrape (the same on every replica): the approval queue's depth and the
age of its oldest case, and how much of each budget is used in its window. Working rows refused
for disagreeing with the ledger are counted per process (`discretion_ledger_binding_failures`).

Several worker processes (`discretion serve --workers N`) share counters through
prometheus_client's multiprocess mode: set `PROMETHEUS_MULTIPROC_DIR` to an empty folder
before the workers start (`serve` does so itself).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from discretion.decision import Decision, Outcome

if TYPE_CHECKING:
    from discretion.policy import PolicyPack
    from discretion.store import SqlStore

__all__ = ["CONTENT_TYPE", "GuardMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format."""

_JUDGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
_JUDGE_ERRORS = {"failed", "budget_spent", "unconfigured"}


class _StoreCollector(Collector):
    """Gauges read from the database at scrape time: the queue and budget utilisation."""

    def __init__(self, store: SqlStore, pack: PolicyPack, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._pack = pack
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        now = self._clock()
        refused = CounterMetricFamily(
            "discretion_ledger_binding_failures",
            "Working rows refused because they disagreed with their ledger record, by table"
            " (this process).",
            labels=["table"],
        )
        for table, failures in sorted(self._store.bindings.failures.items()):
            refused.add_metric([table], failures)
        depth = GaugeMetricFamily(
            "discretion_approvals_pending",
            "Routed cases waiting for a person, by the role they need.",
            labels=["required_role"],
        )
        oldest = GaugeMetricFamily(
            "discretion_approvals_oldest_age_seconds",
            "How long the oldest pending case has waited.",
        )
        used = GaugeMetricFamily(
            "discretion_budget_utilisation_ratio",
            "The largest share of a budget's limit any one key has used in its window.",
            labels=["budget"],
        )
        reserved = GaugeMetricFamily(
            "discretion_budget_reserved_minor_units",
            "Minor units reserved against a budget in its window, over all keys.",
            labels=["budget", "currency"],
        )
        queue = self._store.reports.queue()
        # Each budget's own window, `(since, now]`, as the pipeline's budgets count it; one
        # whose calendar begins in each case's own time zone, over its longest span (its keys'
        # periods begin at different times: an upper bound, safe to alert on).
        pack = self._pack
        windows = [
            (b.id, b.since(now) if b.zone_fact is None else now - b.window) for b in pack.budgets
        ]
        ratios = dict.fromkeys((b.id for b in pack.budgets), 0.0)
        # A pack in several currencies reserves in each: one series per currency. The
        # utilisation of a cap per currency (`each`) is the largest share in any currency
        # whose limit is known; of one cap across them (`together`), stated per currency, the
        # shares add up: the largest key's in each, which may be different keys, so the gauge
        # is at least what any one key used (an upper bound: alert on it safely). With rates a
        # cap across them is kept in the base. A unit (miles) is a series of its own too.
        codes = (*pack.accepts, *pack.units)
        several = len(codes) > 1
        for currency in codes:
            use = self._store.reports.budget_use(windows, currency=currency if several else None)
            known = pack.rates is None or currency == pack.currency or currency in pack.units
            budgets = pack.in_currency(currency).budgets if known else pack.budgets
            for budget, spent in zip(budgets, use, strict=True):
                if budget.unit != (currency if currency in pack.units else None):
                    continue  # a budget in miles has no series in euros, nor the reverse
                if known and budget.limit_minor:
                    share = spent.top_key_minor / budget.limit_minor
                    adds = several and budget.together and pack.rates is None
                    ratios[budget.id] = (
                        ratios[budget.id] + share if adds else max(ratios[budget.id], share)
                    )
                reserved.add_metric([budget.id, currency], spent.total_minor)
        for budget_id, ratio in ratios.items():
            used.add_metric([budget_id], ratio)
        for waiting in queue:
            depth.add_metric([waiting.required_role], waiting.pending)
        first = min((w.oldest_opened_at for w in queue), default=None)
        oldest.add_metric([], max(0.0, (now - first).total_seconds()) if first is not None else 0.0)
        yield depth
        yield oldest
        yield used
        yield reserved
        yield refused


class GuardMetrics:
    """The Prometheus metrics of one guard, in a registry of their own.

    Example:
        ```python
        metrics = GuardMetrics(guard)          # counts each decision guard records
        body = metrics.exposition()             # what /metrics serves
        ```

    Args:
        guard: the guard to count; its store must be a `SqlStore` for the gauges.
    """

    def __init__(self, guard: Any) -> None:
        self.registry = CollectorRegistry()
        """Where the counters and gauges are registered."""
        r = self.registry
        self._decisions = Counter(
            "discretion_decisions",
            "Decisions recorded, by outcome and action.",
            ["outcome", "action"],
            registry=r,
        )
        self._rules = Counter(
            "discretion_decision_rules",
            "Rule ids in recorded decisions, by rule and outcome.",
            ["rule", "outcome"],
            registry=r,
        )
        self._exceptions = Counter(
            "discretion_exception_minor_units",
            "Money granted as exceptions (allow_exception), in minor units.",
            ["action", "currency"],
            registry=r,
        )
        self._judge_latency = Histogram(
            "discretion_judge_latency_seconds",
            "How long the LLM judge took, retries included (cached verdicts excluded).",
            ["model"],
            buckets=_JUDGE_BUCKETS,
            registry=r,
        )
        self._judge_verdicts = Counter(
            "discretion_judge_verdicts",
            "What came of asking the LLM judge: justified, not_justified, failed, ...",
            ["model", "result"],
            registry=r,
        )
        self._judge_errors = Counter(
            "discretion_judge_errors",
            "LLM judge reviews that could not give a verdict (the decision routed).",
            ["model", "kind"],
            registry=r,
        )
        self._gauges = _StoreCollector(guard.store, guard.pack, guard.now)
        r.register(self._gauges)
        guard.observers.append(self.observe)

    def observe(self, decision: Decision) -> None:
        """Count one recorded decision."""
        outcome = decision.outcome.value
        self._decisions.labels(outcome, decision.action).inc()
        for rule in decision.rules:
            self._rules.labels(rule, outcome).inc()
        if decision.outcome is Outcome.ALLOW_EXCEPTION and decision.amount is not None:
            amount = decision.amount
            self._exceptions.labels(decision.action, amount.currency).inc(amount.minor)
        judge = decision.judge
        if judge is not None and judge.llm != "not_asked":
            model = judge.model or "none"
            self._judge_verdicts.labels(model, judge.llm).inc()
            if judge.llm in _JUDGE_ERRORS:
                self._judge_errors.labels(model, judge.llm).inc()
            if judge.latency_ms is not None:
                self._judge_latency.labels(model).observe(judge.latency_ms / 1000)

    def exposition(self) -> bytes:
        """The metrics in Prometheus's text format.

        In multiprocess mode the counters are summed over every worker's files and the gauges
        are read once.
        """
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            registry.register(self._gauges)
            return generate_latest(registry)
        return generate_latest(self.registry)
