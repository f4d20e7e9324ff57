"""Soak: many mixed decisions under random injected faults, then every invariant from the rows.

Run: python benchmarks/soak.py [--n 100000] [--seed 20261126] [--fault-rate 0.05] [--db URL]

Decides N proposals on the acme example pack (standard refunds, exceptions, amounts above
every limit, humans and agents, unknown tools, malformed input, retries of earlier keys), while
a seeded random source injects faults:
  - the context provider raises, or answers a fact of the wrong type;
  - the store fails at the start of the write transaction, or after the decision, its
    reservations and its lineage record are written but before the commit.
At the end it checks, from the database alone and from what callers were answered:
  - `ledger verify` passes and the head matches the chain;
  - every decision has its lineage record, every reservation its decision;
  - each idempotency key is decided once, and every retry got the first answer;
  - every answered decision is on record (durable before answered), and no attempt that failed
    with a StoreError left a decision behind unless a later retry recorded one;
  - nothing allowed is above the actor's role's authority;
  - no decision made under a context fault allows.
It prints the counts of outcomes, errors and faults, and exits 1 if any invariant fails.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from decide import NOW, PACK, facts_for
from sqlalchemy import func, select

from discretion import (
    DiscretionError,
    Guard,
    Outcome,
    ProposalError,
    SqlStore,
    StoreError,
    load_pack,
)
from discretion.context import ContextRequest
from discretion.store import SqlTransaction
from discretion.store._schema import decisions, ledger, reservations

AMOUNTS = ["5.00", "49.99", "120.00", "199.99", "200.00", "200.01", "450.00", "1200.00", "9999.99"]
ALLOWING = {Outcome.ALLOW.value, Outcome.ALLOW_EXCEPTION.value}


class Faults:
    """The seeded source of faults, and their tally."""

    def __init__(self, seed: int, rate: float) -> None:
        self.rng = random.Random(seed)
        self.rate = rate
        self.injected: Counter[str] = Counter()
        self.context_fault = False

    def roll(self, kind: str) -> bool:
        if self.rng.random() < self.rate:
            self.injected[kind] += 1
            return True
        return False


class FlakyFacts:
    """The acme facts, from a provider that sometimes fails or answers a wrong type."""

    def __init__(self, facts: Mapping[str, Any], faults: Faults) -> None:
        self.facts = dict(facts)
        self.faults = faults

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        if self.faults.roll("context.raises"):
            self.faults.context_fault = True
            raise ConnectionResetError("injected: case system connection reset")
        answer = {name: self.facts.get(name) for name in request.fields}
        if self.faults.roll("context.wrong-type"):
            self.faults.context_fault = True
            answer[request.fields[0]] = ["not", "a", "fact"]
        return answer


class FlakyStore(SqlStore):
    """A SqlStore whose write transactions sometimes fail, before or after the writes."""

    faults: Faults

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        dbapi = self.engine.dialect.loaded_dbapi
        with super().transaction() as tx:
            if self.faults.roll("store.fails-at-begin"):
                raise dbapi.OperationalError("injected: connection lost at begin")
            yield tx
            if self.faults.roll("store.fails-before-commit"):
                # The decision, its reservations and its lineage record are written: all roll back.
                raise dbapi.OperationalError("injected: connection lost before commit")


def acme_facts(fields: Mapping[str, Any], lost: bool) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "customer.fraud_flag": False,
        "customer.tier": "gold",
        "customer.segment": "consumer",
        "customer.since": "2023-01-01T00:00:00+00:00",
        "customer.lifetime_value": {"amount": "4200.00", "currency": "USD"},
        "order.total": {"amount": "1500.00", "currency": "USD"},
        "order.shipping_fee": {"amount": "9.99", "currency": "USD"},
        "order.refunded": {"amount": "0.00", "currency": "USD"},
        "order.product_line": "home",
        "order.delivered_at": None if lost else "2026-11-20T10:00:00+00:00",
        "shipment.status": "lost" if lost else "delivered",
        "shipment.status_at": "2026-11-20T10:00:00+00:00",
        "incident.active": False,
    }
    return facts_for(fields, facts)


def proposal(rng: random.Random, n: int) -> dict[str, Any]:
    role = rng.choices(["ai_agent", "tier1", "tier2", "manager"], weights=[70, 15, 10, 5])[0]
    kind = rng.choices(["normal", "unknown-tool", "malformed"], weights=[94, 3, 3])[0]
    amount: Any = rng.choice(AMOUNTS)
    tool = "issue_refund"
    if kind == "unknown-tool":
        tool = "wire_money"
    elif kind == "malformed":
        amount = rng.choice(["NaN", "-5.00", "1e9999", "", "12.345", None])
    return {
        "actor": {"id": f"{role}-{n % 50}", "role": role, "is_ai": role == "ai_agent"},
        "tool": {
            "name": tool,
            "arguments": {
                "amount": amount,
                "currency": "USD",
                "customer_id": f"C-{n % 997}",
                "case_id": f"K-{n}",
                "order_id": f"A-{n}",
            },
        },
        "rationale": {
            "reason": rng.choice([None, None, "refund.carrier-lost", "refund.no-such-reason"]),
            "text": "soak",
        },
        "idempotency_key": f"soak-{n}",
    }


def limits(pack: Any) -> dict[str, int]:
    out = {}
    for role in pack.roles:
        authority = role.authority.get("refund")
        out[role.id] = max(authority.standard_minor, authority.exception_minor) if authority else 0
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="decisions to attempt")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--fault-rate", type=float, default=0.05, help="per fault point")
    parser.add_argument("--retry-rate", type=float, default=0.05, help="retries of earlier keys")
    parser.add_argument("--db", help="a store URL; a SQLite file in a temporary folder by default")
    args = parser.parse_args()

    pack = load_pack(PACK)
    faults = Faults(args.seed, args.fault_rate)
    rng = random.Random(args.seed + 1)
    clock = {"now": NOW}
    with tempfile.TemporaryDirectory() as folder:
        url = args.db or f"sqlite:///{Path(folder) / 'soak.db'}"
        store = FlakyStore(url)
        store.faults = faults
        providers = {lost: FlakyFacts(acme_facts(pack.fields, lost), faults) for lost in (0, 1)}

        class Facts:
            lost = 0

            def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
                return providers[self.lost].fetch(request)

        facts = Facts()
        guard = Guard(pack, store=store, context=facts, clock=lambda: clock["now"])

        answered: dict[str, tuple[str, str]] = {}  # key -> (decision id, outcome)
        proposals: dict[int, dict[str, Any]] = {}
        failed_keys: set[str] = set()
        under_context_fault: set[str] = set()
        outcomes: Counter[str] = Counter()
        errors: Counter[str] = Counter()
        mismatched_retries = 0
        start = time.perf_counter()
        for i in range(args.n):
            clock["now"] = NOW + timedelta(seconds=7 * i)
            retry = proposals and rng.random() < args.retry_rate
            n = rng.choice(list(proposals)[-500:]) if retry else i
            item = proposals.get(n) or proposal(rng, n)
            proposals[n] = item
            facts.lost = int(item["rationale"]["reason"] == "refund.carrier-lost")
            key = item["idempotency_key"]
            faults.context_fault = False
            try:
                decision = guard.decide(item)
            except ProposalError:
                errors["ProposalError"] += 1
                continue
            except StoreError:
                errors["StoreError"] += 1
                failed_keys.add(key)
                continue
            except DiscretionError as exc:
                errors[type(exc).__name__] += 1
                continue
            outcomes[decision.outcome.value] += 1
            if faults.context_fault and key not in answered:
                under_context_fault.add(key)
            first = answered.setdefault(key, (decision.id, decision.outcome.value))
            if first != (decision.id, decision.outcome.value):
                mismatched_retries += 1
        elapsed = time.perf_counter() - start

        checks: list[tuple[str, bool, str]] = []
        try:
            count = store.verify()
            checks.append(("ledger verify", count == store.count(), f"{count} records"))
        except DiscretionError as exc:
            checks.append(("ledger verify", False, str(exc)))
        with store.engine.connect() as connection:
            rows = {
                r.idempotency_key: r
                for r in connection.execute(
                    select(
                        decisions.c.id,
                        decisions.c.idempotency_key,
                        decisions.c.outcome,
                        decisions.c.amount_minor,
                        decisions.c.actor_id,
                        decisions.c.ledger_seq,
                    )
                )
            }
            total = connection.execute(select(func.count()).select_from(decisions)).scalar_one()
            unlinked = connection.execute(
                select(func.count())
                .select_from(decisions)
                .where(
                    ~select(ledger.c.seq)
                    .where(ledger.c.chain_seq == decisions.c.ledger_seq)
                    .where(ledger.c.subject_id == decisions.c.id)
                    .where(ledger.c.kind == "decision")
                    .exists()
                )
            ).scalar_one()
            orphans = connection.execute(
                select(func.count())
                .select_from(reservations)
                .where(reservations.c.decision_id.not_in(select(decisions.c.id)))
            ).scalar_one()
        role_limit = limits(pack)
        role_of = {item["actor"]["id"]: item["actor"]["role"] for item in proposals.values()}
        over = [
            r.id
            for r in rows.values()
            if r.outcome in ALLOWING and (r.amount_minor or 0) > role_limit[role_of[r.actor_id]]
        ]
        lost_answers = [key for key, (did, _) in answered.items() if rows.get(key) is None]
        wrong_answers = [
            key for key, (did, _) in answered.items() if key in rows and rows[key].id != did
        ]
        left_behind = [key for key in failed_keys if key in rows and key not in answered]
        fault_allowed = [
            key for key in under_context_fault if rows.get(key) and rows[key].outcome in ALLOWING
        ]
        checks += [
            (
                "one decision per idempotency key",
                total == len(rows),
                f"{total} rows, {len(rows)} keys",
            ),
            ("every decision has its lineage record", unlinked == 0, f"{unlinked} without"),
            ("every reservation has its decision", orphans == 0, f"{orphans} orphans"),
            ("every answered decision is on record", not lost_answers, f"{len(lost_answers)} lost"),
            (
                "a retry gets the first answer",
                not wrong_answers and not mismatched_retries,
                f"{len(wrong_answers) + mismatched_retries} differ",
            ),
            ("a failed write leaves nothing behind", not left_behind, f"{len(left_behind)} left"),
            ("nothing allowed above the role's authority", not over, f"{len(over)} over"),
            (
                "no allow under a context fault",
                not fault_allowed,
                f"{len(under_context_fault)} decided under a fault, {len(fault_allowed)} allowed",
            ),
        ]
        store.close()

    print(
        f"soak: {args.n} attempts in {elapsed:.1f} s ({args.n / elapsed:.0f}/s), seed {args.seed}"
    )
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    print("errors:   " + (", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"))
    print(
        "faults:   " + (", ".join(f"{k} {v}" for k, v in sorted(faults.injected.items())) or "none")
    )
    print("invariants:")
    for name, ok, detail in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {name} ({detail})")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
