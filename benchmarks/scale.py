"""One table of the figures that matter when scaling out.

Run: python benchmarks/scale.py [--n 2000] [--decisions 1000000] [--precedents 100000]
                                [--http-seconds 6] [--http-rounds 3] [--skip-http]

PostgreSQL rows run when DISCRETION_BENCH_POSTGRES_URL is set (its tables are dropped first).
Prints one table:
  - Guard.decide p50/p99 and decisions/s on SQLite and PostgreSQL (the acme example pack,
    decide.py's workload),
  - POST /v1/decisions throughput with 1, 2 and 4 server processes on SQLite and PostgreSQL
    (http_decisions.py, 16 connections), each the median of `--http-rounds` rounds run in turn
    (1, 2, 4, 1, 2, 4, ...) so a slow spell of the machine falls on every worker count alike,
    with the lowest and highest round, each count's ratio to one worker, and the generator:
    wrk when it is on PATH, else http_decisions.py's Python client (which shares the cores),
  - Guard.decide with an applied precedent (found by scope, citation taken, budget reserved) on
    an empty store and on one with 1M decisions (their ledger records and reservations) and
    100k precedents on record, bulk-inserted directly, on SQLite and PostgreSQL.
Targets (issue 8): PostgreSQL p50 <= 2 ms; 2 workers >= 1.6x one; 1M records <= 1.5x empty.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

from decide import NOW, PACK, facts_for, measure, proposal
from sqlalchemy import insert

from discretion import Guard, SqlStore, load_pack
from discretion.context import ContextRequest, StaticContextProvider
from discretion.lineage import partition_of
from discretion.store._dialect import create
from discretion.store._schema import PARTITIONS, decisions, ledger, metadata, reservations, to_us
from precedent import FACTS, ask, fill_precedents, set_precedent
from precedent import PACK as PRECEDENT_PACK

HERE = Path(__file__).resolve().parent
BUDGETED_PACK = (
    PRECEDENT_PACK
    + """
entities:
  customer: {}
budgets:
  - id: customer-30d
    key: customer
    window: 30d
    limit: "100000.00"
    outcomes: [allow_exception]
