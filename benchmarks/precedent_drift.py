"""Decision amnesia, simulated: "approve what was approved before" against bounded precedent.

Run: python benchmarks/precedent_drift.py [--n 1000] [--seed 7]

An AI agent handles lost-parcel refunds in rounds. Each ask is anchored on the largest refund
approved in the round before ("we approved 60 last time, 70 is close enough"). Ungoverned,
every ask within 20% of that anchor is approved, so the anchor ratchets up round after round.
Governed by discretion, the same asks meet a manager's precedent (ParcelCo parcels only, at
most 60.00 each): the ones inside it are granted, the rest go to a person. Prints the exception
money each approach lets through, round by round, and the precedent's bound.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from decide import NOW

from discretion import Guard, Money, Outcome, SqlStore, load_pack
from discretion.context import StaticContextProvider
from discretion.precedent import PrecedentSpec
from precedent import MANAGER, PACK

BOUND = Decimal("60.00")


@dataclass
class Totals:
    """Exception money let through per round."""

    ungoverned: list[Decimal] = field(default_factory=list)
    governed: list[Decimal] = field(default_factory=list)
    governed_largest: Decimal = Decimal(0)
    governed_count: int = 0
    routed: int = 0


def _guard(folder: Path, store: SqlStore, carrier: str, total: Decimal) -> Guard:
    facts: dict[str, Any] = {
        "shipment.status": "lost",
        "shipment.carrier": carrier,
        "customer.region": "eu-west",
        "order.total": {"amount": str(total), "currency": "USD"},
    }
    return Guard(
        load_pack(folder / "pack.yaml"),
        store=store,
        context=StaticContextProvider(facts),
        clock=lambda: NOW,
    )


def simulate(n: int = 1000, *, seed: int = 7, rounds: int = 10) -> Totals:
    """Run `n` lost-parcel asks through both approaches; return what each let through."""
    rng = random.Random(seed)
    totals = Totals()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # The precedent benchmark's pack: lost-parcel refunds, precedent scoped by carrier.
        (folder / "pack.yaml").write_text(PACK, encoding="utf-8")
        store = SqlStore(f"sqlite:///{folder / 'ledger.db'}")
        try:
            seed_guard = _guard(folder, store, "parcelco", Decimal("200.00"))
            granted = seed_guard.decide(
                {
                    "actor": MANAGER.model_dump(),
                    "tool": {"name": "issue_refund", "arguments": {"amount": str(BOUND)}},
                    "rationale": {"reason": "carrier-lost", "text": "depot fire"},
                    "idempotency_key": "seed",
                }
            )
            seed_guard.precedents.set(
                granted.id,
                PrecedentSpec(
                    scope={"shipment.carrier": "parcelco"},
                    max_amount=Money.of(BOUND, "USD"),
                    expires_at=NOW + timedelta(days=60),
                    citations=n,
                    note="ParcelCo lost a trailer in a depot fire",
                ),
                grantor=MANAGER,
            )
            anchor = BOUND
            per_round = n // rounds
            for round_no in range(rounds):
                ungoverned = governed = Decimal(0)
                approved_this_round = anchor
                for i in range(per_round):
                    total = Decimal(rng.randrange(4000, 200000)) / 100
                    carrier = rng.choice(["parcelco", "parcelco", "fastship"])
                    ask = min(total, anchor * Decimal(str(round(rng.uniform(0.9, 1.2), 3))))
                    ask = ask.quantize(Decimal("0.01"))
                    # Ungoverned: "we approved `anchor` last time, this is close enough".
                    if ask <= anchor * Decimal("1.2"):
                        ungoverned += ask
                        approved_this_round = max(approved_this_round, ask)
                    decision = _guard(folder, store, carrier, total).decide(
                        {
                            "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
                            "tool": {"name": "issue_refund", "arguments": {"amount": str(ask)}},
                            "rationale": {"reason": "carrier-lost", "text": "parcel lost"},
                            "idempotency_key": f"ask-{round_no}-{i}",
                        }
                    )
                    if decision.outcome is Outcome.ALLOW_EXCEPTION and decision.amount:
                        governed += decision.amount.amount
                        totals.governed_count += 1
                        totals.governed_largest = max(
                            totals.governed_largest, decision.amount.amount
                        )
                    elif decision.outcome is Outcome.ROUTE:
                        totals.routed += 1
                anchor = approved_this_round
                totals.ungoverned.append(ungoverned)
                totals.governed.append(governed)
            store.verify()
        finally:
            store.close()
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    totals = simulate(args.n, seed=args.seed)
    print(f"{'round':>5}  {'ungoverned':>14}  {'discretion':>12}")
    for number, (u, g) in enumerate(zip(totals.ungoverned, totals.governed, strict=True), 1):
        print(f"{number:>5}  {u:>14,.2f}  {g:>12,.2f}")
    print(f"{'total':>5}  {sum(totals.ungoverned):>14,.2f}  {sum(totals.governed):>12,.2f}")
    print(
        f"discretion granted {totals.governed_count} exceptions (largest"
        f" {totals.governed_largest}, bound {BOUND}) and routed {totals.routed} to a person"
    )


if __name__ == "__main__":
    main()
