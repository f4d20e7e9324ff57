"""Faults injected through `Guard.decide`: nothing allows by accident, nothing is half-written.

For each fault: the outcome is never `allow`, the rows add up (a decision, its reservations and
its lineage record exist together or not at all), `ledger verify` passes, and the cause is
recorded whenever a decision could be recorded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import func, select
from tenacity import wait_fixed

from approvals.helpers import TINA
from conftest import good_facts, refund
from discretion import (
    ExecutionStatus,
    Guard,
    Outcome,
    SqlStore,
    StoreError,
    load_pack,
)
from discretion.context import ContextRequest, StaticContextProvider, TimeoutContext
from discretion.judge import OpenAIJudge
from discretion.store import SqlTransaction
from discretion.store._schema import decisions, executions, reservations
from judge.helpers import (
    COMPLETIONS,
    JUDGE_URL,
    JUDGED_PACK,
    MODEL,
    FakeMonotonic,
    completion,
    lost_facts,
    lost_refund,
)

ALLOWING = (Outcome.ALLOW, Outcome.ALLOW_EXCEPTION)


def rows(store: SqlStore, table: Any) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def ledger_bodies(store: SqlStore, kind: str) -> list[dict[str, Any]]:
    return [record["body"] for record in store.export() if record["kind"] == kind]


def assert_consistent(store: SqlStore, *, decided: int) -> None:
    """Every decision has its lineage record, every reservation its decision; the chain holds."""
    assert rows(store, decisions) == decided
    assert len(ledger_bodies(store, "decision")) == decided
    with store.engine.connect() as connection:
        orphans = connection.execute(
            select(func.count())
            .select_from(reservations)
            .where(reservations.c.decision_id.not_in(select(decisions.c.id)))
        ).scalar_one()
    assert orphans == 0
    assert store.verify() == store.count()


# Context providers ---------------------------------------------------------------------------


class Raising:
    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        raise ConnectionResetError("CRM connection reset by peer")


class Hanging:
    """A provider that blocks until the test releases it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def fetch(self, request: ContextRequest, /) -> Mapping[str, Any]:
        self.entered.set()
        self.release.wait()
        return good_facts()


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    provider = Hanging()
    yield provider
    provider.release.set()


def test_a_raising_context_provider_routes_with_the_cause_recorded(make_guard, store):
    decision = make_guard(context=Raising()).decide(refund("40.00"))

    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.context-unavailable"]
    assert "ConnectionResetError: CRM connection reset by peer" in decision.causes[0]
    [body] = ledger_bodies(store, "decision")
    assert body["decision"]["causes"] == decision.causes
    assert body["context"] == {}
    assert_consistent(store, decided=1)


def test_a_hanging_context_provider_routes_after_its_timeout(make_guard, store, hanging):
    waited: list[float] = []

    def time_spent(event: threading.Event, timeout_s: float) -> bool:
        # The provider has been asked and is blocked: report the time as spent, without waiting.
        assert hanging.entered.wait(5)
        waited.append(timeout_s)
        return False

    bounded = TimeoutContext(hanging, timeout_s=2.5, wait=time_spent)
    decision = make_guard(context=bounded).decide(refund("40.00"))

    assert waited == [2.5]
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules == ["discretion.context-unavailable"]
    assert "did not answer within 2.5 s" in decision.causes[0]
    assert "Hanging" in decision.causes[0]
    assert ledger_bodies(store, "decision")[0]["decision"]["causes"] == decision.causes
    assert_consistent(store, decided=1)


def test_a_bounded_provider_that_answers_in_time_decides_on_its_facts(make_guard, store):
    bounded = TimeoutContext(StaticContextProvider(good_facts()), timeout_s=30)
    assert make_guard(context=bounded).decide(refund("40.00")).outcome is Outcome.ALLOW


def test_a_bounded_provider_passes_its_own_error_through(make_guard, store):
    bounded = TimeoutContext(Raising(), timeout_s=30)
    decision = make_guard(context=bounded).decide(refund("40.00"))
    assert decision.outcome is Outcome.ROUTE
    assert "CRM connection reset by peer" in decision.causes[0]


@pytest.mark.parametrize("timeout_s", [0, -1.0, float("nan")])
def test_a_timeout_that_is_not_a_positive_number_is_a_configuration_error(timeout_s):
    from discretion import ConfigurationError

    with pytest.raises(ConfigurationError, match="timeout_s must be a positive number"):
        TimeoutContext(StaticContextProvider(), timeout_s=timeout_s)


# The judge -----------------------------------------------------------------------------------


def _prose(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=completion("Approve it. Ignore the schema."))


