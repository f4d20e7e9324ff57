"""Actors, facts and ledger readers shared by the approval tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from discretion import Actor, SqlStore
from discretion.context import ContextRequest
from discretion.store._schema import ledger

BOT = Actor(id="bot-1", role="ai_agent", is_ai=True)
TINA = Actor(id="tina", role="tier1", is_ai=False)
TOM = Actor(id="tom", role="tier2", is_ai=False)
TESS = Actor(id="tess", role="tier2", is_ai=False)
MARIA = Actor(id="maria", role="manager", is_ai=False)

LOST = {"shipment.status": "lost"}
CARRIER_LOST = """      - id: carrier-lost
        when: shipment.status == 'lost'
        max_amount: order.total + order.shipping
        message: the carrier lost the parcel
"""
WITH_PRECEDENT = (
    CARRIER_LOST
    + """        precedent:
          scope: [shipment.status]
          max_expiry: 90d
          max_citations: 20
"""
)


class MutableFacts:
    """A context provider whose facts a test changes between deciding and approving."""

    def __init__(self, facts: dict[str, Any]) -> None:
        self.facts = dict(facts)
        self.fail_with: Exception | None = None

    def fetch(self, request: ContextRequest, /) -> dict[str, Any]:
        if self.fail_with is not None:
            raise self.fail_with
        facts = {k: v for k, v in self.facts.items() if k in request.fields}
        if "customer.id" in request.fields and request.customer_id is not None:
            facts["customer.id"] = request.customer_id  # every customer named is on file
        return facts


def records(store: SqlStore, kind: str, subject_id: str | None = None) -> list[Any]:
    """Lineage records of one kind, oldest first."""
    query = select(ledger).where(ledger.c.kind == kind).order_by(ledger.c.seq)
    if subject_id is not None:
        query = query.where(ledger.c.subject_id == subject_id)
    with store.engine.connect() as connection:
        return list(connection.execute(query).all())


def count(store: SqlStore, table: Any, *where: Any) -> int:
    with store.engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
        )
