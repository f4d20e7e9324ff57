"""Reports of an eval run: a rich terminal summary, JSON, and a self-contained HTML page."""

from __future__ import annotations

from importlib import resources
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from discretion.errors import ConfigurationError
from discretion.evals._amnesia import AmnesiaResult
from discretion.evals._charts import Bar, Line, bar_chart, line_chart
from discretion.evals._metrics import OUTCOMES, RunMetrics, measure_run
from discretion.evals._results import EvalRun

__all__ = ["EvalReport"]

_PASS, _FAIL, _SKIP = "#2e7d32", "#c62828", "#9e9e9e"
_OUTCOME_COLORS = {
    "allow": "#2e7d32",
    "allow_exception": "#00838f",
    "route": "#f9a825",
    "deny": "#c62828",
    "error": "#6d4c41",
}


def _pct(value: float) -> str:
    return f"{value:.1%}"


class EvalReport:
    """An eval run with its figures, rendered for a terminal, as JSON or as HTML.

    Example:
        ```python
        report = evaluate(["evals/"])
        report.print(Console())
        Path("report.html").write_text(report.html(), encoding="utf-8")
        sys.exit(0 if report.is_passing else 1)
        ```
    """

    def __init__(self, run: EvalRun) -> None:
        self.run = run
        self.metrics: RunMetrics = measure_run(run)

    @property
    def is_passing(self) -> bool:
        """No case failed and every suite met its thresholds."""
        return self.metrics.is_passing

    @property
    def amnesia(self) -> AmnesiaResult | None:
        """The decision-amnesia simulation, when the run included one."""
        found = self.run.extras.get("amnesia")
        return found if isinstance(found, AmnesiaResult) else None

    def _judge_label(self) -> str:
        if self.run.judge is not None:
            return self.run.judge.value
        modes = sorted({s.judge.value for s in self.run.suites})
        return modes[0] if len(modes) == 1 else "per suite (" + ", ".join(modes) + ")"

    def _missed(self) -> list[tuple[str, str]]:
        return [(s.run.suite.suite, text) for s in self.metrics.suites for text in s.missed]

    def _leakage_text(self) -> str:
        return self.metrics.overall.leakage_text

    # JSON --------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The whole report as JSON: summary, suites, categories, coverage and every case."""
        m = self.metrics
        data: dict[str, Any] = {
            "passing": self.is_passing,
            "judge": self._judge_label(),
            "summary": m.overall.to_json(),
            "suites": [
                {
                    "suite": s.run.suite.suite,
                    "source": s.run.suite.source,
                    "pack": s.run.pack.name,
                    "pack_version": s.run.pack.version,
                    "metrics": s.metrics.to_json(),
                    "coverage": s.coverage.to_json(),
                    "judge": s.run.judge.value,
                    "thresholds": s.run.suite.thresholds.model_dump(mode="json"),
                    "missed_thresholds": list(s.missed),
                }
                for s in m.suites
            ],
            "coverage": [c.to_json() for c in m.coverage],
            "categories": {c.tag: c.metrics.to_json() for c in m.categories},
            "cases": [result.to_json() for result in self.run.results],
        }
        if self.amnesia is not None:
            data["amnesia"] = self.amnesia.to_json()
        return data

    # Terminal ----------------------------------------------------------------------------

    def print(self, console: Console, *, max_failures: int = 25) -> None:
        """Print the summary: per suite, the headline figures, coverage and failing cases."""
        console.print(self._summary(max_failures=max_failures))

    def _summary(self, *, max_failures: int) -> Group:
        m = self.metrics
        o = m.overall
        suites = Table(title="eval suites", title_justify="left")
        for column in ("suite", "cases", "passed", "failed", "skipped", "leakage"):
            suites.add_column(column, justify="left" if column == "suite" else "right")
        suites.add_column("false blocks", justify="right")
        suites.add_column("consistency", justify="right")
        suites.add_column("coverage", justify="right")
        suites.add_column("thresholds")
        for s in m.suites:
            sm = s.metrics
            suites.add_row(
                escape(s.run.suite.suite),
                str(sm.cases),
                str(sm.passed),
                f"[red]{sm.failed}[/red]" if sm.failed else "0",
                str(sm.skipped),
                f"[red]{sm.leakage_text}[/red]" if sm.leakage else "0.00",
                f"{sm.false_blocks} ({_pct(sm.false_block_rate)})",
                _pct(sm.consistency),
                _pct(s.coverage.ratio),
                "[red]missed[/red]" if s.missed else "[green]met[/green]",
            )
        lines = [
            f"cases {o.cases}: [green]{o.passed} passed[/green], "
            + (f"[red]{o.failed} failed[/red]" if o.failed else "0 failed")
            + (f", {o.skipped} skipped" if o.skipped else ""),
            f"accuracy {_pct(o.accuracy)} (outcome {_pct(o.outcome_accuracy)})",
            f"leakage {self._leakage_text()} in {o.leaked_cases} case(s)",
            f"false-block rate {_pct(o.false_block_rate)}"
            f" ({o.false_blocks} of {o.expected_allowed} cases expected to be allowed)",
            f"over-escalation {_pct(o.over_escalation_rate)} ({o.over_escalations} higher,"
            f" {o.under_escalations} lower than needed)",
            f"consistency {_pct(o.consistency)} ({o.consistent} of {o.ran} cases agree over"
            f" {o.runs} decisions: repeats and paraphrases)",
            f"judge ({self._judge_label()}): {o.judge_calls} calls, {o.judge_tokens} tokens",
        ]
        for c in m.coverage:
            uncovered = f"; not exercised: {', '.join(c.uncovered)}" if c.uncovered else ""
            lines.append(
                f"rule coverage {_pct(c.ratio)} of {escape(c.pack)}"
                f" ({len(c.covered)}/{len(c.rules)}){escape(uncovered)}"
            )
        amnesia = self.amnesia
        if amnesia is not None:
            lines.append(
                f"decision amnesia over {amnesia.tickets} tickets: ungoverned"
                f" {amnesia.ungoverned_total} {amnesia.currency}, behind discretion"
                f" {amnesia.governed_total} {amnesia.currency}"
            )
        parts: list[Any] = [suites, Text.from_markup("\n".join(lines))]
        for suite_name, text in self._missed():
            parts.append(
                Text.from_markup(f"[red]threshold missed[/red] {escape(suite_name)}: ") + Text(text)
            )
        failing = [r for r in self.run.results if r.skipped is None and not r.passed]
        if failing:
            table = Table(title=f"failing cases ({len(failing)})", title_justify="left")
            table.add_column("suite")
            table.add_column("case")
            table.add_column("why")
            for result in failing[:max_failures]:
                table.add_row(
                    escape(result.suite), escape(result.case.id), escape("\n".join(result.failures))
                )
            parts.append(table)
            if len(failing) > max_failures:
                parts.append(Text(f"... and {len(failing) - max_failures} more (see --json)"))
        skipped = [r for r in self.run.results if r.skipped is not None]
        if skipped:
            reasons = sorted({r.skipped or "" for r in skipped})
            parts.append(Text(f"skipped {len(skipped)} case(s): {'; '.join(reasons)}"))
        verdict = (
            "[green]PASS[/green] every case passed and every threshold was met"
            if self.is_passing
            else "[red]FAIL[/red]"
        )
        parts.append(Text.from_markup(verdict))
        return Group(*parts)

    # HTML --------------------------------------------------------------------------------

    def html(self) -> str:
        """A self-contained HTML page: inline CSS and SVG, nothing fetched.

        Raises:
            ConfigurationError: jinja2 is not installed (pip install 'discretion[evals]').
        """
        try:
            import jinja2
        except ImportError as exc:
            raise ConfigurationError(
                "the HTML report needs jinja2: pip install 'discretion[evals]'"
            ) from exc
        source = (
            resources.files("discretion.evals")
            .joinpath("templates/report.html.j2")
            .read_text(encoding="utf-8")
        )
        environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
        template = environment.from_string(source)
        return template.render(**self._html_context())

    def _html_context(self) -> dict[str, Any]:
        m = self.metrics
        o = m.overall
        results = self.run.results
        categories = list(m.categories)
        category_chart = bar_chart(
            [
                Bar(
                    label=c.tag,
                    values=(
                        float(c.metrics.passed),
                        float(c.metrics.failed),
                        float(c.metrics.skipped),
                    ),
                )
                for c in categories
            ],
            [("passed", _PASS), ("failed", _FAIL), ("skipped", _SKIP)],
            title="Cases per category",
            fmt=lambda v: f"{v:.0f}",
        )
        confusion = o.confusion
        outcome_chart = bar_chart(
            [
                Bar(
                    label="expected",
                    values=tuple(float(sum(confusion[name].values())) for name in OUTCOMES),
                ),
                Bar(
                    label="decided",
                    values=tuple(
                        float(sum(row[name] for row in confusion.values())) for name in OUTCOMES
                    ),
                ),
            ],
            [(name, _OUTCOME_COLORS[name]) for name in OUTCOMES],
            title="Outcomes, expected and decided",
            width=640,
            label_width=90,
            fmt=lambda v: f"{v:.0f}",
        )
        largest = max((n for row in o.confusion.values() for n in row.values()), default=0) or 1

        def cell_color(expected_outcome: str, actual_outcome: str, n: int) -> str:
            if n == 0:
                return "#fff"
            strength = 0.15 + 0.6 * n / largest
            hue = "46, 125, 50" if expected_outcome == actual_outcome else "198, 40, 40"
            return f"rgba({hue}, {strength:.2f})"

        context: dict[str, Any] = {
            "judge": self._judge_label(),
            "suites": self.run.suites,
            "overall": o,
            "passing": self.is_passing,
            "missed": self._missed(),
            "leakage_total": o.total_leakage,
            "leakage_text": self._leakage_text(),
            "coverage": m.coverage,
            "calls_per_case": o.judge_calls_per_case,
            "tokens_per_case": o.judge_tokens_per_case,
            "suite_rows": [
                {
                    "name": s.run.suite.suite,
                    "source": s.run.suite.source,
                    "m": s.metrics,
                    "coverage": s.coverage,
                    "missed": s.missed,
                }
                for s in m.suites
            ],
            "outcomes": OUTCOMES,
            "cell_color": cell_color,
            "categories": categories,
            "category_chart": category_chart,
            "outcome_chart": outcome_chart,
            "failing": [r for r in results if r.skipped is None and not r.passed],
            "skipped": [r for r in results if r.skipped is not None],
            "results": results,
            "pct": _pct,
            "amnesia": self.amnesia,
        }
        amnesia = self.amnesia
        if amnesia is not None:
            context["amnesia_money_chart"] = _amnesia_money(amnesia)
            context["amnesia_rate_chart"] = _amnesia_rate(amnesia)
        return context


def _amnesia_money(result: AmnesiaResult) -> str:
    return line_chart(
        [
            Line(
                label="approve what resembles past approvals",
                color=_FAIL,
                points=tuple((p.ticket, float(p.ungoverned_money)) for p in result.points),
            ),
            Line(
                label="the same agent behind discretion",
                color=_PASS,
                points=tuple((p.ticket, float(p.governed_money)) for p in result.points),
            ),
        ],
        title=f"Cumulative exception money ({result.currency})",
        x_label="tickets",
        y_label=result.currency,
        y_fmt=lambda v: f"{v:,.0f}",
    )


def _amnesia_rate(result: AmnesiaResult) -> str:
    return line_chart(
        [
            Line(
                label="ungoverned",
                color=_FAIL,
                points=tuple((p.ticket, p.ungoverned_rate) for p in result.points),
            ),
            Line(
                label="behind discretion",
                color=_PASS,
                points=tuple((p.ticket, p.governed_rate) for p in result.points),
                dashed=True,
            ),
        ],
        title="Exception rate (share of recent tickets)",
        x_label="tickets",
        y_label="rate",
        y_fmt=lambda v: f"{v:.0%}",
    )
