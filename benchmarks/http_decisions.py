"""Throughput and latency of `POST /v1/decisions` over HTTP, on SQLite or PostgreSQL.

Run: python benchmarks/http_decisions.py [--servers 1] [--concurrency 16] [--db URL]
                                         [--generator auto|wrk|python] [--duration 8] [--n 5000]
                                         [--access-log] [--server-concurrency K]

The server (`create_app` under uvicorn, the acme pack, facts from an in-memory provider, a SQLite
WAL ledger in a temporary folder or the tables at `--db`, dropped first) runs in `--servers`
processes sharing one listening socket, as `discretion serve --workers N` does. Each request
comes from one of 1000 agents with its own bearer token (so no agent's daily budget runs out
and every decision stays inside standard policy) and carries its own idempotency key.

The load comes from wrk when it is on PATH (`apt-get install wrk`): a C generator on one thread
whose Lua `request()` hook builds each request, for `--duration` seconds after a 2 s warm-up. It
needs a few per cent of one core, so on a two-core machine the servers keep nearly both. The
fallback (or `--generator python`) is an asyncio client in this process sending `--n` requests
after 400 to warm up; it needs most of a core itself at these rates, so it understates what more
workers add. Throughput, p50 and p99 are measured at the client. On Linux the CPU time the
servers, the generator and the whole machine used during the measured run is printed too: the
servers' CPU per decision is the cost that more workers divide, and a busy machine beyond
servers plus generator means something else ran and the figures are suspect.

The server sockets are bound here and inherited by the server processes, so the first request
waits in a listen backlog instead of racing the start-up. Each server has a socket of its own
on the one port (`SO_REUSEPORT`), so the kernel spreads wrk's connections over them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACK = ROOT / "examples" / "acme" / "pack"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
# The actor-daily budget allows 100 of decide.py's 25.00 refunds per agent, so 1000 agents keep
# the standard outcome for 100k decisions: more than a run at the fastest rate measured sends.
AGENTS = 1000
WARM_UP_S = 2
sys.path.insert(0, str(Path(__file__).resolve().parent))

from decide import Records, facts_for, proposal  # noqa: E402 - the benchmark next door's workload

# Each call of `request()` builds one request: the next agent, and a key unique to the run,
# the wrk thread and the count. The arguments: the tokens file, the body template, a run label.
WRK_SCRIPT = """
local tokens, template, prefix = {}, nil, nil
local sent = 0
local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  local file = io.open(args[2])
  template = file:read("*a")
  file:close()
  prefix = args[3] .. "-" .. thread_id .. "-"
end

function request()
  sent = sent + 1
  local agent = sent % #tokens
  local key = prefix .. sent
  local body = string.format(template, agent, sent % 500, key, key, key)
  return wrk.format("POST", "/v1/decisions", {
    ["Authorization"] = "Bearer " .. tokens[agent + 1],
    ["Content-Type"] = "application/json",
  }, body)
end
"""


def agent(n: int) -> str:
    return f"bench-bot-{n % AGENTS}"


def body(n: int) -> dict[str, Any]:
    item = proposal(n)
    item["actor"] = {"id": agent(n), "role": "ai_agent", "is_ai": True}
    return item


def wrk_template() -> str:
    """decide.py's proposal as a Lua format string: agent, customer, case, order and key slots."""
    item = body(0)
    item["actor"]["id"] = "bench-bot-\x00"
    item["tool"]["arguments"]["customer_id"] = "c-\x00"
    item["tool"]["arguments"]["case_id"] = "case-\x00"
    # An order of its own per request, as in decide.py, named after the key so that the case
    # system finds the case on it and both under the customer.
    item["tool"]["arguments"]["order_id"] = "o-\x00"
    item["idempotency_key"] = "bench-\x00"
    # json.dumps keeps this key order, which is the order the Lua script fills the slots in.
    return json.dumps(item).replace("%", "%%").replace("\\u0000", "%s")


def serve(fd: int, ready_fd: int, db: str, access_log: bool, concurrency: int | None) -> None:
    """Server process: the app on the inherited listening socket; one byte to `ready_fd`."""
    import uvicorn

    from discretion import Guard, SqlStore, load_pack
    from discretion.api import create_app

    pack = load_pack(PACK)
    guard = Guard(
        pack,
        store=SqlStore(db, create=False),
        # The case system holds each proposal's customer, order and case, so the pack's entity
        # binding resolves them and the timed decisions are allowed, as in decide.py.
        context=Records(facts_for(pack.fields)),
        clock=lambda: NOW,
    )
    app = create_app(guard, concurrency=concurrency)
    # Imports and the app are built: what is left is uvicorn taking the socket, milliseconds.
    os.write(ready_fd, b"r")
    os.close(ready_fd)
    config = uvicorn.Config(
        app,
        log_level="info" if access_log else "warning",
        access_log=access_log,
        lifespan="off",
    )
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


