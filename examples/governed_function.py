"""A plain Python refund function governed with `@guard.governed`, run offline.

    python examples/governed_function.py

Three refunds from acme's sample cases: one inside policy runs once (a retry replays it), one
the pack routes raises `CallRouted` until a tier2 supervisor approves it and then runs once, one
on a fraud hold raises `CallDenied` and never runs. A second, legitimate refund of the same
amount on the same case is marked as a new call with `keyed(...)`.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from discretion import Actor, CallDenied, CallRouted, Guard, Money, SqlStore, load_pack
from discretion.context import SqliteCaseStore

ACME = Path(__file__).resolve().parent / "acme"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # the acme cases describe this moment
SUPERVISOR = Actor(id="dana.reyes", role="tier2", is_ai=False)
REFUNDS: list[str] = []


def main() -> int:
    guard = Guard(
        load_pack(ACME / "pack"),
        store=SqlStore("sqlite://"),
        context=SqliteCaseStore.from_sql(ACME / "cases.sql"),
        clock=lambda: NOW,
    )

    @guard.governed(actor=Actor(id="acme-assist", role="ai_agent"))
    def issue_refund(
        amount: str, currency: str, customer_id: str, case_id: str, order_id: str
    ) -> str:
        REFUNDS.append(f"{currency} {amount} on {order_id}")
        return f"Refunded {currency} {amount} on order {order_id}."

    print(issue_refund("20.00", "USD", "C-1003", "K-70003", "A-50003"))
    print(issue_refund("20.00", "USD", "C-1003", "K-70003", "A-50003"), "(a retry: replayed)")
    second = issue_refund.keyed("K-70003:second-refund")
    print(second("20.00", "USD", "C-1003", "K-70003", "A-50003"), "(a new call: decided anew)")
    try:
        issue_refund("649.00", "USD", "C-1007", "K-70007", "A-50007")
    except CallRouted as routed:
        print(f"routed: approval {routed.approval_id} by a {routed.decision.required_role}")
        amount = Money.of("500", "USD")
        guard.approvals.approve(
            routed.approval_id, approver=SUPERVISOR, note="leak on video", amount=amount
        )
        print(issue_refund("649.00", "USD", "C-1007", "K-70007", "A-50007"), "(after approval)")
    try:
        issue_refund("199.00", "USD", "C-1031", "K-70031", "A-50031")
    except CallDenied as denied:
        print(f"denied: {denied}")
    print(f"Money moved {len(REFUNDS)} times: {'; '.join(REFUNDS)}")
    print(f"Ledger verified: {guard.store.verify()} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
