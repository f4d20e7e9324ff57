"""Work done in child processes by the scale-out tests (importable by spawn)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from discretion import ApprovalConflict, Guard, SqlStore, load_pack
from discretion.context import ContextRequest, StaticContextProvider
from discretion.proposal import Actor

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
PACK = Path(__file__).parent.parent / "precedent" / "precedent.yaml"
BOT = Actor(id="bot-1", role="ai_agent", is_ai=True)
FACTS: dict[str, Any] = {
    "customer.segment": "retail",
    "customer.region": "eu-west",
    "customer.tags": ["vip"],
    "customer.fraud_flag": False,
    "shipment.status": "lost",
    "shipment.carrier": "parcelco",
    "order.total": {"amount": "120.00", "currency": "USD"},
    "order.items": 2,
    "incident.id": None,
    "incident.active": False,
}
CUSTOMERS = 3


class OnFile(StaticContextProvider):
    """`FACTS` for every customer a proposal names, each on file as itself."""

    def __init__(self) -> None:
        super().__init__(FACTS)

    def fetch(self, request: ContextRequest, /) -> dict[str, Any]:
        facts = dict(super().fetch(request))
        if request.customer_id is not None:
            facts["customer.id"] = request.customer_id
        return facts


def _guard(url: str) -> Guard:
    return Guard(
        load_pack(PACK), store=SqlStore(url, create=False), context=OnFile(), clock=lambda: NOW
    )


def proposal(n: int, worker: int, precedent_id: str) -> dict[str, Any]:
    """The n-th proposal of a worker: a mix of citations, exceptions and routed cases.

    Three in four keys are the same in every worker, so workers race to decide them.
    """
    kind = n % 4
    cite: list[str] = []
    reason: str | None = "carrier-lost"
    if kind == 0:  # cites the precedent: 30.00 is over the agent's 20.00 exception authority
        amount, customer, key = "30.00", f"p-{n}", f"cite-{n}"
        cite = [precedent_id]
    elif kind == 1:  # an exception inside the agent's authority, against a shared budget
        amount, customer, key = "15.00", f"c-{n % CUSTOMERS}", f"w{worker}-{n}"
    elif kind == 2:  # no reason given: routed to a person
        amount, customer, key, reason = "25.00", f"r-{n}", f"route-{n}", None
    else:  # the same exception, but every worker proposes it under one key
        amount, customer, key = "15.00", f"c-{n % CUSTOMERS}", f"lost-{n}"
    return {
        "actor": BOT.model_dump(),
        "tool": {
            "name": "issue_refund",
            "arguments": {"amount": amount, "customer_id": customer, "case_id": f"case-{n}"},
        },
        "rationale": {
            "reason": reason,
            "text": "the carrier confirmed the parcel lost",
            "precedents": cite,
        },
        "idempotency_key": key,
    }


def decide_many(url: str, worker: int, count: int, precedent_id: str) -> list[tuple[str, str, str]]:
    """Decide `count` proposals; return (key, decision id, outcome) of each."""
    guard = _guard(url)
    try:
        answers = []
        for n in range(count):
            decision = guard.decide(proposal(n, worker, precedent_id))
            answers.append((decision.idempotency_key, decision.id, decision.outcome.value))
        return answers
    finally:
        guard.store.close()  # type: ignore[attr-defined]


def approve_all(url: str, approver_id: str, approval_ids: list[str]) -> list[str]:
    """Try to approve every approval; return the ids this process approved."""
    guard = _guard(url)
    approver = Actor(id=approver_id, role="manager", is_ai=False)
    won = []
    try:
        for approval_id in approval_ids:
            try:
                guard.approvals.approve(approval_id, approver=approver, note="confirmed lost")
            except ApprovalConflict:
                continue
            won.append(approval_id)
        return won
    finally:
        guard.store.close()  # type: ignore[attr-defined]
