"""Context factories that `Settings(context_factory="_context_factories:...")` names in tests.

The test run has `tests/` on the Python path; `discretion serve` workers get it on PYTHONPATH.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from discretion.context import ContextRequest


class LostParcels:
    """The judged pack's facts of a parcel the carrier lost six days before each request."""

    in_process = True

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        # Relative to the request's time, so a server deciding at its own clock finds them fresh.
        return {
            "customer.tier": "gold",
            "customer.fraud_flag": False,
            "customer.orders": 7,
            "order.total": {"amount": "120.00", "currency": "USD"},
            "order.shipping": {"amount": "9.99", "currency": "USD"},
            "order.delivered_at": None,
            "shipment.status": "lost",
            "shipment.status_at": (request.now - timedelta(days=6)).isoformat(),
            "incident.active": False,
            "case.summary": "My shoes never arrived.",
        }


def lost_parcels() -> LostParcels:
    return LostParcels()


def not_a_provider() -> dict[str, Any]:
    return {"shipment.status": "lost"}


NOT_CALLABLE = "a string, not a factory"