def _listeners(count: int) -> list[socket.socket]:
    """One listening socket per server, all on one port.

    With `SO_REUSEPORT` the kernel spreads new connections over the sockets, as a load balancer
    spreads them over replicas. On one shared socket, the server that wakes first accepts every
    connection waiting, and wrk opens all of its connections at once: one server then got all of
    them in about one run of three.
    """
    if count == 1 or not hasattr(socket, "SO_REUSEPORT"):
        shared = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        shared.bind(("127.0.0.1", 0))
        shared.listen(1024)
        return [shared] * count
    sockets: list[socket.socket] = []
    port = 0
    for _ in range(count):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(1024)
        port = listener.getsockname()[1]
        sockets.append(listener)
    return sockets


@dataclass
class Cpu:
    """CPU seconds spent during the measured run (zero where /proc is absent)."""

    per_server_s: list[float]
    generator_s: float
    machine_s: float


class CpuMeter:
    """Each server's CPU time and the machine's busy time, read from Linux's /proc."""

    def __init__(self, server_pids: list[int]) -> None:
        self._pids = server_pids
        self._tick_s = 1 / os.sysconf("SC_CLK_TCK")
        self._start = self._read()

    def _read(self) -> tuple[list[float], float]:
        if not Path("/proc/stat").exists():
            return [0.0] * len(self._pids), 0.0
        servers = []
        for pid in self._pids:
            # utime and stime: the 14th and 15th fields, counted after the command's ")".
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            servers.append((int(fields[11]) + int(fields[12])) * self._tick_s)
        # The machine: every state but idle and iowait, over all cores.
        jiffies = [int(v) for v in Path("/proc/stat").read_text().split()[1:9]]
        return servers, (sum(jiffies) - jiffies[3] - jiffies[4]) * self._tick_s

    def start(self) -> None:
        self._start = self._read()

    def stop(self, generator_s: float) -> Cpu:
        servers, machine = self._read()
        spent = [now - then for now, then in zip(servers, self._start[0], strict=True)]
        return Cpu(spent, generator_s, machine - self._start[1])


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Load:
    """What the client measured."""

    generator: str
    requests: int
    elapsed_s: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    cpu: Cpu


async def _connection(
    port: int, requests: list[bytes], latencies: list[float], statuses: Counter[str]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in requests:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            statuses[lines[0].split()[1]] += 1
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


def _request(n: int, tokens: list[str]) -> bytes:
    payload = json.dumps(body(n)).encode()
    head = (
        "POST /v1/decisions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {tokens[n % AGENTS]}\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def _python_load(
    port: int, first: int, n: int, concurrency: int, tokens: list[str]
) -> tuple[list[float], Counter[str], float]:
    requests = [_request(i, tokens) for i in range(first, first + n)]
    shares = [requests[k::concurrency] for k in range(concurrency)]
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, s, latencies, statuses) for s in shares))
    return latencies, statuses, time.perf_counter() - started


def python_load(port: int, n: int, concurrency: int, tokens: list[str], meter: CpuMeter) -> Load:
    warm = 400
    asyncio.run(_python_load(port, -warm - 1, warm, concurrency, tokens))
    meter.start()
    own = _cpu_s(resource.RUSAGE_SELF)
    latencies, statuses, elapsed = asyncio.run(_python_load(port, 0, n, concurrency, tokens))
    cpu = meter.stop(_cpu_s(resource.RUSAGE_SELF) - own)
    latencies.sort()
    return Load(
        generator="python asyncio client, in the benchmark's own process",
        requests=n,
        elapsed_s=elapsed,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99) - 1] * 1000,
        statuses={str(k): v for k, v in statuses.items()},
        cpu=cpu,
    )


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk_ms(output: str, percentile: str) -> float:
    found = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    if found is None:
        raise RuntimeError(f"no {percentile}% latency in wrk's output:\n{output}")
    return float(found.group(1)) * _UNITS_MS[found.group(2)]


