"""The judge an eval run decides with: none, each case's recorded verdict, or the live one."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from discretion.decision import Decision, Verdict
from discretion.errors import ConfigurationError, JudgeError
from discretion.evals._suite import Case
from discretion.judge import Assessment, Judge, JudgeRequest

__all__ = ["CaseVerdictJudge", "JudgeMode", "JudgeSession", "judge_usage"]


class JudgeMode(StrEnum):
    """Which LLM judge an eval run uses; the grounded checks always run."""

    OFF = "off"
    """No LLM judge: what the pack says for exceptions it asks an LLM to review (route, or
    skip with `without_model: skip`)."""
    RECORDED = "recorded"
    """Each case's recorded verdict, offline and deterministic."""
    LIVE = "live"
    """The configured LLM judge (`OpenAIJudge` from the environment)."""


class CaseVerdictJudge:
    """Answers with the verdict recorded in a case; a case with none fails (routes)."""

    def __init__(self, case: Case) -> None:
        self._case = case

    @property
    def model(self) -> str:
        """The name recorded as the judge's model."""
        return "recorded"

    def assess(self, request: JudgeRequest, /) -> Assessment:
        """The case's recorded verdict.

        Raises:
            JudgeError: the case has no recorded verdict.
        """
        recorded = self._case.judge
        if recorded is None:
            raise JudgeError(
                f"case {self._case.id!r} has no recorded verdict; add one under 'judge:' or run"
                " with --judge live"
            )
        verdict = Verdict(
            justified=recorded.justified,
            clause=recorded.clause or request.reason,
            unsupported_claims=list(recorded.unsupported_claims),
            reason=recorded.reason or "recorded verdict",
        )
        return Assessment(verdict=verdict, prompt_tokens=recorded.tokens, completion_tokens=0)


class JudgeSession:
    """Builds the judge each case's guard uses during one eval run."""

    def __init__(self, mode: JudgeMode, *, live: Judge | None = None) -> None:
        self.mode = mode
        self._live = live
        if mode is JudgeMode.LIVE and live is None:
            try:
                from discretion.judge import OpenAIJudge
            except ImportError as exc:  # the openai extra
                raise ConfigurationError(
                    "--judge live needs the openai extra: pip install 'discretion[openai]'"
                ) from exc
            self._live = OpenAIJudge()

    def guard_options(self, case: Case) -> dict[str, Any]:
        """Keyword arguments for the `Guard` that decides `case`."""
        match self.mode:
            case JudgeMode.OFF:
                return {}
            case JudgeMode.RECORDED:
                return {"judge": CaseVerdictJudge(case)}
            case JudgeMode.LIVE:
                return {"judge": self._live}


def judge_usage(decision: Decision) -> tuple[int, int]:
    """The LLM judge calls and tokens a decision cost: (0, 0) when it asked none."""
    record = decision.judge
    if (
        record is None
        or record.cached
        or record.llm not in ("justified", "not_justified", "failed")
    ):
        return 0, 0
    return 1, (record.prompt_tokens or 0) + (record.completion_tokens or 0)