@pytest.mark.parametrize(
    ("fault", "rule"),
    [
        (httpx.ConnectError("connection refused"), "discretion.judge.failed"),
        (httpx.ReadTimeout("read timed out"), "discretion.judge.timeout"),
        (_prose, "discretion.judge.failed"),
    ],
    ids=["down", "slow", "nonsense"],
)
def test_a_judge_down_slow_or_talking_nonsense_never_keeps_the_exception(
    make_guard, store, fault, rule
):
    monotonic = FakeMonotonic()
    with respx.mock(assert_all_mocked=True) as router, httpx.Client() as client:
        route = router.post(COMPLETIONS).mock(side_effect=fault)
        judge = OpenAIJudge(
            MODEL,
            base_url=JUDGE_URL,
            api_key="sk-test",
            http_client=client,
            wait=wait_fixed(2),
            timeout_s=5.0,
            total_timeout_s=10.0,
            environ={},
            sleep=monotonic.sleep,
            monotonic=monotonic,
        )
        guard = make_guard(lost_facts(), policy=load_pack(JUDGED_PACK), judge=judge)
        decision = guard.decide(lost_refund("15.00"))

    assert route.called
    assert decision.outcome is Outcome.ROUTE
    assert decision.rules[-1] == rule
    assert decision.judge is not None
    assert decision.judge.llm == "failed"
    [body] = ledger_bodies(store, "decision")
    assert body["decision"]["judge"]["llm"] == "failed"
    assert body["decision"]["causes"] == decision.causes
    assert decision.causes
    assert_consistent(store, decided=1)


# The database --------------------------------------------------------------------------------


def test_a_database_unavailable_at_decision_time_answers_nothing(pack, clock):
    # Nothing listens on port 1: every connection is refused.
    unreachable = SqlStore("postgresql+psycopg://postgres@127.0.0.1:1/ledger", create=False)
    guard = Guard(pack, store=unreachable, context=StaticContextProvider(good_facts()), clock=clock)
    with pytest.raises(StoreError, match=r"cannot (read|write) the decision"):
        guard.decide(refund("40.00"))
    unreachable.close()


def test_a_database_that_goes_away_mid_decision_answers_nothing(make_guard, store, monkeypatch):
    guard = make_guard()
    assert guard.decide(refund("10.00", key="before")).outcome is Outcome.ALLOW
    dbapi = store.engine.dialect.loaded_dbapi

    def down(self: SqlTransaction, *args: Any, **kwargs: Any) -> None:
        raise dbapi.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(SqlTransaction, "budget_used", down)
    with pytest.raises(StoreError, match="server closed the connection"):
        guard.decide(refund("40.00", key="during"))
    monkeypatch.undo()
    assert store.find_decision("bot-1", "during") is None
    assert_consistent(store, decided=1)


def test_a_failure_between_budget_reservation_and_ledger_append_writes_nothing(
    make_guard, store, monkeypatch
):
    guard = make_guard()
    first = guard.decide(refund("10.00", key="before"))
    assert first.reservations, "the shop pack reserves budget for an allowed refund"
    reserved_before = rows(store, reservations)
    dbapi = store.engine.dialect.loaded_dbapi
    chain = SqlTransaction._chain
    reached: list[int] = []

    def fail_after_reserving(self: SqlTransaction, *args: Any, **kwargs: Any) -> None:
        # The decision row and its reservations are written; the lineage record is next.
        reached.append(rows_in(self, reservations))
        raise dbapi.OperationalError("disk I/O error")

    monkeypatch.setattr(SqlTransaction, "_chain", fail_after_reserving)
    with pytest.raises(StoreError, match="disk I/O error"):
        guard.decide(refund("40.00", key="torn"))
    monkeypatch.setattr(SqlTransaction, "_chain", chain)

    # Inside the transaction the reservation was there; after the failure none of it is.
    assert reached == [reserved_before + len(first.reservations)]
    assert rows(store, reservations) == reserved_before
    assert store.find_decision("bot-1", "torn") is None
    assert_consistent(store, decided=1)
    # The retry decides once, as if the failed attempt never happened.
    retried = guard.decide(refund("40.00", key="torn"))
    assert retried.outcome is Outcome.ALLOW
    assert guard.decide(refund("40.00", key="torn")) == retried
    assert_consistent(store, decided=2)


def rows_in(tx: SqlTransaction, table: Any) -> int:
    # On the driver's cursor: its fetch waits for the writes PostgreSQL's pipeline mode has
    # sent without waiting (SQLAlchemy would see no result yet).
    cursor = tx._connection.connection.cursor()
    cursor.execute(f"SELECT count(*) FROM {table.name}")
    return int(cursor.fetchone()[0])


# The executor --------------------------------------------------------------------------------


def test_an_executor_failing_after_approval_is_recorded_and_never_runs_twice(make_guard, store):
    guard = make_guard()
    decision = guard.decide(refund("80.00"))
    assert decision.outcome is Outcome.ROUTE
    guard.approvals.approve(decision.id, approver=TINA, note="customer is right")
    calls: list[str] = []

    def gateway(arguments: dict[str, Any], key: str) -> str:
        calls.append(key)
        raise TimeoutError("payment gateway timed out")

    guard.approvals.register("issue_refund", gateway)
    [failed] = guard.approvals.run_approved()

    assert failed.status is ExecutionStatus.FAILED
    assert "payment gateway timed out" in (failed.error or "")
    assert calls == ["bot-1:k-1"]
    [record] = ledger_bodies(store, "execution.failed")
    assert "payment gateway timed out" in json.dumps(record)
    assert rows(store, executions) == 1
    # A failed call waits for a person or an explicit retry: the outbox does not run it again.
    assert guard.approvals.run_approved() == []
    assert calls == ["bot-1:k-1"]
    assert store.verify() == store.count()
