from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from discretion.context._providers import ContextProvider, ContextRequest, records_of
from discretion.errors import ConfigurationError, ContextError

__all__ = ["TimeoutContext", "Waiter"]

Waiter = Callable[[threading.Event, float], bool]
"""Waits up to a number of seconds for an event; returns whether it was set in time."""


def _wait(event: threading.Event, timeout_s: float) -> bool:
    return event.wait(timeout_s)


class TimeoutContext:
    """Bounds how long a provider may take: past `timeout_s` the facts are unavailable.

    The inner provider runs in a daemon thread; when it has not answered in time, `fetch`
    raises `ContextError` and the guard routes the proposal with that cause (fail closed). A
    provider that never returns leaves its thread waiting, never the decision.

    Example:
        ```python
        guard = Guard(pack, context=TimeoutContext(CrmProvider(), timeout_s=2.0))
        ```

    Args:
        inner: the provider to bound.
        timeout_s: the most seconds a fetch may take.
        wait: waits for the answer; tests inject one that reports the time as spent at once.
    """

    def __init__(
        self, inner: ContextProvider, *, timeout_s: float, wait: Waiter | None = None
    ) -> None:
        if not timeout_s > 0:
            raise ConfigurationError(
                f"TimeoutContext: timeout_s must be a positive number of seconds, got {timeout_s!r}"
            )
        self._inner = inner
        self.timeout_s = timeout_s
        """The most seconds a fetch may take."""
        self._wait = wait or _wait

    def records_of(self, name: str) -> frozenset[str]:
        """The records the inner provider holds the fact `name` for."""
        return records_of(self._inner, name)

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        """Ask the inner provider, waiting at most `timeout_s`.

        Raises:
            ContextError: the provider did not answer in time; or its own error, re-raised.
        """
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["answer"] = self._inner.fetch(request)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                outcome["error"] = exc
            finally:
                done.set()

        worker = threading.Thread(target=run, name="discretion-context", daemon=True)
        worker.start()
        if not self._wait(done, self.timeout_s) or not done.is_set():
            raise ContextError(
                f"context provider {type(self._inner).__name__} did not answer within"
                f" {self.timeout_s:g} s; the facts are unavailable, so the proposal is routed"
            )
        if "error" in outcome:
            raise outcome["error"]
        answer: Mapping[str, Any] = outcome["answer"]
        return answer