"""
)
BATCH = 20_000
HTTP_WORKERS = (1, 2, 4)
HTTP_CONNECTIONS = 16


def fresh(url: str) -> SqlStore:
    # Dropped before the store opens them: it reads what it finds, even an older schema.
    engine = create(url)
    metadata.drop_all(engine)
    engine.dispose()
    return SqlStore(url)


def checkpoint(store: SqlStore) -> None:
    """Copy a SQLite store's WAL into its file and empty it, as its checkpointer does as it goes.

    The fill bypasses the store's transactions, so that checkpointer never runs: left alone, the
    WAL of a million randomly keyed rows grew to 8 GB, which no live store has. On the driver,
    since a checkpoint cannot run inside the transaction SQLAlchemy would open.
    """
    if store.engine.dialect.name == "sqlite":
        with closing(sqlite3.connect(str(store.engine.url.database))) as raw:
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def fill_decisions(
    store: SqlStore, count: int, version: str, *, report: Callable[[str], None]
) -> None:
    """`count` decisions with their ledger records and reservations, in batches.

    Their ids are shaped like the guard's (`dec_` and a random UUID's hex), so they spread over
    the id indexes as recorded decisions do; `dec_fill_N` sorted after every real id and put
    each new decision's index entries beside one another, away from the million on record.
    """
    rng = random.Random(3)
    ids = random.Random(4)
    started = time.perf_counter()
    for first in range(0, count, BATCH):
        decided, records, reserved = [], [], []
        for i in range(first, min(first + BATCH, count)):
            decision_id = f"dec_{uuid.UUID(int=ids.getrandbits(128), version=4).hex}"
            customer = f"c-{rng.randrange(100_000)}"
            at = to_us(NOW - timedelta(seconds=rng.randrange(60 * 86400)))
            body = (
                f'{{"id":"{decision_id}","idempotency_key":"fill-{i}","outcome":"allow_exception",'
                f'"action":"refund","actor_id":"bot","amount":{{"amount":"35.00","currency":"USD"}},'
                f'"rules":["carrier-lost","discretion.precedent.applied"],"policy_version":"{version}"}}'
            )
            decided.append(
                {
                    "id": decision_id,
                    "idempotency_key": f"fill-{i}",
                    "proposal_digest": "0" * 64,
                    "action": "refund",
                    "outcome": "allow_exception",
                    "actor_id": "bot",
                    "customer_id": customer,
                    "case_id": f"k-{i}",
                    "amount_minor": 3500,
                    "currency": "USD",
                    "required_role": None,
                    "reason": "carrier-lost",
                    "policy_version": version,
                    "decided_us": at,
                    "ledger_seq": 10_000_000 + i,
                    "body": body,
                }
            )
            records.append(
                {
                    "partition": partition_of(decision_id, PARTITIONS),
                    "chain_seq": 10_000_000 + i,
                    "kind": "decision",
                    "subject_id": decision_id,
                    "body": body,
                    "prev_hash": "0" * 64,
                    "hash": "0" * 64,
                    "recorded_us": at,
                }
            )
            reserved.append(
                {
                    "decision_id": decision_id,
                    "budget_id": "customer-30d",
                    "budget_key": customer,
                    "amount_minor": 3500,
                    "currency": "USD",
                    "reserved_us": at,
                }
            )
        with store.engine.begin() as connection:
            connection.execute(insert(decisions), decided)
            connection.execute(insert(ledger), records)
            connection.execute(insert(reservations), reserved)
        checkpoint(store)
        done = min(first + BATCH, count)
        if done % 200_000 == 0 or done == count:
            report(f"  {done:,} decisions on record ({time.perf_counter() - started:.0f} s)")


class Customers(StaticContextProvider):
    """`FACTS` for every customer a proposal names, each on file as itself.

    The budgeted pack keys its budget per customer, so it checks them.
    """

    def fetch(self, request: ContextRequest, /) -> dict[str, Any]:
        facts = dict(super().fetch(request))
        if request.customer_id is not None:
            facts["customer.id"] = request.customer_id
        return facts


def precedent_guard(store: SqlStore, pack_path: Path, citations: int) -> tuple[Guard, str]:
    guard = Guard(load_pack(pack_path), store=store, context=Customers(FACTS), clock=lambda: NOW)
    return guard, set_precedent(guard, citations)


def deciding(guard: Guard, make: Callable[[int], dict[str, Any]]) -> Callable[[int], Any]:
    """`guard.decide` of the `i`th proposal `make` builds, for `measure`."""
    return lambda i: guard.decide(make(i))


def http_throughput(servers: int, seconds: int, db: str | None) -> tuple[float, str]:
    """Decisions/s of http_decisions.py with `servers` server processes, and its generator."""
    command = [sys.executable, str(HERE / "http_decisions.py"), "--servers", str(servers)]
    command += ["--duration", str(seconds), "--concurrency", str(HTTP_CONNECTIONS)]
    result = subprocess.run(
        [*command, *(["--db", db] if db else [])], capture_output=True, text=True, check=True
    )
    found = re.search(r"throughput\s+(\d+)", result.stdout)
    generator = re.search(r"generator\s+(.+)", result.stdout)
    if found is None or generator is None:
        raise RuntimeError(result.stdout + result.stderr)
    return float(found.group(1)), generator.group(1).strip()


def http_rows(
    name: str, db: str | None, seconds: int, rounds: int, *, report: Callable[[str], None]
) -> list[tuple[str, str, str, str]]:
    """HTTP throughput rows for 1, 2 and 4 workers: medians of rounds taken in turn."""
    runs: dict[int, list[float]] = {count: [] for count in HTTP_WORKERS}
    generators = set()
    for round_ in range(rounds):
        for count in HTTP_WORKERS:
            per_s, generator = http_throughput(count, seconds, db)
            runs[count].append(per_s)
            generators.add(generator)
            report(f"HTTP {name}, {count} worker(s), round {round_ + 1}: {per_s:.0f}/s")
    base = statistics.median(runs[1])
    rows = [(f"HTTP {name}, load from {' / '.join(sorted(generators))}", "", "", "")]
    for count in HTTP_WORKERS:
        median = statistics.median(runs[count])
        spread = f"{min(runs[count]):.0f}-{max(runs[count]):.0f}"
        rows.append(
            (
                f"  {count} worker(s): {median / base:.2f}x one (rounds {spread}/s)",
                "",
                "",
                f"{median:.0f}",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--precedents", type=int, default=100_000)
    parser.add_argument("--http-seconds", type=int, default=6, help="Measured per HTTP run.")
    parser.add_argument("--http-rounds", type=int, default=3, help="HTTP runs per worker count.")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    pg = os.environ.get("DISCRETION_BENCH_POSTGRES_URL")

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    rows: list[tuple[str, str, str, str]] = []

    def row(label: str, r: dict[str, Any]) -> None:
        rows.append((label, f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}", f"{r['per_s']:.0f}"))
        say(f"{label}: p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, {r['per_s']:.0f}/s")

    pack = load_pack(PACK)
    context = StaticContextProvider(facts_for(pack.fields))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        urls = [("SQLite", f"sqlite:///{folder / 'decide.db'}")] + (
            [("PostgreSQL", pg)] if pg else []
        )
        for name, url in urls:
            store = fresh(url)
            guard = Guard(pack, store=store, context=context, clock=lambda: NOW)
            row(f"decide, {name}", measure(name, deciding(guard, proposal), args.n))
            store.close()

        if not args.skip_http:
            # SQLite in a temporary file of http_decisions.py's own; PostgreSQL at `pg`.
            served: list[tuple[str, str | None]] = [("SQLite", None)]
            for database, served_url in served + ([("PostgreSQL", pg)] if pg else []):
                rows += http_rows(
                    database, served_url, args.http_seconds, args.http_rounds, report=say
                )

        pack_path = folder / "pack.yaml"
        pack_path.write_text(BUDGETED_PACK, encoding="utf-8")
        scaled = f"{args.decisions // 1000:,}k decisions + {args.precedents // 1000}k precedents"
        urls = [("SQLite", f"sqlite:///{folder / 'scale.db'}")] + (
            [("PostgreSQL", pg)] if pg else []
        )
        for name, url in urls:
            store = fresh(url)
            guard, source = precedent_guard(store, pack_path, citations=30 * args.n)
            empty = measure(name, deciding(guard, lambda i: ask(i, "empty")), args.n)
            row(f"precedent applied, empty, {name}", empty)
            say(f"filling {name} ...")
            fill_precedents(guard, source, args.precedents)
            fill_decisions(store, args.decisions, guard.pack.version, report=say)
            if name == "SQLite":
                # On the driver, like the checkpoints of the fill.
                with closing(sqlite3.connect(str(folder / "scale.db"))) as raw:
                    raw.execute("ANALYZE")
                    raw.commit()
            else:
                with store.engine.connect() as connection:
                    connection.exec_driver_sql("ANALYZE")
                    connection.commit()
            full = measure(name, deciding(guard, lambda i: ask(i, "full")), args.n)
            row(f"precedent applied, {scaled}, {name}", full)
            rows.append(
                (
                    f"  ratio at scale / empty, {name}",
                    f"{full['p50_ms'] / empty['p50_ms']:.2f}x",
                    f"{full['p99_ms'] / empty['p99_ms']:.2f}x",
                    "",
                )
            )
            store.close()

    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':{width}} {'p50 ms':>8} {'p99 ms':>8} {'decisions/s':>12}   (n={args.n})")
    for label, p50, p99, per_s in rows:
        print(f"{label:{width}} {p50:>8} {p99:>8} {per_s:>12}")


if __name__ == "__main__":
    main()
