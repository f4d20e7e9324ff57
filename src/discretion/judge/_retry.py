"""Retries for the LLM judge: tenacity, with backoff, inside a bounded total time.

Imported only when an `OpenAIJudge` is built: tenacity comes with the `openai` extra.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_random_exponential

__all__ = ["Wait", "default_wait", "retrying"]

Wait = Callable[[RetryCallState], float]
"""A tenacity wait: seconds to sleep before the next attempt."""

_TRANSIENT_STATUS = frozenset({408, 409, 429})
# A server asking for a longer pause than this is treated as down for this decision.
_RETRY_AFTER_CAP_S = 30.0


def default_wait() -> Wait:
    """Random exponential backoff between 0.5 s and 8 s."""
    return wait_random_exponential(multiplier=0.5, max=8)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in _TRANSIENT_STATUS or exc.status_code >= 500
    return False


def _retry_after_s(exc: BaseException | None) -> float | None:
    if not isinstance(exc, openai.APIStatusError):
        return None
    value = exc.response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return min(seconds, _RETRY_AFTER_CAP_S) if seconds is not None and seconds >= 0 else None


class _OutOfTime(stop_base):
    """Stop when the next wait would end past the total time allowed."""

    def __init__(self, remaining_s: Callable[[], float]) -> None:
        self._remaining_s = remaining_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._remaining_s() - retry_state.upcoming_sleep <= 0


def retrying(
    *,
    max_attempts: int,
    wait: Wait,
    sleep: Callable[[float], None] | None,
    remaining_s: Callable[[], float],
) -> Retrying:
    """A tenacity `Retrying` for transient errors, re-raising the last one when it gives up.

    A 429's `Retry-After` is honoured when it is longer than `wait`'s pause.
    """

    def pause(state: RetryCallState) -> float:
        chosen = wait(state)
        outcome = state.outcome
        after = _retry_after_s(outcome.exception() if outcome is not None else None)
        return max(chosen, after) if after is not None else chosen

    options: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    return Retrying(
        stop=stop_after_attempt(max_attempts) | _OutOfTime(remaining_s),
        wait=pause,
        retry=retry_if_exception(_transient),
        reraise=True,
        **options,
    )
