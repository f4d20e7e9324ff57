"""How the cost of deciding grows with the number of rules in one action.

Run: python benchmarks/rules.py [--n 2000] [--rounds 20] [--sizes 10,100,1000]

For each size N it generates a one-action pack, reports how long it took to load, and times, at
p50 and p99 (the sizes of a shape interleaved in rounds, so a busy machine weighs on all),
  - evaluation: the pack alone over frozen facts (as the "pack evaluation" line of decide.py),
  - preview: parsing, normalising, context assembly and evaluation, nothing recorded,
in three shapes:
  - hard limits: N hard limits, none of which holds, then one standard rule that allows,
  - standard: N standard rules that do not match, then the one that allows,
  - deny: N hard limits, of which only the last holds.
It ends with the cost of 100 rules against 10 (the target is at most 2x) and of 1,000 against 10.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from discretion import Guard, load_pack
from discretion.context import StaticContextProvider
from discretion.pipeline._evaluate import evaluate

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

FACTS: dict[str, Any] = {
    "customer.fraud_flag": False,
    "customer.tier": "gold",
    "order.total": {"amount": "120.00", "currency": "USD"},
    "order.shipping": {"amount": "9.99", "currency": "USD"},
    "order.delivered_at": "2026-11-20T10:00:00+00:00",
    "shipment.status": "delivered",
    "incident.active": False,
}

HEADER = """pack: rules-{shape}-{size}
currency: USD
context:
  customer.tier: string
  customer.fraud_flag: bool
  order.total: money
  order.shipping: money
  order.delivered_at: {{type: timestamp, nullable: true}}
  shipment.status: string
  incident.active: bool
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {{standard: "50.00", exception: "20.00"}}
  - id: manager
    authority:
      refund: {{standard: "2000.00", exception: "1000.00"}}
actions:
  refund:
    tools:
      - name: issue_refund
        amount: amount
        currency: currency
        customer: customer_id
        order: order_id
    reads: [customer.tier, customer.fraud_flag, order.total, order.shipping, order.delivered_at,
            shipment.status, incident.active]
"""

# Conditions of the kinds packs write: flags, tiers, amounts against order totals, time since
# delivery. Over FACTS none holds; `{n}` makes each rule distinct.
LIMITS = (
    "customer.fraud_flag && amount > {n}",
    "order.total > 1000000 + {n} && customer.tier == 'tier-{n}'",
    "customer.tier == 'blocked-{n}'",
    "amount > order.total + order.shipping + {n}",
    "shipment.status == 'seized-{n}' || (incident.active && amount > {n})",
    "now - order.delivered_at > duration('{hours}h') && amount > 0",
)
STANDARD = (
    "customer.tier == 'tier-{n}' && amount <= order.total",
    "shipment.status == 'returned-{n}'",
    "incident.active && now - order.delivered_at <= duration('{hours}h')",
)
ALLOWS = """      - id: within-30-days
        when: "shipment.status == 'delivered' && now - order.delivered_at <= duration('720h')"
        max_amount: order.total
