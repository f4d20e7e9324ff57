"""Retries within one call: tenacity, for the errors that may pass on their own.

The LLM judge (`judge/_retry.py`) and webhook delivery (`webhooks/_deliver.py`) build their
retries here. Imported only where tenacity is installed: it comes with the `openai` and
`webhooks` extras.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base

__all__ = ["Wait", "retrying"]

Wait = Callable[[RetryCallState], float]
"""A tenacity wait: seconds to sleep before the next attempt."""


def retrying(
    *,
    attempts: int,
    wait: Wait,
    transient: Callable[[BaseException], bool],
    sleep: Callable[[float], None] | None = None,
    retry_after: Callable[[BaseException | None], float | None] | None = None,
    stop: stop_base | None = None,
) -> Retrying:
    """A tenacity `Retrying` for transient errors, re-raising the last one when it gives up.

    Args:
        attempts: tries in all.
        wait: the pause before each further try.
        transient: whether an error may pass on its own; any other is raised at once.
        sleep: how it pauses; tenacity's when absent.
        retry_after: the pause an error asks for (a `Retry-After`), if any; honoured when longer
            than `wait`'s.
        stop: a further reason to give up early, such as a deadline.
    """
    pause = wait
    if retry_after is not None:
        asked_for = retry_after

        def pause(state: RetryCallState) -> float:
            chosen = wait(state)
            outcome = state.outcome
            after = asked_for(outcome.exception() if outcome is not None else None)
            return max(chosen, after) if after is not None else chosen

    give_up = stop_after_attempt(attempts) if stop is None else stop_after_attempt(attempts) | stop
    options: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    return Retrying(
        stop=give_up,
        wait=pause,
        retry=retry_if_exception(transient),
        reraise=True,
        **options,
    )
