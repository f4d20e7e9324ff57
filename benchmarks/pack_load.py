"""How long a generated 200-rule pack takes to load: parse, validate, compile and type-check.

Run: python benchmarks/pack_load.py [--rules 200] [--runs 5]

The pack has ten actions; their rules read context facts, typed tool arguments, optional facts
tested with has(), a decimal, signed money and a list of records, so every CEL feature a pack may
use is compiled. Prints the first load (cold) and the best and median of the others.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from discretion import load_pack

HEADER = """pack: generated
currency: USD
records:
  item:
    fields: {sku: string, price: money, delivered_at: timestamp, tags: "list[string]"}
context:
  customer.tier: string
  customer.fraud_flag: bool
  customer.tenure_years: {type: decimal, places: 1}
  order.total: money
  order.difference: {type: money, signed: true}
  order.delivered_at: {type: timestamp, nullable: true}
  order.items: list[item]
  booking.id: {type: string, optional: true}
roles:
  - id: ai_agent
    ai: true
    authority: {AUTHORITY}
  - id: manager
    authority: {AUTHORITY}
actions:
"""

ACTION = """  action_{a}:
    tools:
      - name: tool_{a}
        amount: amount
        args: {{channel: request.channel}}
    args:
      channel: string
      sku: {{type: string, optional: true}}
      nights: int
    reads: [customer.tier, customer.fraud_flag, customer.tenure_years, order.total,
            order.difference, order.delivered_at, order.items, booking.id]
"""

KINDS = ("hard_limits", "standard", "exceptions")


def rule(kind: str, a: int, n: int) -> str:
    when = [
        "customer.fraud_flag && amount > {n}",
        "!has(booking.id) && args.channel == 'chat-{n}'",
        "order.items.exists(i, i.sku == 'sku-{n}' && i.price > {n}) && args.nights < 30",
        "customer.tenure_years >= {n} && order.difference <= 0",
        "has(args.sku) && order.items.all(i, i.sku != args.sku || 'final' in i.tags)",
        "now - order.delivered_at <= duration('{n}h') && customer.tier == 'gold'",
    ][n % 6].format(n=n)
    text = f'      - id: r-{a}-{n}\n        when: "{when}"\n'
    if kind != "hard_limits":
        text += f"        max_amount: order.total * {n % 5 + 1} / 5\n"
    return text


def generate(rules: int) -> str:
    actions = 10
    authority = (
        "{"
        + ", ".join(
            f"action_{a}: {{standard: '100.00', exception: '50.00'}}" for a in range(actions)
        )
        + "}"
    )
    out = [HEADER.replace("{AUTHORITY}", authority)]
    per_action = rules // actions
    for a in range(actions):
        out.append(ACTION.format(a=a))
        for index, kind in enumerate(KINDS):
            chosen = [n for n in range(per_action) if n % len(KINDS) == index]
            if chosen:
                out.append(f"    {kind}:\n")
                out.extend(rule(kind, a, n) for n in chosen)
    return "".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generated.yaml"
        path.write_text(generate(options.rules), encoding="utf-8")
        timings = []
        for _ in range(max(options.runs, 2)):
            started = time.perf_counter()
            pack = load_pack(path)
            timings.append(time.perf_counter() - started)
    count = len(pack.rule_ids())
    warm = timings[1:]
    print(f"pack of {count} rules in {len(pack.actions)} actions")
    print(f"first load  {timings[0] * 1000:8.1f} ms")
    print(f"best        {min(warm) * 1000:8.1f} ms")
    print(f"median      {statistics.median(warm) * 1000:8.1f} ms   (of {len(warm)} more loads)")


if __name__ == "__main__":
    main()
