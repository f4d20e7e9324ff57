"""The server's background passes, in the app's lifespan, and the webhooks' OpenAPI.

Every pass expires the approvals whose due time has passed, so an overdue case leaves the queue
(and its `approval.expired` record is written) on time, not when someone next opens it. With
webhooks, a pass is `discretion.webhooks.deliver_once` (the command line's pass too), which
expires first and then delivers. This module imports nothing of the server extra until the app
runs.

Each server process (each `serve` worker) runs the loop. Expiring is a conditional update that
one process wins; the endpoints' leases in the store let one process deliver to an endpoint at
a time, so adding workers adds no duplicate sends.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING

from discretion.guard import Guard
from discretion.webhooks import (
    ApprovalChangedEvent,
    ApprovalOpenedEvent,
    DecisionRecordedEvent,
    Deliverer,
    ExecutionFinishedEvent,
    deliver_once,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["background_lifespan", "document_webhooks"]

logger = logging.getLogger("discretion.webhooks")


async def _every(run: Callable[[], object], what: str, every_s: float, *, first: float) -> None:
    """Run `run` in a worker thread `first` seconds from now, then every `every_s` seconds."""
    import anyio
    import anyio.to_thread

    await anyio.sleep(first)
    while True:
        try:
            await anyio.to_thread.run_sync(run)
        except Exception:  # the loop outlives a bad pass, logged; the next pass retries
            logger.exception("%s pass failed; retrying in %s s", what, every_s)
        await anyio.sleep(every_s)


def background_lifespan(
    guard: Guard, deliverer: Deliverer | None, every_s: float
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: a pass every `every_s` seconds until it stops.

    A pass expires overdue approvals and, when there are webhooks (enrolled first), delivers
    (`deliver_once`, which expires first), from the start. Without webhooks nothing is waiting
    to be sent at start, so the first pass waits its interval.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio
        import anyio.to_thread

        if deliverer is None:
            run: Callable[[], object] = guard.approvals.expire_due
            what, first = "expiry", every_s
        else:
            # Enrolled before the first request: nothing recorded while it runs is missed.
            await anyio.to_thread.run_sync(deliverer.enroll)
            run, what, first = partial(deliver_once, guard, deliverer), "webhook", 0.0
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(partial(_every, run, what, every_s, first=first))
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
        if deliverer is not None:
            deliverer.close()

    return lifespan


def document_webhooks(app: FastAPI) -> None:
    """Describe every event's request in the OpenAPI document's `webhooks`."""

    @app.webhooks.post("decision.recorded", tags=["webhooks"])
    def decision_recorded(event: DecisionRecordedEvent) -> None:
        """A decision was recorded (any outcome).

        Every request carries `X-Discretion-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
        "<t>.<raw body>">` under the endpoint's secret, `X-Discretion-Event-Id` and
        `X-Discretion-Event-Type`. Check it with `discretion.webhooks.verify_signature`, answer
        2xx, and deduplicate on the event id: delivery is at least once.
        """

    @app.webhooks.post("approval.opened", tags=["webhooks"])
    def approval_opened(event: ApprovalOpenedEvent) -> None:
        """A routed case arrived for a role: an endpoint with `roles=` gets only its roles'."""

    @app.webhooks.post("approval.changed", tags=["webhooks"])
    def approval_changed(event: ApprovalChangedEvent) -> None:
        """An approval was approved, rejected, cancelled, expired, escalated or endorsed.

        Sent with `X-Discretion-Event-Type` `approval.approved`, `approval.rejected`,
        `approval.cancelled`, `approval.expired`, `approval.escalated` or `approval.endorsed`
        (the first of two approvals; it waits for a second person) as the body's `type`. An
        escalation or an endorsement brings the case to a role, so an endpoint's `roles=`
        filter applies.
        """

    @app.webhooks.post("execution.finished", tags=["webhooks"])
    def execution_finished(event: ExecutionFinishedEvent) -> None:
        """A governed tool call succeeded or failed (`execution.succeeded`, `execution.failed`)."""
