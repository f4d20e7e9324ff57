"""Judges that need no model: a fixed verdict, and verdicts recorded from a real one.

`RecordingJudge` wraps a real judge and appends each verdict to a JSON Lines file;
`ReplayJudge` answers from that file, so eval suites run offline and deterministically with the
verdicts a real model gave. A verdict is recorded and found by the same key as the verdict
cache: the proposal, the context, the rendered prompt and the model.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from discretion.decision import Verdict
from discretion.errors import ConfigurationError, JudgeError
from discretion.judge._request import Assessment, Judge, JudgeRequest, verdict_key

__all__ = ["RecordingJudge", "ReplayJudge", "StaticJudge"]


class StaticJudge:
    """Gives the same verdict, or a verdict computed from the request, without any model.

    It keeps every request it was asked, for tests to inspect.

    Example:
        ```python
        judge = StaticJudge(Verdict(justified=False, clause="carrier-lost",
                                    unsupported_claims=[], reason="no tracking proof"))
        ```
    """

    def __init__(
        self, verdict: Verdict | Callable[[JudgeRequest], Verdict], *, model: str = "static"
    ) -> None:
        self._verdict = verdict
        self._model = model
        self.requests: list[JudgeRequest] = []
        """Every request assessed, oldest first."""

    @property
    def model(self) -> str:
        """The name this judge records as its model."""
        return self._model

    def assess(self, request: JudgeRequest, /) -> Assessment:
        """The fixed verdict, or the one the function gives for this request."""
        self.requests.append(request)
        verdict = self._verdict if isinstance(self._verdict, Verdict) else self._verdict(request)
        return Assessment(verdict=verdict)


class RecordingJudge:
    """Wraps a judge and appends each of its verdicts to a JSON Lines file.

    Args:
        inner: the judge that answers, usually an `OpenAIJudge`.
        path: the file to append to; created when missing.
    """

    def __init__(self, inner: Judge, path: str | Path) -> None:
        self.inner = inner
        self.path = Path(path)
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        """The inner judge's model."""
        return self.inner.model

    def assess(self, request: JudgeRequest, /) -> Assessment:
        """Ask the inner judge and record its answer; failures are not recorded."""
        assessment = self.inner.assess(request)
        line = {
            "key": verdict_key(request, self.model),
            "model": self.model,
            "action": request.action,
            "reason": request.reason,
            "proposal_digest": request.proposal_digest,
            "context_digest": request.context_digest,
            "prompt_version": request.prompt.version,
            "prompt_hash": request.prompt.hash,
            "assessment": assessment.model_dump(mode="json"),
        }
        text = json.dumps(line, sort_keys=True, ensure_ascii=False)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(text + "\n")
        return assessment


class ReplayJudge:
    """Answers from verdicts a `RecordingJudge` wrote; a question not recorded fails (routes).

    Args:
        path: the JSON Lines file of recorded verdicts.
        model: the model whose verdicts to replay; the file's only model when absent.

    Raises:
        ConfigurationError: the file cannot be read, a line is not a recorded verdict, or the
            model is ambiguous.
    """

    def __init__(self, path: str | Path, *, model: str | None = None) -> None:
        self.path = Path(path)
        self._recorded: dict[str, Assessment] = {}
        models: set[str] = set()
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigurationError(
                f"{self.path}: cannot read the recorded verdicts: {exc.strerror}"
            ) from exc
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                entry: dict[str, Any] = json.loads(text)
                key, recorded_model = str(entry["key"]), str(entry["model"])
                assessment = Assessment.model_validate(entry["assessment"])
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                raise ConfigurationError(
                    f"{self.path}:{number}: not a recorded verdict ({type(exc).__name__}: {exc});"
                    " write the file with RecordingJudge"
                ) from exc
            if model is None or recorded_model == model:
                # The newest recording of a question wins.
                self._recorded[key] = assessment
            models.add(recorded_model)
        if model is None:
            if len(models) != 1:
                found = ", ".join(sorted(models)) or "none"
                raise ConfigurationError(
                    f"{self.path}: name the model to replay with ReplayJudge(path, model=...);"
                    f" models recorded: {found}"
                )
            model = models.pop()
        self._model = model

    @property
    def model(self) -> str:
        """The model whose verdicts are replayed."""
        return self._model

    def __len__(self) -> int:
        return len(self._recorded)

    def assess(self, request: JudgeRequest, /) -> Assessment:
        """The recorded assessment of this exact question.

        Raises:
            JudgeError: nothing was recorded for it (the proposal, the facts, the prompt or the
                model differ from the recording).
        """
        found = self._recorded.get(verdict_key(request, self._model))
        if found is None:
            raise JudgeError(
                f"{self.path}: no verdict of {self._model!r} is recorded for this {request.action}"
                f" ({request.reason}, prompt {request.prompt.hash[:12]}); record it with"
                " RecordingJudge, or check that the prompt and facts have not changed"
            )
        return found
