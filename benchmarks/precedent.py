"""Guard.decide with 100k precedents on record, and similar() with 100k decisions.

Run: python benchmarks/precedent.py [--n 2000] [--precedents 100000] [--decisions 100000]

Prints p50/p99 latency and decisions/s on the SQLite default for
  - an AI refund above its own exception authority with no precedent on record (it routes),
  - the same with one matching precedent (it is found by scope, applied and its citation taken),
  - the same with 100k precedents on record across 5,000 carriers and two scope key sets,
and the latency of `Guard.similar` with 100k decisions of the same action and reason on record.
Target: p99 with 100k precedents within 1.5x of the empty store's (also shown: against one).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from decide import NOW, measure
from sqlalchemy import insert

from discretion import Guard, Money, SqlStore, load_pack
from discretion.context import StaticContextProvider
from discretion.lineage import canonical_json, partition_of
from discretion.precedent import PrecedentSpec
from discretion.proposal import Actor
from discretion.store._precedents import match_hash
from discretion.store._schema import (
    PARTITIONS,
    decisions,
    ledger,
    precedent_keysets,
    precedents,
    to_us,
)

PACK = """
pack: bench-precedent
currency: USD
context:
  shipment.status: string
  shipment.carrier: string
  customer.region: string
  order.total: money
roles:
  - id: ai_agent
    ai: true
    authority: {refund: {standard: "50.00", exception: "20.00"}}
  - id: manager
    authority: {refund: {standard: "2000.00", exception: "1000.00"}}
actions:
  refund:
    tools: [{name: issue_refund, amount: amount, customer: customer_id, case: case_id}]
    reads: [shipment.status, shipment.carrier, customer.region, order.total]
    exceptions:
      - id: carrier-lost
        when: shipment.status == 'lost'
        max_amount: order.total
        precedent: {scope: [shipment.carrier], max_expiry: 90d}
