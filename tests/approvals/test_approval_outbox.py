"""Approved calls run exactly once through the outbox, across crashes."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SHOP_PACK, good_facts, refund
from discretion import ExecutionError, ExecutionStatus, Guard, SqlStore, StoreError, load_pack
from discretion.approvals import ApprovalStatus
from discretion.context import StaticContextProvider

from ._outbox_worker import LATER, approve_then_stop, execute_then_stop
from .helpers import TINA, records


class PaymentApi:
    """A payment system that deduplicates on the idempotency key, as real ones do."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.refunds: dict[str, str] = {}

    def __call__(self, arguments: dict[str, Any], key: str) -> dict[str, str]:
        self.calls.append((key, arguments["amount"]))
        self.refunds.setdefault(key, arguments["amount"])
        return {"refund_id": f"re_{key}", "amount": self.refunds[key]}


def url_of(store: SqlStore) -> str:
    return store.engine.url.render_as_string(hide_password=False)


@pytest.fixture
def restart(store: SqlStore) -> Iterator[Callable[[], Guard]]:
    """Makes a new process's guard over the same database."""
    opened: list[SqlStore] = []

    def make() -> Guard:
        opened.append(SqlStore(url_of(store)))
        return Guard(
            load_pack(SHOP_PACK),
            store=opened[-1],
            context=StaticContextProvider(good_facts()),
            clock=lambda: LATER,
        )

    yield make
    for each in opened:
        each.close()


def run_until_stopped(target: Callable[..., None], *args: Any) -> tuple[str, int]:
    """Start `target` in a fresh process, wait for its signal, SIGKILL it; return the signal."""
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("SIGKILL is POSIX only")
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=target, args=(*args, child))
    process.start()
    if not parent.poll(120):
        process.kill()
        pytest.fail("the worker never reached the point where it is killed")
    said = parent.recv()
    os.kill(process.pid, signal.SIGKILL)
    process.join(60)
    return said, process.exitcode


def test_approved_call_runs_once_through_the_registered_executor(guard, store):
    decision = guard.decide(refund("80.00"))
    guard.approvals.approve(decision.id, approver=TINA, note="ok")
    api = PaymentApi()
    guard.approvals.register("issue_refund", api)
    [done] = guard.approvals.run_approved()
    assert done.status is ExecutionStatus.SUCCEEDED
    assert done.result == {"refund_id": "re_bot-1:k-1", "amount": "80.00"}
    assert guard.approvals.run_approved() == []
    assert api.calls == [("bot-1:k-1", "80.00")]
    assert [r.kind for r in records(store, "execution.succeeded")] == ["execution.succeeded"]


def test_unregistered_tools_wait_in_the_outbox(guard):
    decision = guard.decide(refund("80.00"))
    guard.approvals.approve(decision.id, approver=TINA, note="ok")
    assert guard.approvals.run_approved() == []
    assert [e.key for e in guard.executions.pending()] == ["bot-1:k-1"]


def test_a_failed_call_is_recorded_and_retried_with_the_same_key(guard, store):
    decision = guard.decide(refund("80.00"))
    guard.approvals.approve(decision.id, approver=TINA, note="ok")
    attempts: list[str] = []

    def flaky(arguments: dict[str, Any], key: str) -> str:
        attempts.append(key)
        if len(attempts) == 1:
            raise ConnectionError("payment API unreachable")
        return "refunded"

    guard.approvals.register("issue_refund", flaky)
    [failed] = guard.approvals.run_approved()
    assert failed.status is ExecutionStatus.FAILED
    assert "payment API unreachable" in (failed.error or "")
    retried = guard.executions.run(
        decision_id=decision.id,
        key="bot-1:k-1",
        tool="issue_refund",
        arguments=failed.arguments,
        call=flaky,
    )
    assert retried.status is ExecutionStatus.SUCCEEDED
    assert attempts == ["bot-1:k-1", "bot-1:k-1"]


def test_a_store_failure_in_the_outbox_propagates_instead_of_passing_as_done(guard, monkeypatch):
    decision = guard.decide(refund("80.00"))
    guard.approvals.approve(decision.id, approver=TINA, note="ok")
    api = PaymentApi()

    def lost(*args: Any, **kwargs: Any) -> None:
        raise StoreError("cannot record execution.succeeded: the database went away")

    # The tool ran, but its result could not be recorded: the worker must not report it done.
    monkeypatch.setattr(guard.executions, "_finish", lost)
    with pytest.raises(StoreError, match="went away"):
        guard.executions.run_pending({"issue_refund": api})
    assert api.calls == [("bot-1:k-1", "80.00")]
    assert guard.executions.get("bot-1:k-1").status is ExecutionStatus.RUNNING


def test_crash_between_commit_and_execution_runs_once_after_restart(guard, store, restart):
    routed = guard.decide(refund("80.00"))
    said, code = run_until_stopped(
        approve_then_stop, str(SHOP_PACK), url_of(store), good_facts(), routed.id
    )
    assert said == "committed"
    assert code == -signal.SIGKILL
    # The approval and its queued call survived the crash; nothing ran.
    assert guard.approvals.get(routed.id).status is ApprovalStatus.APPROVED
    assert [e.key for e in guard.executions.pending()] == ["bot-1:k-1"]
    assert records(store, "execution.started") == []

    api = PaymentApi()
    first = restart()
    first.approvals.register("issue_refund", api)
    [done] = first.approvals.run_approved()
    assert done.status is ExecutionStatus.SUCCEEDED
    # Restarting again runs nothing more.
    second = restart()
    second.approvals.register("issue_refund", api)
    assert second.approvals.run_approved() == []
    assert api.calls == [("bot-1:k-1", "80.00")]
    assert len(records(store, "execution.started")) == 1
    assert len(records(store, "execution.succeeded")) == 1
    assert store.verify() == 5  # decision, approved, queued, started, succeeded


def test_crash_during_the_call_never_runs_it_twice(guard, store, restart, tmp_path: Path):
    routed = guard.decide(refund("80.00"))
    guard.approvals.approve(routed.id, approver=TINA, note="ok")
    charges = tmp_path / "charges.txt"
    said, code = run_until_stopped(
        execute_then_stop, str(SHOP_PACK), url_of(store), good_facts(), str(charges)
    )
    assert (said, code) == ("charged", -signal.SIGKILL)
    api = PaymentApi()
    after = restart()
    after.approvals.register("issue_refund", api)
    # Whether the tool finished is unknown: it is not run again, nor lost from view.
    assert after.approvals.run_approved() == []
    assert api.calls == []
    running = after.executions.get("bot-1:k-1")
    assert running is not None
    assert running.status is ExecutionStatus.RUNNING
    with pytest.raises(ExecutionError, match="has not reported how it ended"):
        after.executions.run(
            decision_id=routed.id,
            key="bot-1:k-1",
            tool="issue_refund",
            arguments=running.arguments,
            call=api,
        )
    assert charges.read_text(encoding="utf-8").splitlines() == ["bot-1:k-1 80.00"]
    assert store.verify() == 4  # decision, approved, queued, started
