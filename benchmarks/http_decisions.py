"""Throughput and latency of `POST /v1/decisions` over HTTP, on the SQLite default.

Run: python benchmarks/http_decisions.py [--n 5000] [--concurrency 8] [--servers 1]

The server (`create_app` under uvicorn, the acme pack, a SQLite WAL ledger in a temporary folder,
facts from an in-memory provider) runs in its own process(es); this process is the load
generator. It keeps `--concurrency` keep-alive connections busy with pre-encoded requests, each
from one of 100 agents with its own bearer token (so the agents' daily budgets leave most
refunds inside standard policy, as in production), and prints throughput and p50/p99 latency
measured at the client: request written to response read.

The server socket is bound here and inherited by the server processes, so the first request
waits in the listen backlog instead of racing the start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "examples" / "acme" / "pack"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
AGENTS = 100
sys.path.insert(0, str(Path(__file__).resolve().parent))

from decide import facts_for, proposal  # noqa: E402 - the benchmark next door's workload


def agent(n: int) -> str:
    return f"bench-bot-{n % AGENTS}"


def body(n: int) -> bytes:
    item = proposal(n)
    item["actor"] = {"id": agent(n), "role": "ai_agent", "is_ai": True}
    return json.dumps(item).encode()


def serve(fd: int, db: str) -> None:
    """Server process: the app on the inherited listening socket."""
    import uvicorn

    from discretion import Guard, SqlStore, load_pack
    from discretion.api import create_app
    from discretion.context import StaticContextProvider

    pack = load_pack(PACK)
    guard = Guard(
        pack,
        store=SqlStore(db),
        context=StaticContextProvider(facts_for(pack.fields)),
        clock=lambda: NOW,
    )
    config = uvicorn.Config(
        create_app(guard), log_level="warning", access_log=False, lifespan="off"
    )
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


async def _connection(
    port: int, requests: list[tuple[int, bytes]], latencies: list[float], statuses: Counter[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _, request in requests:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            statuses[int(lines[0].split()[1])] += 1
            length = next(
                int(line.split(":", 1)[1])
                for line in lines
                if line.lower().startswith("content-length:")
            )
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()
        await writer.wait_closed()


def _request(n: int, tokens: dict[str, str]) -> bytes:
    payload = body(n)
    head = (
        "POST /v1/decisions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {tokens[agent(n)]}\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def load(
    port: int, first: int, n: int, concurrency: int, tokens: dict[str, str]
) -> tuple[list[float], Counter[int], float]:
    requests = [(i, _request(i, tokens)) for i in range(first, first + n)]
    shares = [requests[k::concurrency] for k in range(concurrency)]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, s, latencies, statuses) for s in shares))
    return latencies, statuses, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--servers", type=int, default=1, help="Server processes on the socket.")
    parser.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fd is not None:
        serve(args.serve_fd, args.db)
        return

    from sqlalchemy import select

    from discretion import SqlStore
    from discretion.approvals import Tokens
    from discretion.store._schema import decisions

    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/bench.db"
        store = SqlStore(db)
        tokens = {
            agent(i): Tokens(store, clock=lambda: NOW).create(
                subject_id=agent(i), role="ai_agent", is_ai=True
            )[0]
            for i in range(AGENTS)
        }
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        port = listener.getsockname()[1]
        servers = [
            subprocess.Popen(
                [sys.executable, __file__, "--serve-fd", str(listener.fileno()), "--db", db],
                pass_fds=(listener.fileno(),),
            )
            for _ in range(args.servers)
        ]
        try:
            warm = 400
            asyncio.run(load(port, -warm - 1, warm, args.concurrency, tokens))
            latencies, statuses, elapsed = asyncio.run(
                load(port, 0, args.n, args.concurrency, tokens)
            )
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(30)
            listener.close()
        with store.engine.connect() as connection:
            outcomes = Counter(row[0] for row in connection.execute(select(decisions.c.outcome)))
        recorded = store.verify()
        store.close()
    latencies.sort()
    print(
        f"POST /v1/decisions, SQLite, {args.servers} server process(es),"
        f" {args.concurrency} connections, n={args.n} (cores: {os.cpu_count()})"
    )
    print(f"  throughput  {args.n / elapsed:8.0f} decisions/s")
    print(f"  p50         {statistics.median(latencies) * 1000:8.2f} ms")
    print(f"  p90         {latencies[int(len(latencies) * 0.90) - 1] * 1000:8.2f} ms")
    print(f"  p99         {latencies[int(len(latencies) * 0.99) - 1] * 1000:8.2f} ms")
    print(f"  max         {latencies[-1] * 1000:8.2f} ms")
    print(f"  statuses    {dict(statuses)}   outcomes {dict(outcomes)}")
    print(f"  ledger      {recorded} records verify")


if __name__ == "__main__":
    main()
