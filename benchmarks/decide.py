"""Latency and throughput of Guard.decide, on a minimal one-action pack and on acme.

Run: python benchmarks/decide.py [--n 5000] [--pack PATH ...] [--only allow|route]

For each pack (by default `benchmarks/packs/minimal.yaml` and the acme example pack), prints
p50/p99 latency and decisions/s for
  - pack evaluation alone (hard limits, standard rules, reasons, authority over frozen facts),
  - preview: parsing, normalising, context assembly and evaluation, nothing recorded,
  - Guard.decide with the SQLite ledger (a WAL file in a temporary folder, `synchronous=NORMAL`,
    committed before the answer): an allowed proposal, and a routed one (which opens an
    approval in the same transaction); and `await Guard.adecide` of allowed ones on an event
    loop, as async callers decide,
  - the raw-sqlite floor: every statement those decisions ran (BEGIN IMMEDIATE, the reads,
    the inserts, COMMIT) captured with its parameters and replayed on a plain `sqlite3`
    connection with the same pragmas, in a fresh database of the same schema; and the ratio
    of decide's p50 to the floor's,
  - Guard.decide on PostgreSQL when DISCRETION_BENCH_POSTGRES_URL is set (its tables are
    dropped and made anew).
Facts come from an in-memory provider so the figures are the guard's own cost. Each scenario
writes to a database of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from discretion import Guard, SqlStore, load_pack
from discretion.pipeline._evaluate import evaluate
from discretion.store._dialect import SQLITE_BUSY_TIMEOUT_MS
from discretion.store._schema import metadata

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "examples" / "acme" / "pack"
MINIMAL = ROOT / "benchmarks" / "packs" / "minimal.yaml"
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


def proposal(n: int, amount: str = "25.00") -> dict[str, Any]:
    return {
        # A fleet of agents, so no one agent's daily budget runs out during the run.
        "actor": {"id": f"bench-bot-{n % 1000}", "role": "ai_agent"},
        "tool": {
            "name": "issue_refund",
            "arguments": {
                "amount": amount,
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

    Order `o-N` and case `case-N` belong to customer `c-(N mod 500)` (the case to `o-N`
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
            facts["order.customer_id"] = f"c-{_number(order) % 500}"
        if request.case_id is not None and request.case_id.startswith("case-"):
            facts["case.id"] = request.case_id
            facts["case.customer_id"] = f"c-{_number(request.case_id) % 500}"
            facts["case.order_id"] = "o-" + request.case_id.removeprefix("case-")
        return facts


def _number(record_id: str) -> int:
    """N of `o-N` or `case-N` (N may be negative); the last number of `o-run-1-N`
    (http_decisions.py's ids, its keys)."""
    tail = record_id.split("-", 1)[1]
    return int(tail) if tail.lstrip("-").isdigit() else int(tail.rsplit("-", 1)[1])


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
    return summary(label, times, total)


def ameasure(
    label: str, run: Callable[[int], Awaitable[Any]], n: int, offset: int = 0
) -> dict[str, Any]:
    """`decide.measure` for a coroutine: each call awaited in turn on one event loop."""

    async def timed() -> dict[str, Any]:
        for i in range(min(200, n)):
            await run(offset - 1 - i)
        times = []
        start = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter()
            await run(offset + i)
            times.append(time.perf_counter() - t0)
        return summary(label, times, time.perf_counter() - start)

    return asyncio.run(timed())


def summary(label: str, times: list[float], total: float) -> dict[str, Any]:
    times = sorted(times)
    return {
        "label": label,
        "p50_ms": statistics.median(times) * 1000,
        "p99_ms": times[int(len(times) * 0.99) - 1] * 1000,
        "per_s": len(times) / total,
    }


class _Cursor(sqlite3.Cursor):
    """A driver cursor that notes every statement it runs, with its parameters."""

    def execute(self, sql: str, parameters: Any = (), /) -> Any:  # type: ignore[override]
        log = getattr(self.connection, "log", None)
        if log is not None:
            log.append((sql, parameters))
        return super().execute(sql, parameters)


class _Connection(sqlite3.Connection):
    """A driver connection whose statements (and commits) are noted in `log`."""

    log: list[tuple[str, Any]]

    def cursor(self, factory: Any = _Cursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> Any:  # type: ignore[override]
        return self.cursor().execute(sql, parameters)

    def commit(self) -> None:
        if not self.in_transaction:
            return
        if getattr(self, "log", None) is not None:
            self.log.append(("COMMIT", ()))
        super().execute("COMMIT")


def capture(pack: Any, context: Any, amount: str, n: int, offset: int, folder: str) -> Any:
    """The statements each of `n` decisions ran, in order, with their parameters."""
    from sqlalchemy import event

    store = SqlStore(f"sqlite:///{folder}/capture.db")
    log: list[tuple[str, Any]] = []

    @event.listens_for(store.engine, "do_connect")
    def _traced(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        cparams["factory"] = _Connection

    @event.listens_for(store.engine, "connect")
    def _log(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.log = log

    store.engine.dispose()  # connections from here on are traced
    guard = Guard(pack, store=store, context=context, clock=lambda: NOW)
    for i in range(20):
        guard.decide(proposal(offset - 1 - i, amount))
    decisions = []
    for i in range(n):
        del log[:]
        guard.decide(proposal(offset + i, amount))
        decisions.append(list(log))
    store.close()
    return decisions


def floor(label: str, decisions: list[list[tuple[str, Any]]], folder: str) -> dict[str, Any]:
    """Replay captured decisions on a plain sqlite3 connection: the cost of the SQL alone."""
    path = f"{folder}/floor.db"
    SqlStore(f"sqlite:///{path}").close()  # the same schema, and the ledger's heads
    raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute("PRAGMA wal_autocheckpoint=0")
    raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    raw.execute("PRAGMA foreign_keys=ON")
    cursor = raw.cursor()
    times = []
    start = time.perf_counter()
    for statements in decisions:
        t0 = time.perf_counter()
        for sql, parameters in statements:
            cursor.execute(sql, parameters).fetchall()
        times.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    raw.close()
    return summary(label, times, total)


def big_orders(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Facts where an order is large enough that an AI's refund of 300.00 goes to a person."""
    return {**facts, "order.total": {"amount": "1000.00", "currency": "USD"}}


def run_pack(path: Path, n: int, only: str | None) -> list[dict[str, Any]]:
    pack = load_pack(path)
    facts = facts_for(pack.fields)
    name = pack.name
    scenarios = [
        ("allow", "25.00", Records(facts)),
        ("route", "300.00", Records(big_orders(facts))),
    ]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        guard = Guard(
            pack,
            store=SqlStore(f"sqlite:///{tmp}/bench.db"),
            context=scenarios[0][2],
            clock=lambda: NOW,
        )
        print(f"{name}:", end="")
        for kind, amount, context in scenarios:
            outcome = Guard(pack, context=context, clock=lambda: NOW).preview(proposal(0, amount))
            print(f" {kind} {amount} -> {outcome.outcome.value};", end="")
        print()
        item = guard.normalise(proposal(0))
        _, snapshot, _ = guard.pipeline.assess(item, NOW)
        cel = snapshot.cel_values()
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
                facts=cel,
                now=NOW,
            )

        results.append(measure(f"{name}: evaluation (CEL)", evaluate_only, n))
        results.append(measure(f"{name}: preview", lambda i: guard.preview(proposal(i)), n))
        guard.store.close()
        for kind, amount, context in scenarios:
            if only is not None and kind != only:
                continue
            with tempfile.TemporaryDirectory() as folder:
                store = SqlStore(f"sqlite:///{folder}/bench.db")
                timed = Guard(pack, store=store, context=context, clock=lambda: NOW)
                decided = measure(
                    f"{name}: decide {kind}, SQLite",
                    lambda i, g=timed, a=amount: g.decide(proposal(i, a)),
                    n,
                )
                awaited = None
                if kind == "allow":
                    awaited = ameasure(
                        f"{name}: adecide {kind}, SQLite",
                        lambda i, g=timed, a=amount: g.adecide(proposal(i, a)),
                        n,
                        20 * n,
                    )
                store.close()
            with tempfile.TemporaryDirectory() as folder:
                statements = capture(pack, context, amount, n, 10 * n, folder)
                raw = floor(f"{name}: {kind} raw-sqlite floor", statements, folder)
            decided["ratio"] = decided["p50_ms"] / raw["p50_ms"]
            raw["statements"] = len(statements[-1])
            results += [decided, raw]
            if awaited is not None:
                results.append(awaited)
        pg = os.environ.get("DISCRETION_BENCH_POSTGRES_URL")
        if pg:
            for kind, amount, context in scenarios:
                if only is not None and kind != only:
                    continue
                store = SqlStore(pg, create=False)
                metadata.drop_all(store.engine)
                store.create_schema()
                pg_guard = Guard(pack, store=store, context=context, clock=lambda: NOW)
                results.append(
                    measure(
                        f"{name}: decide {kind}, PostgreSQL",
                        lambda i, g=pg_guard, a=amount: g.decide(proposal(i, a)),
                        n,
                    )
                )
                store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument(
        "--pack",
        type=Path,
        action="append",
        help="a pack to measure (repeatable; default: benchmarks/packs/minimal.yaml and acme's)",
    )
    parser.add_argument("--only", choices=["allow", "route"], help="decide only this outcome")
    args = parser.parse_args()
    results = []
    for path in args.pack or [MINIMAL, PACK]:
        results += run_pack(path, args.n, args.only)
    print(f"{'benchmark':40} {'p50 ms':>8} {'p99 ms':>8} {'per s':>8}   (n={args.n})")
    for r in results:
        extra = ""
        if "ratio" in r:
            extra = f"   decide/floor {r['ratio']:.2f}"
        elif "statements" in r:
            extra = f"   ({r['statements']} statements a decision)"
        print(f"{r['label']:40} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['per_s']:8.0f}{extra}")


if __name__ == "__main__":
    main()
