"""How many decisions one server process works on at once (`create_app(concurrency=)`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import LoopFacts, fresh_postgres, good_facts, refund
from discretion import Guard
from discretion.api import Tokens, create_app
from discretion.context import (
    ChainedContext,
    ContextRequest,
    JsonContextProvider,
    SqliteCaseStore,
    StaticContextProvider,
)
from discretion.errors import ConfigurationError
from discretion.judge import ReplayJudge

WAIT_S = 10
ACME_CASES = Path(__file__).resolve().parents[2] / "examples" / "acme" / "cases.sql"


class HeldFacts:
    """Good facts, handed out only once the test lets the fetches go; counts who is inside."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.inside = 0
        self.most_inside = 0
        self._count = threading.Lock()
        self._reached: dict[int, threading.Event] = {}

    def reached(self, inside: int) -> threading.Event:
        """An event set once `inside` fetches are waiting at the same time."""
        with self._count:
            event = self._reached.setdefault(inside, threading.Event())
            if self.inside >= inside:
                event.set()
        return event

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        with self._count:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            for inside, event in self._reached.items():
                if self.inside >= inside:
                    event.set()
        try:
            assert self.release.wait(WAIT_S), "the test never let the fetches go"
            return good_facts()
        finally:
            with self._count:
                self.inside -= 1


class LocalHeldFacts(HeldFacts):
    in_process = True


async def _decide_six(guard: Guard, facts: HeldFacts, store: Any, *, inside: int) -> list[Any]:
    """Send six proposals at once; once `inside` are fetching facts, see who waits, then go."""
    app = create_app(guard)
    secret, _ = Tokens(store, clock=guard.now).create(
        subject_id="bot-1", role="ai_agent", is_ai=True
    )
    headers = {"Authorization": f"Bearer {secret}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://discretion") as client:
        sent = [
            asyncio.create_task(
                client.post("/v1/decisions", json=refund(key=f"k-{n}"), headers=headers)
            )
            for n in range(6)
        ]
        reached = facts.reached(inside)
        got_there = await asyncio.to_thread(reached.wait, WAIT_S)
        limiter = app.state.deciding
        waiting = 6 - inside
        for _ in range(10_000):  # turns of the loop, not time: the other requests get parsed
            if limiter.statistics().tasks_waiting == waiting:
                break
            await asyncio.sleep(0)
        statistics = limiter.statistics()
        facts.release.set()
        answers = await asyncio.gather(*sent)
    assert got_there, f"{inside} fetches never ran at once"
    assert statistics.borrowed_tokens == inside
    assert statistics.tasks_waiting == waiting
    return answers


@pytest.mark.anyio
async def test_an_in_process_guard_on_sqlite_decides_on_the_event_loop_one_at_a_time(
    make_guard, sqlite_store
):
    facts = LoopFacts()
    guard = make_guard(context=facts, store=sqlite_store)
    assert guard.in_process
    assert sqlite_store.embedded
    app = create_app(guard)
    assert app.state.deciding is None
    secret, _ = Tokens(sqlite_store, clock=guard.now).create(
        subject_id="bot-1", role="ai_agent", is_ai=True
    )
    headers = {"Authorization": f"Bearer {secret}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://discretion") as client:
        answers = await asyncio.gather(
            *(
                client.post("/v1/decisions", json=refund(key=f"k-{n}"), headers=headers)
                for n in range(6)
            )
        )
    assert [a.status_code for a in answers] == [200] * 6
    assert {a.json()["outcome"] for a in answers} == {"allow"}
    assert len({a.json()["id"] for a in answers}) == 6
    # Every fetch ran on this test's thread, the event loop's: no worker thread, none at once.
    assert set(facts.threads) == {threading.get_ident()}
    assert facts.most_inside == 1
    assert len(sqlite_store.decisions(a.json()["id"] for a in answers)) == 6


@pytest.mark.anyio
@pytest.mark.postgres
async def test_an_in_process_guard_on_postgresql_works_on_two_decisions_at_once_and_queues_the_rest(
    pack, clock
):
    store = fresh_postgres()
    facts = LocalHeldFacts()
    guard = Guard(pack, store=store, context=facts, clock=clock)
    assert guard.in_process
    assert not store.embedded
    try:
        answers = await _decide_six(guard, facts, store, inside=2)
    finally:
        store.close()
    assert [a.status_code for a in answers] == [200] * 6
    assert {a.json()["outcome"] for a in answers} == {"allow"}
    assert len({a.json()["id"] for a in answers}) == 6
    assert facts.most_inside == 2


@pytest.mark.anyio
async def test_a_guard_that_waits_on_the_network_lets_its_waits_overlap(make_guard, store):
    facts = HeldFacts()  # says nothing of where it reads: taken to wait on the network
    guard = make_guard(context=facts)
    assert not guard.in_process
    answers = await _decide_six(guard, facts, store, inside=6)
    assert [a.status_code for a in answers] == [200] * 6
    assert facts.most_inside == 6


def test_concurrency_set_by_hand_wins(make_guard, sqlite_store):
    local = make_guard(context=LocalHeldFacts(), store=sqlite_store)
    assert create_app(local).state.deciding is None
    assert create_app(make_guard(context=HeldFacts())).state.deciding.total_tokens == 40
    assert create_app(local, concurrency=5).state.deciding.total_tokens == 5
    assert create_app(local, concurrency=1).state.deciding.total_tokens == 1


@pytest.mark.postgres
def test_an_in_process_guard_on_postgresql_works_in_two_threads(pack, clock):
    store = fresh_postgres()
    try:
        guard = Guard(pack, store=store, context=LocalHeldFacts(), clock=clock)
        assert create_app(guard).state.deciding.total_tokens == 2
    finally:
        store.close()


def test_concurrency_below_one_is_refused(make_guard):
    with pytest.raises(ConfigurationError, match="concurrency must be at least 1"):
        create_app(make_guard(), concurrency=0)


def test_in_process_says_whether_a_decision_waits_on_anything_outside(make_guard, tmp_path):
    facts = tmp_path / "facts.json"
    facts.write_text('{"defaults": {}}', encoding="utf-8")
    local = [
        StaticContextProvider(),
        JsonContextProvider(facts),
        SqliteCaseStore.from_sql(ACME_CASES),
    ]
    for provider in local:
        assert make_guard(context=provider).in_process, provider
    assert make_guard(context=ChainedContext(local)).in_process
    assert not make_guard(context=ChainedContext([*local, HeldFacts()])).in_process
    assert not make_guard(context=HeldFacts()).in_process
    # An LLM judge waits on its model, whatever the context does.
    recorded = tmp_path / "verdicts.jsonl"
    recorded.write_text("", encoding="utf-8")
    assert not make_guard(judge=ReplayJudge(recorded, model="gpt-test")).in_process


def test_serve_workers_take_concurrency_from_the_environment(monkeypatch, tmp_path):
    from discretion.api._replicas import app_from_environment
    from discretion.settings import Settings
    from discretion.store import SqlStore

    db = f"sqlite:///{tmp_path / 'served.db'}"
    SqlStore(db).close()
    settings = Settings(pack=ACME_CASES.parent / "pack", db=db, context=ACME_CASES)
    for name, value in settings.to_environment().items():
        monkeypatch.setenv(name, value)
    assert app_from_environment().state.deciding is None  # in-process, SQLite: on the loop
    for name, value in replace(settings, concurrency=3).to_environment().items():
        monkeypatch.setenv(name, value)
    assert app_from_environment().state.deciding.total_tokens == 3
