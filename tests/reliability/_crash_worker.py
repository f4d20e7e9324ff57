"""A decision process the crash test kills with SIGKILL at arbitrary points (run by spawn)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from discretion import Guard, SqlStore, load_pack
from discretion.context import StaticContextProvider

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def proposal(n: int) -> dict[str, Any]:
    """The n-th proposal of the run: the same n always gives the same proposal and key."""
    customer = f"c-{n % 7}"
    amount = ("20.00", "35.00", "45.00", "150.00")[n % 4]
    return {
        "actor": {"id": f"bot-{n % 3}", "role": "ai_agent", "is_ai": True},
        "tool": {
            "name": "issue_refund",
            "arguments": {
                "amount": amount,
                "currency": "USD",
                "customer_id": customer,
                "case_id": f"case-{n}",
                "order_id": "o-1",
            },
        },
        "rationale": {"reason": "carrier-lost" if n % 5 else None, "text": "parcel lost"},
        "idempotency_key": f"crash-{n}",
    }


def run(pack_path: str, url: str, facts: dict[str, Any], order: list[int], progress: Any) -> None:
    """Decide proposals in `order`, reporting each decided index on `progress` (a queue)."""
    clock_step = iter(range(10**9))
    store = SqlStore(url)
    guard = Guard(
        load_pack(pack_path),
        store=store,
        context=StaticContextProvider(facts),
        # Time moves a second per decision, so budget windows see an ordered history.
        clock=lambda: NOW + timedelta(seconds=next(clock_step)),
    )
    for n in order:
        guard.decide(proposal(n))
        progress.put(n)
    progress.put(None)