"""
FACTS = {
    "shipment.status": "lost",
    "shipment.carrier": "carrier-42",
    "customer.region": "eu-west",
    "order.total": {"amount": "120.00", "currency": "USD"},
}
MANAGER = Actor(id="maria", role="manager", is_ai=False)


def ask(n: int, tag: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
        "tool": {
            "name": "issue_refund",
            "arguments": {"amount": "35.00", "customer_id": f"c-{n}", "case_id": f"k-{n}"},
        },
        "rationale": {"reason": "carrier-lost", "text": "the carrier lost the parcel"},
        "idempotency_key": f"{tag}-{n}",
    }


def guard_on(folder: Path, name: str) -> Guard:
    return Guard(
        load_pack(folder / "pack.yaml"),
        store=SqlStore(f"sqlite:///{folder / name}"),
        context=StaticContextProvider(FACTS),
        clock=lambda: NOW,
    )


def set_precedent(guard: Guard, citations: int) -> str:
    granted = guard.decide(
        {**ask(0, "grant"), "actor": MANAGER.model_dump(), "idempotency_key": "grant"}
    )
    guard.precedents.set(
        granted.id,
        PrecedentSpec(
            scope={"shipment.carrier": "carrier-42"},
            max_amount=Money.of("80.00", "USD"),
            expires_at=NOW + timedelta(days=60),
            citations=citations,
            note="bench",
        ),
        grantor=MANAGER,
    )
    return granted.id


def fill_precedents(guard: Guard, source: str, count: int) -> None:
    rng = random.Random(1)
    rows = []
    for i in range(count):
        carrier = f"carrier-{rng.randrange(5000)}"
        region = rng.choice(["eu-west", "us-east", "apac"])
        scope: dict[str, Any] = {"shipment.carrier": carrier}
        if i % 2:
            scope["customer.region"] = region
        rows.append(
            {
                "id": f"prec_fill_{i}",
                "source_decision_id": source,
                "action": "refund",
                "reason": "carrier-lost",
                "match_keys": ",".join(sorted(scope)),
                "match_hash": match_hash("refund", "carrier-lost", scope),
                # A quarter are bounded by a share of the order instead: those are read and
                # checked on every matching case (12.00 of a 120.00 order: never enough).
                "bound_minor": None if i % 4 == 0 else 3000,
                "learnable": 1,
                "citations": 10,
                "uses": 0,
                "expires_us": to_us(NOW + timedelta(days=rng.randrange(1, 60))),
                "created_us": to_us(NOW),
                "revoked_us": None,
                "body": canonical_json(
                    {
                        "id": f"prec_fill_{i}",
                        "source_decision_id": source,
                        "action": "refund",
                        "reason": "carrier-lost",
                        "grantor_id": "maria",
                        "grantor_role": "manager",
                        "grantor_limit": {"amount": "1000.00", "currency": "USD"},
                        "policy_version": guard.pack.version,
                        "scope": scope,
                        "max_amount": None
                        if i % 4 == 0
                        else {"amount": "30.00", "currency": "USD"},
                        "max_ratio": "0.1" if i % 4 == 0 else None,
                        "ratio_of": "order.total" if i % 4 == 0 else None,
                        "expires_at": (NOW + timedelta(days=30)).isoformat(),
                        "citations": 10,
                        "learnable": True,
                        "note": "filler",
                        "created_at": NOW.isoformat(),
                    }
                ),
            }
        )
    with guard.store.engine.begin() as connection:  # type: ignore[attr-defined]
        connection.execute(insert(precedents), rows)
        connection.execute(
            insert(precedent_keysets),
            [
                {"action": "refund", "reason": "carrier-lost", "match_keys": keys}
                for keys in ("customer.region,shipment.carrier",)
            ],
        )


def fill_decisions(guard: Guard, count: int) -> None:
    """Rows shaped like recorded decisions, written directly: `similar` reads, never verifies."""
    rng = random.Random(2)
    decided = []
    records = []
    for i in range(count):
        decision_id = f"dec_fill_{i}"
        total = f"{rng.randrange(2000, 90000) / 100:.2f}"
        context = {
            **FACTS,
            "shipment.carrier": f"carrier-{rng.randrange(5000)}",
            "order.total": {"amount": total, "currency": "USD"},
        }
        body = {
            "id": decision_id,
            "idempotency_key": f"fill-{i}",
            "outcome": "route",
            "action": "refund",
            "actor_id": "bot",
            "actor_role": "ai_agent",
            "amount": {"amount": "35.00", "currency": "USD"},
            "rules": ["discretion.not-standard", "carrier-lost"],
            "reason": "carrier-lost",
            "required_role": "manager",
            "explanation": "routed",
            "context_digest": "0" * 64,
            "proposal_digest": "0" * 64,
            "policy_version": guard.pack.version,
            "decided_at": NOW.isoformat(),
        }
        seq = 1_000_000 + i
        decided.append(
            {
                "id": decision_id,
                "idempotency_key": f"fill-{i}",
                "proposal_digest": "0" * 64,
                "action": "refund",
                "outcome": "route",
                "actor_id": "bot",
                "customer_id": f"c-{i}",
                "case_id": None,
                "amount_minor": 3500,
                "currency": "USD",
                "required_role": "manager",
                "reason": "carrier-lost",
                "policy_version": guard.pack.version,
                "decided_us": to_us(NOW - timedelta(minutes=count - i)),
                "ledger_seq": seq,
                "body": json.dumps(body),
            }
        )
        records.append(
            {
                "partition": partition_of(decision_id, PARTITIONS),
                "chain_seq": seq,
                "kind": "decision",
                "subject_id": decision_id,
                "body": canonical_json({"decision": body, "context": context}),
                "prev_hash": "0" * 64,
                "hash": "0" * 64,
                "recorded_us": to_us(NOW),
            }
        )
    with guard.store.engine.begin() as connection:  # type: ignore[attr-defined]
        connection.execute(insert(decisions), decided)
        connection.execute(insert(ledger), records)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--precedents", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=100_000)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "pack.yaml").write_text(PACK, encoding="utf-8")

        none = guard_on(folder, "none.db")
        results.append(measure("no precedent (routes)", lambda i: none.decide(ask(i, "a")), args.n))

        one = guard_on(folder, "one.db")
        set_precedent(one, citations=10 * args.n + 1000)
        results.append(
            measure("one precedent (applied)", lambda i: one.decide(ask(i, "b")), args.n)
        )

        many = guard_on(folder, "many.db")
        source = set_precedent(many, citations=10 * args.n + 1000)
        fill_precedents(many, source, args.precedents)
        label = f"{args.precedents // 1000}k precedents (applied)"
        results.append(measure(label, lambda i: many.decide(ask(i, "c")), args.n))

        fill_decisions(many, args.decisions)
        probe = ask(0, "probe")
        label = f"similar(), {args.decisions // 1000}k decisions"
        results.append(measure(label, lambda i: many.similar(probe), max(args.n // 10, 50)))

    print(f"{'benchmark':32} {'p50 ms':>8} {'p99 ms':>8} {'per s':>10}   (n={args.n})")
    for r in results:
        print(f"{r['label']:32} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['per_s']:10.0f}")
    many, empty, one = (results[i]["p99_ms"] for i in (2, 0, 1))
    print(
        f"p99 with {args.precedents:,} precedents: {many / empty:.2f}x the empty store's"
        f" (target <= 1.5x), {many / one:.2f}x one precedent's (the same path)"
    )


if __name__ == "__main__":
    main()
