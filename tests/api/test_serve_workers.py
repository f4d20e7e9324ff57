"""`discretion serve --workers 2` as a real process tree: two uvicorn workers on one SQLite file.

The server runs as a subprocess, exactly as an operator starts it. Which worker answered is read
from what the workers leave behind: prometheus_client's multiprocess mode (which `serve` turns
on for several workers) keeps one `counter_<pid>.db` file per process that counted a decision,
and the test checks that those pids are the server's own child processes in /proc.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import discretion
from _openai_endpoint import JUDGE_VARIABLES, openai_endpoint
from discretion import Decision, Outcome, SqlStore
from discretion.api import Tokens
from discretion.signing import generate_key
from judge.helpers import JUDGED_PACK, lost_refund

TESTS = Path(__file__).resolve().parents[1]
ACME = TESTS.parent / "examples" / "acme"
SOURCE = Path(discretion.__file__).resolve().parents[1]
JUDGE_MODEL = "judge-test-model"
WORKERS = 2
# Clock-independent cases of the acme pack (serve decides at the wall clock): two hard limits and
# an order the case database does not hold. None of them reserves budget, so any number decide
# the same way.
EXPECTED = {
    "07-refund-fraud-hold": (Outcome.DENY, ["refund.fraud-hold"]),
    "08-refund-above-amount-paid": (Outcome.DENY, ["refund.above-amount-paid"]),
    "16-refund-unknown-order": (Outcome.ROUTE, ["discretion.entity.unknown"]),
}
BATCH = 8  # concurrent requests, each on a new connection, so the kernel spreads the accepts
MAX_BATCHES = 100  # until both workers decided something (the second may still be starting)
POLL_S = 0.05
START_ATTEMPTS = 300  # 15 s of polling /health at most

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="reads the server's process tree from /proc"
)


def _command() -> list[str]:
    """The `discretion` console script of this interpreter's environment."""
    script = shutil.which("discretion", path=str(Path(sys.executable).parent))
    if script is not None:
        return [script]
    return [sys.executable, "-c", "from discretion.cli import app; app()"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _children(pid: int) -> set[int]:
    """The live child processes of `pid`, over all its threads."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def _proposal(case: str, key: str) -> dict[str, Any]:
    (path,) = (ACME / "proposals").glob(f"{case}.json")
    body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    body["idempotency_key"] = key
    return body


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    token: str
    reader: str
    db: str
    metrics_dir: Path
    log: Path
    folder: Path

    def decide(self, body: dict[str, Any]) -> httpx.Response:
        # A client per request: a new connection, which either worker may accept.
        return httpx.post(
            f"{self.base}/v1/decisions",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )

    def decide_all(self, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
        with ThreadPoolExecutor(max_workers=BATCH) as pool:
            return list(pool.map(self.decide, bodies))

    def deciding_pids(self) -> set[int]:
        """The processes that counted a decision (prometheus_client names its files by pid)."""
        return {
            int(found.group(1))
            for path in self.metrics_dir.iterdir()
            if (found := re.fullmatch(r"counter_(\d+)\.db", path.name))
        }

    def pause(self) -> None:
        """Wait a poll interval on the process (an early exit ends the wait), not by sleeping."""
        try:
            self.process.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            return
        pytest.fail(f"serve exited with {self.process.returncode}:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-2000:]


def _wait_until_serving(server: Server) -> None:
    for _ in range(START_ATTEMPTS):
        try:
            if httpx.get(f"{server.base}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        server.pause()
    pytest.fail(f"serve did not answer /health after {START_ATTEMPTS} attempts:\n{server.output()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        # The whole session: the supervisor and any worker it left behind.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextmanager
def _serving(
    folder: Path, pack: Path, *options: str, environment: Mapping[str, str] | None = None
) -> Iterator[Server]:
    """`discretion serve --workers 2` on `pack` with `options`, answering /health."""
    db = f"sqlite:///{folder / 'serve.db'}"
    store = SqlStore(db, create=True)
    tokens = Tokens(store, clock=lambda: datetime.now(UTC))
    secret, _ = tokens.create(subject_id="acme-assist", role="ai_agent", is_ai=True)
    reader, _ = tokens.create(subject_id="prometheus", role="tier1", label="scrapes /metrics")
    store.close()
    metrics_dir = folder / "metrics"
    metrics_dir.mkdir()
    port = _free_port()
    log = folder / "serve.log"
    # The code under test (not whatever `discretion` is installed), and tests/ for the factories.
    path = [str(SOURCE), str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]
    environ = {
        **os.environ,
        **(environment or {}),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "PYTHONPATH": os.pathsep.join(path),
    }
    command = [
        *_command(),
        "serve",
        "--pack",
        str(pack),
        "--db",
        db,
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
        *options,
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environ,
            cwd=folder,
            start_new_session=True,
        )
    served = Server(
        process, f"http://127.0.0.1:{port}", secret, reader, db, metrics_dir, log, folder
    )
    try:
        _wait_until_serving(served)
        yield served
    finally:
        _stop(process)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    signing_key = generate_key(tmp_path / "checkpoint.key")[0]
    options = ("--concurrency", "3", "--signing-key", str(signing_key))
    with _serving(tmp_path, ACME / "pack", *options) as served:
        yield served


def _decide_until_every_worker_has(
    server: Server, proposal: Callable[[str], dict[str, Any]], prefix: str
) -> list[httpx.Response]:
    """Send batches of proposals until each worker has decided one; every answer."""
    sent: list[httpx.Response] = []
    for batch in range(MAX_BATCHES):
        sent += server.decide_all([proposal(f"{prefix}-{batch}-{i}") for i in range(BATCH)])
        if len(server.deciding_pids()) >= WORKERS:
            break
        server.pause()
    return sent


def test_two_workers_decide_exactly_once_and_keep_one_verifiable_ledger(server: Server) -> None:
    cases = list(EXPECTED)
    sent: list[tuple[str, httpx.Response]] = []
    for batch in range(MAX_BATCHES):
        keys = [(cases[i % len(cases)], f"spread-{batch}-{i}") for i in range(BATCH)]
        answers = server.decide_all([_proposal(case, key) for case, key in keys])
        sent += [(case, answer) for (case, _), answer in zip(keys, answers, strict=True)]
        if len(server.deciding_pids()) >= WORKERS:
            break
        server.pause()

    for case, answer in sent:
        assert answer.status_code == 200, f"{case}: {answer.status_code} {answer.text}"
        decision = Decision.model_validate(answer.json())
        assert (decision.outcome, decision.rules) == EXPECTED[case], case
    workers = _children(server.process.pid)
    deciding = server.deciding_pids()
    assert len(deciding) == WORKERS, (
        f"{len(sent)} decisions were counted by processes {sorted(deciding)}; expected"
        f" {WORKERS} workers:\n{server.output()}"
    )
    assert deciding <= workers, f"{sorted(deciding)} are not children of serve: {sorted(workers)}"

    # One key from every connection at once, racing across both workers, then once more.
    retried = _proposal("16-refund-unknown-order", "retried-key")
    answers = [*server.decide_all([retried] * BATCH), server.decide(retried)]
    assert [a.status_code for a in answers] == [200] * (BATCH + 1), [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1, [a.json()["id"] for a in answers]

    # /metrics sums the workers' counters: every key decided once, the retried one too.
    scrape = httpx.get(
        f"{server.base}/metrics", headers={"Authorization": f"Bearer {server.reader}"}, timeout=10
    ).text
    counted = sum(
        float(value)
        for value in re.findall(r"^discretion_decisions_total\{[^}]*\} (\S+)$", scrape, re.M)
    )
    assert counted == len(sent) + 1, scrape
    records = httpx.get(f"{server.base}/health", timeout=10).json()["ledger_records"]
    assert records >= len(sent) + 1

    _stop(server.process)
    assert server.process.returncode == 0, server.output()
    verified = subprocess.run(
        [
            *_command(),
            *("ledger", "verify", "--db", server.db),
            *("--public-key", str(server.folder / "checkpoint.key.pub")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # Every record the workers wrote verifies (shutdown may append more, e.g. a checkpoint).
    found = re.search(r"(\d+) records verify", verified.stdout)
    assert found is not None, verified.stdout
    assert int(found.group(1)) >= records, verified.stdout
    # serve bound every chain's head in a signed checkpoint on its way out.
    assert "checkpoints (signatures checked)" in verified.stdout, verified.stdout


def test_every_worker_decides_with_the_judge_and_context_factory_serve_was_given(
    tmp_path: Path,
) -> None:
    # The judge's key and endpoint come from the environment, as an operator would set them.
    with openai_endpoint() as endpoint:
        environment = {name: "" for name in JUDGE_VARIABLES}
        environment |= {"OPENAI_API_KEY": "sk-served", "DISCRETION_JUDGE_BASE_URL": endpoint.url}
        options = ("--judge", f"openai:{JUDGE_MODEL}")
        options += ("--context-factory", "_context_factories:lost_parcels")
        with _serving(tmp_path, JUDGED_PACK, *options, environment=environment) as server:
            sent = _decide_until_every_worker_has(
                server, lambda key: lost_refund("15.00", actor="acme-assist", key=key), "judged"
            )
            deciding = server.deciding_pids()
            workers = _children(server.process.pid)
    assert len(deciding) == WORKERS, f"{len(sent)} decisions by {sorted(deciding)}"
    assert deciding <= workers, f"{sorted(deciding)} are not children of serve: {sorted(workers)}"
    # Only the factory's facts make this a carrier-lost exception, and only an LLM judge makes
    # it "justified": every worker was given both, whichever answered.
    for answer in sent:
        assert answer.status_code == 200, answer.text
        decision = Decision.model_validate(answer.json())
        assert decision.outcome is Outcome.ALLOW_EXCEPTION, decision.rules
        assert decision.judge is not None
        assert (decision.judge.llm, decision.judge.model) == ("justified", JUDGE_MODEL)
    assert endpoint.calls
    assert {call["body"]["model"] for call in endpoint.calls} == {JUDGE_MODEL}
    assert {call["authorization"] for call in endpoint.calls} == {"Bearer sk-served"}
