"""Latency and throughput of Guard.decide on the acme example pack.

Run: python benchmarks/decide.py [--n 5000]

Prints p50/p99 latency and decisions/s for
  - pack evaluation alone (hard limits, standard rules, reasons, authority over frozen facts),
  - preview: parsing, normalising, context assembly and evaluation, nothing recorded,
  - Guard.decide with the SQLite ledger (a WAL file in a temporary folder),
  - Guard.decide on PostgreSQL when DISCRETION_BENCH_POSTGRES_URL is set.
Facts come from an in-memory provider so the figures are the guard's own cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from discretion import Guard, SqlStore, load_pack
from discretion.pipeline._evaluate import evaluate
from discretion.store._schema import metadata

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "examples" / "acme" / "pack"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

FACTS: dict[str, Any] = {
    "customer.fraud_flag": False,
    "customer.tier": "gold",
    "customer.segment": "consumer",
    "customer.tenure_days": 900,
    "customer.lifetime_value": {"amount": "4200.00", "currency": "USD"},
    "order.total": {"amount": "120.00", "currency": "USD"},
    "order.shipping": {"amount": "9.99", "currency": "USD"},
    "order.delivered_at": "2026-11-20T10:00:00+00:00",
    "order.placed_at": "2026-11-15T10:00:00+00:00",
    "order.product_line": "home",
    "shipment.status": "delivered",
    "shipment.status_at": "2026-11-20T10:00:00+00:00",
    "incident.active": False,
}


def proposal(n: int) -> dict[str, Any]:
    return {
        # A fleet of agents, so no one agent's daily budget runs out during the run.
        "actor": {"id": f"bench-bot-{n % 1000}", "role": "ai_agent"},
        "tool": {
            "name": "issue_refund",
            "arguments": {
                "amount": "25.00",
                "currency": "USD",
                "customer_id": f"c-{n % 500}",
                "case_id": f"case-{n}",
                # An order of its own per call: a refund's cumulative authority on its order
                # then measures one call, and the allow path is what is timed.
                "order_id": f"o-{n}",
            },
        },
        "rationale": {"text": "item arrived broken"},
        "idempotency_key": f"bench-{n}",
    }


def facts_for(pack_fields: Mapping[str, Any], base: Mapping[str, Any] = FACTS) -> dict[str, Any]:
    # Provide every declared field: the example pack may read more than `base` lists.
    facts = dict(base)
    defaults = {
        "string": "x",
        "int": 0,
        "bool": False,
        "money": {"amount": "0.00", "currency": "USD"},
        "timestamp": "2026-11-20T10:00:00+00:00",
        "duration": 0,
        "list[string]": [],
    }
    for name, spec in pack_fields.items():
        facts.setdefault(name, None if spec.nullable else defaults[spec.type])
    return facts


class Records:
    """The case system: the facts for everyone, and each customer and order on record.

    Order `o-N` and case `case-N` belong to customer `c-(N mod 500)` (the case to the order
    too), as `proposal(N)` names them, so packs that
    bind entities resolve them (and packs that do not ignore the extra facts).
    """

    in_process = True

    def __init__(self, facts: Mapping[str, Any]) -> None:
        self._facts = dict(facts)

    def fetch(self, request: Any, /) -> Mapping[str, Any]:
        facts = dict(self._facts)
        order = getattr(request, "order_id", None)
        if request.customer_id is not None:
            facts["customer.id"] = request.customer_id
        if order is not None and order.startswith("o-"):
            facts["order.id"] = order
            facts["order.customer_id"] = f"c-{int(order[2:]) % 500}"
        if request.case_id is not None and request.case_id.startswith("case-"):
            facts["case.id"] = request.case_id
            facts["case.customer_id"] = f"c-{int(request.case_id[5:]) % 500}"
            facts["case.order_id"] = f"o-{request.case_id[5:]}"
        return facts


def measure(label: str, run: Callable[[int], Any], n: int, offset: int = 0) -> dict[str, Any]:
    """Time `run(offset + i)` for n values of i; the warm-up runs use numbers below `offset`."""
    for i in range(min(200, n)):
        run(offset - 1 - i)  # warm up caches and compiled statements
    times = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        run(offset + i)
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    times.sort()
    return {
        "label": label,
        "p50_ms": statistics.median(times) * 1000,
        "p99_ms": times[int(len(times) * 0.99) - 1] * 1000,
        "per_s": n / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    pack = load_pack(PACK)
    context = Records(facts_for(pack.fields))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        guard = Guard(
            pack, store=SqlStore(f"sqlite:///{tmp}/bench.db"), context=context, clock=lambda: NOW
        )
        print("outcome timed:", guard.preview(proposal(0)).outcome.value)
        item = guard.normalise(proposal(0))
        snapshot, _ = guard.pipeline.assess(item, NOW)
        facts = snapshot.cel_values()
        action = pack.actions[item.action_name]

        def evaluate_only(_: int) -> Any:
            return evaluate(
                pack,
                action,
                role=item.role,
                actor_is_ai=True,
                amount_minor=2500,
                cited_reason=None,
                facts=facts,
                now=NOW,
            )

        results.append(measure("pack evaluation (CEL)", evaluate_only, args.n))
        results.append(
            measure("preview (parse+context+eval)", lambda i: guard.preview(proposal(i)), args.n)
        )
        results.append(
            measure("decide, SQLite ledger", lambda i: guard.decide(proposal(i)), args.n)
        )
        pg = os.environ.get("DISCRETION_BENCH_POSTGRES_URL")
        if pg:
            store = SqlStore(pg, create=False)
            metadata.drop_all(store.engine)
            store.create_schema()
            pg_guard = Guard(pack, store=store, context=context, clock=lambda: NOW)
            results.append(
                measure("decide, PostgreSQL", lambda i: pg_guard.decide(proposal(i)), args.n)
            )
    print(f"{'benchmark':28} {'p50 ms':>8} {'p99 ms':>8} {'decisions/s':>12}   (n={args.n})")
    for r in results:
        print(f"{r['label']:28} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['per_s']:12.0f}")


if __name__ == "__main__":
    main()
