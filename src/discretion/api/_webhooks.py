"""The server's side of webhooks: the delivery loop in the app's lifespan, and their OpenAPI.

Each pass is `discretion.webhooks.deliver_once`, the command line's pass too; this module
imports nothing of the server extra until the app runs.

Each server process (each `serve` worker) runs the loop; the endpoints' leases in the store let
one of them deliver to an endpoint at a time, so adding workers adds no duplicate sends.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
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

__all__ = ["document_webhooks", "webhook_lifespan"]

logger = logging.getLogger("discretion.webhooks")


async def _deliver_forever(guard: Guard, deliverer: Deliverer, every_s: float) -> None:
    import anyio
    import anyio.to_thread

    while True:
        try:
            await anyio.to_thread.run_sync(deliver_once, guard, deliverer)
        except Exception:  # the loop outlives a bad pass, logged; the next pass retries
            logger.exception("webhook pass failed; retrying in %s s", every_s)
        await anyio.sleep(every_s)


def webhook_lifespan(
    guard: Guard, deliverer: Deliverer | None, every_s: float
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: enroll the endpoints, deliver every `every_s` seconds, stop cleanly."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio
        import anyio.to_thread

        if deliverer is None:
            yield
            return
        # Enrolled before the first request: nothing recorded while the server runs is missed.
        await anyio.to_thread.run_sync(deliverer.enroll)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_deliver_forever, guard, deliverer, every_s)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
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
        """An approval was approved, rejected, cancelled, expired or escalated.

        Sent with `X-Discretion-Event-Type` `approval.approved`, `approval.rejected`,
        `approval.cancelled`, `approval.expired` or `approval.escalated` (the body's `type`). An
        escalation brings the case to a new role, so an endpoint's `roles=` filter applies.
        """

    @app.webhooks.post("execution.finished", tags=["webhooks"])
    def execution_finished(event: ExecutionFinishedEvent) -> None:
        """A governed tool call succeeded or failed (`execution.succeeded`, `execution.failed`)."""
