"""The LLM judge on the `openai` client, against any OpenAI-compatible endpoint.

The client is built with `max_retries=0`, so tenacity is the one retry layer: transient errors
(timeouts, connection errors, 408, 409, 429, 5xx) are retried with backoff inside a bounded total
time, and every failure becomes a `JudgeError` (`JudgeTimeout` for timeouts) that the guard turns
into a route. The answer must match the strict output schema shipped with the prompts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from pydantic import ValidationError

from discretion.decision import Verdict
from discretion.errors import ConfigurationError, JudgeError, JudgeTimeout
from discretion.judge._request import Assessment, JudgeRequest

if TYPE_CHECKING:
    import httpx
    import openai
    from openai.types.chat import ChatCompletion

    from discretion.judge._retry import Wait

__all__ = ["OpenAIJudge"]


class OpenAIJudge:
    """Asks a model, through the OpenAI Chat Completions API, whether a rationale holds up.

    The model, base URL and key come from the arguments, else from the environment:
    `DISCRETION_JUDGE_MODEL`, `DISCRETION_JUDGE_BASE_URL` (or `OPENAI_BASE_URL`) and
    `DISCRETION_JUDGE_API_KEY` (or `OPENAI_API_KEY`). A missing key is not an error here: each
    decision the judge should review routes, with the cause recorded, until a key is set.

    Example:
        ```python
        judge = OpenAIJudge("gpt-4.1-mini", base_url="https://llm.internal/v1")
        guard = Guard(pack, store=store, context=cases, judge=judge)
        ```

    Args:
        model: the model to ask.
        base_url: the endpoint; OpenAI's when absent.
        api_key: the endpoint's key.
        http_client: the `httpx.Client` to send requests with (tests pass one that respx mocks).
        timeout_s: the longest one attempt may take.
        total_timeout_s: the longest all attempts and the waits between them may take.
        max_attempts: the most attempts, the first included.
        wait: a tenacity wait between attempts; random exponential backoff (0.5 s to 8 s) when
            absent. A 429's `Retry-After` is honoured when it is longer.
        sleep: how to wait; tenacity's when absent. Tests inject one that advances a fake clock.
        monotonic: the clock that bounds the total time and measures latency, in seconds.
        temperature: sampling temperature; None to leave it to the endpoint.
        max_output_tokens: the most tokens the answer may take.
        environ: where to read the environment from; `os.environ` when absent.

    Raises:
        ConfigurationError: no model is given or set in the environment, or the limits are not
            positive.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        http_client: httpx.Client | None = None,
        timeout_s: float = 20.0,
        total_timeout_s: float = 45.0,
        max_attempts: int = 4,
        wait: Wait | None = None,
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] | None = None,
        temperature: float | None = 0.0,
        max_output_tokens: int | None = 800,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        chosen = model or env.get("DISCRETION_JUDGE_MODEL")
        if not chosen:
            raise ConfigurationError(
                "OpenAIJudge needs a model: pass OpenAIJudge('model-name') or set"
                " DISCRETION_JUDGE_MODEL"
            )
        if timeout_s <= 0 or total_timeout_s <= 0 or max_attempts < 1:
            raise ConfigurationError(
                "OpenAIJudge: timeout_s and total_timeout_s must be above zero and max_attempts"
                " at least 1"
            )
        self._model = chosen
        self.base_url = (
            base_url or env.get("DISCRETION_JUDGE_BASE_URL") or env.get("OPENAI_BASE_URL")
        )
        self._api_key = api_key or env.get("DISCRETION_JUDGE_API_KEY") or env.get("OPENAI_API_KEY")
        self._http_client = http_client
        self.timeout_s = timeout_s
        self.total_timeout_s = total_timeout_s
        self.max_attempts = max_attempts
        try:
            from discretion.judge._retry import default_wait
        except ModuleNotFoundError as exc:
            raise ConfigurationError(
                f"the LLM judge needs the {exc.name} package: pip install 'discretion[openai]'"
            ) from exc
        self._wait: Wait = wait or default_wait()
        self._sleep = sleep
        self._monotonic = monotonic or time.monotonic
        self.temperature = temperature
        self.max_output_tokens = max_output_tokens
        self._client: openai.OpenAI | None = None

    @property
    def model(self) -> str:
        """The model the judge asks."""
        return self._model

    def _where(self) -> str:
        return f"model {self._model!r} at {self.base_url or 'https://api.openai.com/v1'}"

    def _openai(self) -> openai.OpenAI:
        if self._client is not None:
            return self._client
        if not self._api_key:
            raise JudgeError(
                f"the rationale judge ({self._where()}) has no API key: set"
                " DISCRETION_JUDGE_API_KEY or OPENAI_API_KEY, or pass OpenAIJudge(api_key=...)"
            )
        import openai

        self._client = openai.OpenAI(
            api_key=self._api_key,
            base_url=self.base_url,
            # The SDK takes an httpx2 client or a legacy httpx one; tests pass httpx for respx.
            http_client=cast(Any, self._http_client),
            max_retries=0,
            timeout=self.timeout_s,
        )
        return self._client

    def assess(self, request: JudgeRequest, /) -> Assessment:
        """Ask the model for a verdict on the request.

        Raises:
            JudgeTimeout: no answer within the time allowed.
            JudgeError: no key, an HTTP error, a refusal, or an answer that is not a verdict.
        """
        client = self._openai()
        import openai

        from discretion.judge._retry import retrying

        start = self._monotonic()
        attempts = 0

        def remaining() -> float:
            return self.total_timeout_s - (self._monotonic() - start)

        def attempt() -> ChatCompletion:
            nonlocal attempts
            attempts += 1
            return client.chat.completions.create(
                model=self._model,
                messages=cast(Any, request.prompt.messages()),
                response_format=cast(
                    Any,
                    {
                        "type": "json_schema",
                        "json_schema": {
                            "name": "verdict",
                            "strict": True,
                            "schema": dict(request.prompt.schema),
                        },
                    },
                ),
                temperature=self.temperature if self.temperature is not None else openai.omit,
                max_completion_tokens=self.max_output_tokens
                if self.max_output_tokens is not None
                else openai.omit,
                timeout=max(min(self.timeout_s, remaining()), 0.001),
            )

        retry = retrying(
            max_attempts=self.max_attempts,
            wait=self._wait,
            sleep=self._sleep,
            remaining_s=remaining,
        )
        try:
            completion = retry(attempt)
        except openai.APITimeoutError as exc:
            raise JudgeTimeout(
                f"the rationale judge ({self._where()}) did not answer in time: {attempts}"
                f" attempt(s) in {self._monotonic() - start:.1f}s (limit {self.total_timeout_s}s)"
            ) from exc
        except openai.APIStatusError as exc:
            raise JudgeError(
                f"the rationale judge ({self._where()}) answered HTTP {exc.status_code} after"
                f" {attempts} attempt(s) in {self._monotonic() - start:.1f}s:"
                f" {str(exc.message)[:200]}"
            ) from exc
        except openai.APIConnectionError as exc:
            raise JudgeError(
                f"cannot reach the rationale judge ({self._where()}) after {attempts}"
                f" attempt(s): {exc}"
            ) from exc
        except openai.OpenAIError as exc:
            raise JudgeError(
                f"the rationale judge ({self._where()}) failed: {type(exc).__name__}: {exc}"
            ) from exc
        verdict, usage = self._read(completion)
        return Assessment(
            verdict=verdict,
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
            latency_ms=round((self._monotonic() - start) * 1000, 3),
        )

    def _read(self, completion: Any) -> tuple[Verdict, tuple[int | None, int | None]]:
        """The verdict in a completion, or a JudgeError saying what is wrong with it."""
        where = self._where()
        choices = getattr(completion, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise JudgeError(f"the rationale judge ({where}) sent a response with no answer")
        choice = choices[0]
        message = getattr(choice, "message", None)
        refusal = getattr(message, "refusal", None)
        if refusal:
            raise JudgeError(f"the rationale judge ({where}) refused: {str(refusal)[:200]}")
        finish = getattr(choice, "finish_reason", None)
        if finish == "length":
            raise JudgeError(
                f"the rationale judge's answer ({where}) was cut off at max_output_tokens="
                f"{self.max_output_tokens}"
            )
        if finish == "content_filter":
            raise JudgeError(f"the endpoint's content filter stopped the judge's answer ({where})")
        content = getattr(message, "content", None)
        if not isinstance(content, str) or not content.strip():
            raise JudgeError(f"the rationale judge ({where}) answered with no content")
        try:
            # Strict: "yes" is not true, and "1" is not a boolean.
            verdict = Verdict.model_validate_json(content, strict=True)
        except ValidationError as exc:
            faults = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
                for err in exc.errors(include_url=False)[:3]
            )
            raise JudgeError(
                f"the rationale judge's answer ({where}) is not a verdict of the output schema:"
                f" {faults}"
            ) from exc
        usage = getattr(completion, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        completion_tokens = getattr(usage, "completion_tokens", None)
        return verdict, (
            prompt_tokens if isinstance(prompt_tokens, int) else None,
            completion_tokens if isinstance(completion_tokens, int) else None,
        )
