"""Offline evals: suites of edge-case tickets, their reports, and policy replay.

A suite (YAML in `evals/`) names a pack and its context fixtures and lists hand-written support
cases with the outcome each must get. `evaluate` decides every case in a fresh ledger, twice and
with paraphrased rationales, and measures accuracy, leakage (money that would have moved where
it should not), false blocks, over-escalation, consistency and rule coverage; `EvalReport`
prints them, and writes JSON and a self-contained HTML page. `replay` re-decides a ledger's
recorded proposals under another pack without writing to it; `shadow_report` reads what a
`Guard(..., shadow=...)` pack would have decided.

Example:
    ```python
    from discretion.evals import evaluate

    report = evaluate(["evals/"])
    report.print(Console())
    assert report.is_passing
    ```
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from discretion.errors import ConfigurationError
from discretion.evals._amnesia import AmnesiaPoint, AmnesiaResult, simulate_amnesia
from discretion.evals._judging import JudgeMode
from discretion.evals._metrics import Coverage, Metrics
from discretion.evals._replay import Exposure, ReplayChange, ReplayReport, replay, shadow_report
from discretion.evals._report import EvalReport
from discretion.evals._results import CaseResult, EvalRun, Run, SuiteRun
from discretion.evals._runner import run_suites
from discretion.evals._suite import (
    Case,
    Expectation,
    HistoryItem,
    PrecedentSetup,
    RecordedVerdict,
    Suite,
    Thresholds,
    load_suite,
    load_suites,
)
from discretion.judge import Judge

__all__ = [
    "AmnesiaPoint",
    "AmnesiaResult",
    "Case",
    "CaseResult",
    "Coverage",
    "EvalReport",
    "EvalRun",
    "Expectation",
    "Exposure",
    "HistoryItem",
    "JudgeMode",
    "Metrics",
    "PrecedentSetup",
    "RecordedVerdict",
    "ReplayChange",
    "ReplayReport",
    "Run",
    "Suite",
    "SuiteRun",
    "Thresholds",
    "evaluate",
    "load_suite",
    "load_suites",
    "replay",
    "run_suites",
    "shadow_report",
    "simulate_amnesia",
]


def evaluate(
    paths: Iterable[str | Path | Suite],
    *,
    judge: JudgeMode | str | None = None,
    live_judge: Judge | None = None,
    amnesia: int = 0,
    seed: int = 7,
    on_case: Callable[[CaseResult], None] | None = None,
) -> EvalReport:
    """Load the suites among `paths`, run them, and measure the run.

    Args:
        paths: suite files, folders searched for suites, or loaded suites.
        judge: `off`, `recorded` or `live` for every suite; each suite's own when None.
        live_judge: the judge `live` asks; an `OpenAIJudge` from the environment when absent.
        amnesia: when above zero, also simulate decision amnesia over this many refund tickets
            on the first suite's pack, for the report.
        seed: the simulation's random seed.
        on_case: called after each case, for progress.

    Raises:
        ConfigurationError: a suite, its pack or its context does not load.
    """
    suites: list[Suite] = []
    for item in paths:
        suites.extend([item] if isinstance(item, Suite) else load_suites([item]))
    run = run_suites(suites, judge=judge, live_judge=live_judge, on_case=on_case)
    if amnesia > 0:
        packs = [s.pack for s in run.suites if "refund" in s.pack.actions]
        if not packs:
            raise ConfigurationError("the amnesia simulation needs a suite whose pack has refunds")
        run.extras["amnesia"] = simulate_amnesia(packs[0], tickets=amnesia, seed=seed)
    return EvalReport(run)


for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = "discretion.evals"
