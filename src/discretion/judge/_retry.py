"""Retries for the LLM judge: tenacity, with backoff, inside a bounded total time.

Built by `discretion._retry`, as webhook delivery's are; what is transient, a `Retry-After`
and the deadline are the judge's own.

Imported only when an `OpenAIJudge` is built: tenacity comes with the `openai` extra.
"""

from __future__ import annotations

from collections.abc import Callable

import openai
from tenacity import RetryCallState, Retrying
from tenacity.stop import stop_base
from tenacity.wait import wait_random_exponential

from discretion._retry import Wait
from discretion._retry import retrying as shared_retrying

__all__ = ["Wait", "default_wait", "retrying"]

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
    """A tenacity `Retrying` for the judge's transient errors, inside the total time allowed.

    A 429's `Retry-After` is honoured when it is longer than `wait`'s pause.
    """
    return shared_retrying(
        attempts=max_attempts,
        wait=wait,
        transient=_transient,
        sleep=sleep,
        retry_after=_retry_after_s,
        stop=_OutOfTime(remaining_s),
    )
