"""The statements and round trips one decision makes on PostgreSQL, and what each one is.

Run: DISCRETION_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/bench_db \
    python benchmarks/pg_roundtrips.py [--n 50] [--pack PATH ...] [--show]

psycopg's pure-Python libpq wrapper is loaded (`PSYCOPG_IMPL=python`) so every message the
client sends can be seen: a statement is a query sent (simple, with parameters, or prepared:
its Parse counts apart), and a round trip is the client waiting for the server after having sent
something (statements sent in pipeline mode share one). The tables are dropped and made anew:
give it a database of its own. `--show` prints one decision's statements, in order.
"""

from __future__ import annotations

import os

os.environ["PSYCOPG_IMPL"] = "python"

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from psycopg.pq import PGconn

from discretion import Guard, SqlStore, load_pack
from discretion.store._schema import metadata

_spec = importlib.util.spec_from_file_location("decide", Path(__file__).with_name("decide.py"))
assert _spec is not None
assert _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


class Counter:
    """Counts what the client sends and how often it then waits for the server."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.parses = 0
        self.round_trips = 0
        self._pending = False

    def sent(self, what: str | None) -> None:
        if what is not None:
            self.statements.append(what)
        self._pending = True

    def waited(self) -> None:
        if self._pending:
            self.round_trips += 1
            self._pending = False

    def reset(self) -> None:
        self.statements.clear()
        self.parses = 0
        self.round_trips = 0
        self._pending = False


COUNTER = Counter()


def _text(command: Any) -> str:
    text = bytes(command).decode()
    return " ".join(text.split())[:110]


def _patch() -> None:
    def wrap_send(name: str, arg: int | None) -> None:
        original = getattr(PGconn, name)

        def send(self: Any, *args: Any, **kwargs: Any) -> Any:
            COUNTER.sent(_text(args[arg]) if arg is not None else name)
            return original(self, *args, **kwargs)

        setattr(PGconn, name, send)

    def wrap_exec(name: str, arg: int) -> None:
        original = getattr(PGconn, name)

        def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
            COUNTER.sent(_text(args[arg]) if isinstance(args[arg], bytes) else name)
            COUNTER.waited()
            return original(self, *args, **kwargs)

        setattr(PGconn, name, execute)

    wrap_send("send_query", 0)
    wrap_send("send_query_params", 0)
    prepared: dict[bytes, str] = {}
    original_prepare = PGconn.send_prepare
    original_prepared = PGconn.send_query_prepared

    def send_prepare(self: Any, name: bytes, command: bytes, *args: Any, **kwargs: Any) -> Any:
        prepared[name] = _text(command)
        COUNTER.parses += 1
        COUNTER.sent(None)
        return original_prepare(self, name, command, *args, **kwargs)

    def send_query_prepared(self: Any, name: bytes, *args: Any, **kwargs: Any) -> Any:
        COUNTER.sent(prepared.get(name, "(prepared)"))
        return original_prepared(self, name, *args, **kwargs)

    PGconn.send_prepare = send_prepare  # type: ignore[method-assign]
    PGconn.send_query_prepared = send_query_prepared  # type: ignore[method-assign]
    wrap_send("pipeline_sync", None)
    wrap_exec("exec_", 0)
    wrap_exec("exec_params", 0)
    original_consume = PGconn.consume_input

    def consume(self: Any) -> Any:
        COUNTER.waited()
        return original_consume(self)

    PGconn.consume_input = consume  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--pack", type=Path, action="append")
    parser.add_argument("--show", action="store_true")
    args = parser.parse_args()
    url = os.environ["DISCRETION_BENCH_POSTGRES_URL"]
    _patch()
    for path in args.pack or [bench.MINIMAL, bench.PACK]:
        pack = load_pack(path)
        facts = bench.facts_for(pack.fields)
        store = SqlStore(url, create=False)
        metadata.drop_all(store.engine)
        store.create_schema()
        guard = Guard(pack, store=store, context=bench.Records(facts), clock=lambda: bench.NOW)
        for i in range(20):  # warm: statements prepared, pool filled
            guard.decide(bench.proposal(i))
        COUNTER.reset()
        for i in range(20, 20 + args.n):
            guard.decide(bench.proposal(i))
        statements = [s for s in COUNTER.statements if s != "pipeline_sync"]
        print(
            f"{pack.name}: decide allow, per decision: {len(statements) / args.n:.1f} statements,"
            f" {COUNTER.round_trips / args.n:.1f} round trips, {COUNTER.parses / args.n:.1f} parses"
        )
        if args.show:
            COUNTER.reset()
            guard.decide(bench.proposal(10_000))
            for statement in COUNTER.statements:
                print("   ", statement)
            print(f"    ({COUNTER.round_trips} round trips)")
        store.close()


if __name__ == "__main__":
    main()
