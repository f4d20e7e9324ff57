"""Worker functions run in child processes by the concurrency tests (importable by spawn)."""

from __future__ import annotations

from datetime import UTC, datetime

from discretion import Guard, SqlStore, load_pack
from discretion.context import StaticContextProvider

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def decide_many(pack_path: str, url: str, worker: int, count: int, facts: dict) -> list[str]:
    """Decide `count` 20.00 carrier-lost refunds for customer c-1; return the outcomes."""
    guard = Guard(
        load_pack(pack_path),
        store=SqlStore(url),
        context=StaticContextProvider(facts),
        clock=lambda: NOW,
    )
    outcomes = []
    for n in range(count):
        shared = n % 2 == 0
        decision = guard.decide(
            {
                "actor": {"id": "bot-shared" if shared else f"bot-{worker}", "role": "ai_agent"},
                "tool": {
                    "name": "issue_refund",
                    "arguments": {"amount": "20.00", "customer_id": "c-1", "order_id": "o-1"},
                },
                "rationale": {"reason": "carrier-lost"},
                # Every other key is shared between the workers: idempotency races too.
                "idempotency_key": f"shared-{n}" if shared else f"w{worker}-{n}",
            }
        )
        outcomes.append(decision.outcome.value)
    return outcomes


def split_acme_refund(
    url: str, worker: int, order: str, customer: str, case: str, part: str, count: int
) -> list[tuple[str, str]]:
    """Propose `count` refunds of `part` on one acme order; return (outcome, amount) of each."""
    from security.acme_attacks import acme_guard, refund

    guard = acme_guard(SqlStore(url, create=False), clock=lambda: NOW)
    actor = {"id": f"acme-assist-{worker}", "role": "ai_agent", "is_ai": True}
    parts = []
    for n in range(count):
        decision = guard.decide(
            refund(
                order=order,
                customer=customer,
                case=case,
                amount=part,
                key=f"split-{worker}-{n}",
                actor=actor,
            )
        )
        parts.append((decision.outcome.value, part))
    return parts