def wrk_load(
    wrk: str,
    port: int,
    duration_s: int,
    concurrency: int,
    tokens: list[str],
    folder: Path,
    meter: CpuMeter,
) -> Load:
    script = folder / "decisions.lua"
    script.write_text(WRK_SCRIPT, encoding="utf-8")
    (folder / "tokens.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    (folder / "body.json").write_text(wrk_template(), encoding="utf-8")

    def run(label: str, seconds: int) -> str:
        command = [wrk, "--threads", "1", "--connections", str(concurrency)]
        command += ["--duration", f"{seconds}s", "--timeout", "10s", "--latency"]
        command += ["--script", str(script), f"http://127.0.0.1:{port}", "--"]
        command += [str(folder / "tokens.txt"), str(folder / "body.json"), label]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout

    run("warm", WARM_UP_S)
    meter.start()
    waited = _cpu_s(resource.RUSAGE_CHILDREN)
    output = run("run", duration_s)
    cpu = meter.stop(_cpu_s(resource.RUSAGE_CHILDREN) - waited)
    found = re.search(r"^\s*(\d+) requests in ([\d.]+)(ms|s|m)", output, re.M)
    if found is None:
        raise RuntimeError(f"no request count in wrk's output:\n{output}")
    requests = int(found.group(1))
    statuses = {"2xx": requests}
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if failed is not None:
        statuses = {"2xx": requests - int(failed.group(1)), "other": int(failed.group(1))}
    errors = re.search(r"Socket errors: (.*)$", output, re.M)
    if errors is not None:
        statuses[f"socket errors ({errors.group(1)})"] = 1
    return Load(
        generator="wrk (C, 1 thread), in a process of its own",
        requests=requests,
        elapsed_s=float(found.group(2)) * _UNITS_MS[found.group(3)] / 1000,
        p50_ms=_wrk_ms(output, "50"),
        p99_ms=_wrk_ms(output, "99"),
        statuses=statuses,
        cpu=cpu,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=1, help="Server processes on the socket.")
    parser.add_argument("--concurrency", type=int, default=16, help="Keep-alive connections.")
    parser.add_argument("--db", help="Database URL; its tables are dropped first.")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--duration", type=int, default=8, help="Seconds measured with wrk.")
    parser.add_argument("--n", type=int, default=5000, help="Requests with the python client.")
    parser.add_argument(
        "--access-log", action="store_true", help="Log every request, as `serve` does."
    )
    parser.add_argument(
        "--server-concurrency",
        type=int,
        help="Decisions each server works on at once (`serve --concurrency`).",
    )
    parser.add_argument("--serve-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-db", help=argparse.SUPPRESS)
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fd is not None:
        serve(args.serve_fd, args.ready_fd, args.serve_db, args.access_log, args.server_concurrency)
        return

    from sqlalchemy import select

    from discretion import SqlStore
    from discretion.api import Tokens
    from discretion.store._dialect import create
    from discretion.store._schema import decisions, metadata

    wrk = shutil.which("wrk") if args.generator != "python" else None
    if args.generator == "wrk" and wrk is None:
        parser.error("wrk is not on PATH (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or f"sqlite:///{tmp}/bench.db"
        # Dropped before the store opens them: it reads what it finds, even an older schema.
        engine = create(db)
        metadata.drop_all(engine)
        engine.dispose()
        store = SqlStore(db)
        database = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[store.engine.dialect.name]
        issue = Tokens(store, clock=lambda: NOW).create
        tokens = [issue(subject_id=agent(i), role="ai_agent", is_ai=True)[0] for i in range(AGENTS)]
        listeners = _listeners(args.servers)
        port = listeners[0].getsockname()[1]
        ready, ready_w = os.pipe()
        servers = []
        for listener in listeners:
            command = [sys.executable, __file__, "--serve-fd", str(listener.fileno())]
            command += ["--ready-fd", str(ready_w), "--serve-db", db]
            command += ["--access-log"] if args.access_log else []
            if args.server_concurrency is not None:
                command += ["--server-concurrency", str(args.server_concurrency)]
            servers.append(
                subprocess.Popen(
                    command, pass_fds=(listener.fileno(), ready_w), stdout=subprocess.DEVNULL
                )
            )
        os.close(ready_w)
        try:
            # Every server up before the first connection: wrk's connections are kept alive,
            # so a server still starting would sit the whole run out.
            with os.fdopen(ready, "rb") as signals:
                started = len(signals.read())
            if started != args.servers:
                raise RuntimeError(f"{args.servers - started} server(s) exited on start-up")
            meter = CpuMeter([server.pid for server in servers])
            if wrk is not None:
                folder = Path(tmp)
                load = wrk_load(wrk, port, args.duration, args.concurrency, tokens, folder, meter)
            else:
                load = python_load(port, args.n, args.concurrency, tokens, meter)
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    # Shutting down waits for requests in flight: a stuck one must not outlive us.
                    server.kill()
                    server.wait()
            for listener in listeners:
                listener.close()
        with store.engine.connect() as connection:
            outcomes = Counter(row[0] for row in connection.execute(select(decisions.c.outcome)))
        recorded = store.verify()
        store.close()
    per_s = load.requests / load.elapsed_s
    cpu, seconds = load.cpu, load.elapsed_s
    print(
        f"POST /v1/decisions, {database}, {args.servers} server process(es),"
        f" {args.concurrency} connections, {load.requests} requests (cores: {os.cpu_count()})"
    )
    print(f"  generator   {load.generator}")
    print(f"  throughput  {per_s:8.0f} decisions/s")
    print(f"  p50         {load.p50_ms:8.2f} ms")
    print(f"  p99         {load.p99_ms:8.2f} ms")
    if cpu.machine_s:
        servers_s = sum(cpu.per_server_s)
        each = " + ".join(f"{s / seconds:.2f}" for s in cpu.per_server_s)
        print(
            f"  cpu         servers {servers_s / seconds:.2f} cores ({each};"
            f" {servers_s / load.requests * 1000:.2f} ms a decision),"
            f" generator {cpu.generator_s / seconds:.2f}, machine {cpu.machine_s / seconds:.2f}"
            f" of {os.cpu_count()} cores busy"
        )
    print(f"  statuses    {load.statuses}   outcomes {dict(outcomes)}")
    print(f"  ledger      {recorded} records verify")


if __name__ == "__main__":
    main()
