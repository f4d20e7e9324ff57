"""What the guard tells operators: a log line per decision and OpenTelemetry spans per step.

Both are cheap when nobody listens. A decision's log record carries its id, outcome, action,
rules and amount as attributes (`extra`), never the rationale's text, the context snapshot or
any token: those stay in the lineage. Spans come from `opentelemetry-api` (the `otel` extra)
and only once an SDK tracer provider is installed; until then each step costs one check.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from discretion.decision import Decision

__all__ = ["decided", "step"]

log = logging.getLogger("discretion.decision")

_NULL: AbstractContextManager[Any] = nullcontext()

try:
    from opentelemetry import trace as _trace
    from opentelemetry.trace import NoOpTracerProvider
except ImportError:  # the `otel` extra is not installed: spans are a no-op
    _trace = None  # type: ignore[assignment]
    NoOpTracerProvider = type(None)  # type: ignore[assignment,misc]


_tracer: tuple[Any, Any] = (None, None)
"""The provider a tracer was made from, and that tracer."""


def step(name: str) -> AbstractContextManager[Any]:
    """A span named `discretion.<name>` around a pipeline step, or nothing when not tracing."""
    global _tracer
    # The provider set by `trace.set_tracer_provider`, read directly: the public getter looks
    # at the environment on every call (~0.8 us; nine steps per decision). Until an SDK
    # provider is set, the API's tracers make non-recording spans that still cost microseconds.
    provider = getattr(_trace, "_TRACER_PROVIDER", None)
    if provider is None or isinstance(provider, NoOpTracerProvider):
        return _NULL
    if _tracer[0] is not provider:
        _tracer = (provider, provider.get_tracer("discretion"))
    return _tracer[1].start_as_current_span(f"discretion.{name}")  # type: ignore[no-any-return]


def decided(decision: Decision, observers: Iterable[Callable[[Decision], None]]) -> None:
    """Log a newly recorded decision and tell each observer (metrics) about it."""
    if log.isEnabledFor(logging.INFO):
        amount = decision.amount
        log.info(
            "decision %s: %s %s",
            decision.id,
            decision.outcome.value,
            decision.action,
            extra={
                "decision_id": decision.id,
                "outcome": decision.outcome.value,
                "action": decision.action,
                "actor_id": decision.actor_id,
                "rules": list(decision.rules),
                "amount": str(amount.amount) if amount is not None else None,
                "currency": amount.currency if amount is not None else None,
                "required_role": decision.required_role,
                "policy_version": decision.policy_version,
            },
        )
    for observe in observers:
        observe(decision)