"""
SHAPES = ("hard limits", "standard", "deny")


def condition(templates: tuple[str, ...], n: int) -> str:
    return templates[n % len(templates)].format(n=n, hours=1000 + n)


def generate(shape: str, size: int) -> str:
    out = [HEADER.format(shape=shape.replace(" ", "-"), size=size)]
    if shape in ("hard limits", "deny"):
        out.append("    hard_limits:\n")
        for n in range(size):
            when = condition(LIMITS, n)
            if shape == "deny" and n == size - 1:
                when = "amount > 0 && customer.tier == 'gold'"
            out.append(f'      - id: limit-{n}\n        when: "{when}"\n')
        out.append("    standard:\n" + ALLOWS)
    else:
        out.append("    standard:\n")
        for n in range(size):
            out.append(
                f'      - id: standard-{n}\n        when: "{condition(STANDARD, n)}"\n'
                "        max_amount: order.total\n"
            )
        out.append(ALLOWS)
    return "".join(out)


def proposal(n: int) -> dict[str, Any]:
    return {
        "actor": {"id": "bench-bot", "role": "ai_agent"},
        "tool": {
            "name": "issue_refund",
            "arguments": {
                "amount": "25.00",
                "currency": "USD",
                "customer_id": "c-1",
                "order_id": "o-1",
            },
        },
        "rationale": {"text": "item arrived broken"},
        "idempotency_key": f"bench-{n}",
    }


def sample(run: Callable[[int], Any], count: int, offset: int, into: list[float]) -> None:
    """Time `count` calls `run(offset + i)` into `into`, in seconds."""
    for i in range(count):
        started = time.perf_counter()
        run(offset + i)
        into.append(time.perf_counter() - started)


def percentiles(times: list[float]) -> tuple[float, float]:
    """p50 and p99 in microseconds."""
    ordered = sorted(times)
    return statistics.median(ordered) * 1e6, ordered[int(len(ordered) * 0.99) - 1] * 1e6


def prepare(shape: str, size: int, folder: Path) -> dict[str, Any]:
    path = folder / f"{shape.replace(' ', '-')}-{size}.yaml"
    path.write_text(generate(shape, size), encoding="utf-8")
    started = time.perf_counter()
    pack = load_pack(path)
    load_ms = (time.perf_counter() - started) * 1000
    guard = Guard(pack, context=StaticContextProvider(FACTS), clock=lambda: NOW)
    decision = guard.preview(proposal(0))
    item = guard.normalise(proposal(0))
    _, snapshot, _ = guard.pipeline.assess(item, NOW)
    facts = snapshot.cel_values()
    action = pack.actions[item.action_name]

    def evaluate_only(_: int) -> Any:
        return evaluate(
            pack,
            action,
            role=item.role,
            actor_is_ai=True,
            actor_id="bench",
            amount_minor=2500,
            cited_reason=None,
            facts=facts,
            now=NOW,
        )

    return {
        "shape": shape,
        "size": size,
        "load_ms": load_ms,
        "outcome": f"{decision.outcome.value} {','.join(decision.rules)}",
        "lines": {"evaluation": evaluate_only, "preview": lambda i: guard.preview(proposal(i))},
        "times": {"evaluation": [], "preview": []},
    }


def bench(shape: str, sizes: list[int], n: int, rounds: int, folder: Path) -> list[dict[str, Any]]:
    """Time every size of one shape in interleaved rounds, so a busy machine weighs on all."""
    rows = [prepare(shape, size, folder) for size in sizes]
    batch = max(1, n // rounds)
    for row in rows:
        for run in row["lines"].values():
            sample(run, min(200, n), -10_000, [])  # warm up
    for round_ in range(rounds):
        for row in rows:
            for line, run in row["lines"].items():
                sample(run, batch, round_ * batch, row["times"][line])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="timed runs per line")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds of n/rounds")
    parser.add_argument("--sizes", default="10,100,1000", help="rules per action, comma-separated")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for shape in SHAPES:
            rows += bench(shape, sizes, options.n, options.rounds, Path(folder))
    for row in rows:
        row.update({line: percentiles(times) for line, times in row["times"].items()})
    print(
        f"{'shape':12} {'rules':>5} {'load ms':>8} {'eval p50':>9} {'eval p99':>9}"
        f" {'preview p50':>12} {'preview p99':>12}   outcome   (µs; n={options.n})"
    )
    for row in rows:
        (e50, e99), (p50, p99) = row["evaluation"], row["preview"]
        print(
            f"{row['shape']:12} {row['size']:5} {row['load_ms']:8.1f} {e50:9.1f} {e99:9.1f}"
            f" {p50:12.1f} {p99:12.1f}   {row['outcome']}"
        )
    by = {(row["shape"], row["size"]): row for row in rows}
    for shape in SHAPES:
        for big in (100, 1000):
            if (shape, 10) in by and (shape, big) in by:
                ratios = [
                    by[shape, big][line][0] / by[shape, 10][line][0]
                    for line in ("evaluation", "preview")
                ]
                print(
                    f"{shape:12} {big}/10 at p50: evaluation {ratios[0]:.2f}x,"
                    f" preview {ratios[1]:.2f}x"
                )


if __name__ == "__main__":
    main()
