"""The store's write path alone: one transaction per decision, a budget read and an append.

    .venv/bin/python benchmarks/store_append.py [--n 3000]

prints the p50 and p99 of a transaction that reads one budget key's sum and appends one
decision with one reservation (its row, the reservation, the lineage record, the head), into a
WAL database of its own. The decisions are made before the loop, so nothing of the pipeline is
timed. Under callgrind (benchmarks/README.md) `--n 0` and `--n 1000` give the instructions of
one transaction and of making its record (the same for every version of the store): the
records differ only by their keys, so the count is steady to a few hundred instructions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

from discretion import Decision, Money, Outcome, Reservation, SqlStore
from discretion.lineage import canonical_json
from discretion.store import DecisionRecord

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
WARM_UP = 50


CUSTOMERS = 10
WINDOW = timedelta(minutes=1)
"""A budget's window: decisions a second apart over ten customers keep six in each sum."""


def record(n: int) -> DecisionRecord:
    """The record of the `n`th decision: a 12.00 refund reserved against its customer."""
    amount = Money.of("12.00", "USD")
    customer = f"c-{n % CUSTOMERS}"
    decision = Decision(
        id=f"dec_{n:08d}",
        outcome=Outcome.ALLOW,
        action="refund",
        actor_id="bot-1",
        actor_role="ai_agent",
        rules=["standard.refund"],
        explanation="inside standard policy",
        amount=amount,
        entities={"customer": customer, "case": f"case-{n}"},
        reservations=[Reservation(budget="per-customer", key=customer, amount=amount)],
        proposal_digest="0" * 64,
        idempotency_key=f"k-{n}",
        context_digest="1" * 64,
        policy_version="bench",
        decided_at=NOW + timedelta(seconds=n),
    )
    context = {"customer.tier": "gold", "order.total": {"amount": "80.00", "currency": "USD"}}
    return DecisionRecord(
        decision=decision,
        proposal={"customer_id": customer, "case_id": f"case-{n}", "idempotency_key": f"k-{n}"},
        context=context,
        context_json=canonical_json(context),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    store = SqlStore(f"sqlite:///{tempfile.mkdtemp()}/append.db")
    records = [record(n) for n in range(WARM_UP + args.n)]
    times = []
    for made in records:
        decision = made.decision
        customer = decision.entities["customer"]
        start = time.perf_counter()
        with store.transaction() as tx:
            tx.budget_used("per-customer", customer, decision.decided_at - WINDOW, currency="USD")
            tx.append(made)
        times.append(time.perf_counter() - start)
    store.close()
    timed = sorted(times[WARM_UP:])
    if timed:
        p99 = timed[max(0, int(len(timed) * 0.99) - 1)]
        print(
            f"store transaction (budget read + append), SQLite: p50 "
            f"{statistics.median(timed) * 1e3:.3f} ms  p99 {p99 * 1e3:.3f} ms  n={len(timed)}"
        )


if __name__ == "__main__":
    main()
