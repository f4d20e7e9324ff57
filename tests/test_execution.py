"""Exactly-once execution and the outbox: `guard.executions`."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from conftest import refund
from discretion import (
    Execution,
    ExecutionError,
    ExecutionStatus,
    Outcome,
    ProposalError,
)
from discretion.store._schema import executions, ledger

ARGS = {"amount": "40.00", "currency": "USD", "customer_id": "c-1", "case_id": "case-1"}


@pytest.fixture
def guard(make_guard):
    return make_guard()


@pytest.fixture
def decision(guard):
    decision = guard.decide(refund())
    assert decision.outcome is Outcome.ALLOW
    return decision


class Tool:
    """A tool that counts its calls and can be told to fail."""

    def __init__(self, fail: int = 0) -> None:
        self.calls: list[tuple[dict[str, Any], str]] = []
        self.fail = fail

    def __call__(self, arguments: dict[str, Any], key: str) -> dict[str, Any]:
        self.calls.append((arguments, key))
        if self.fail:
            self.fail -= 1
            raise RuntimeError("payment gateway unavailable")
        return {"refund_id": f"rf-{len(self.calls)}", "amount": arguments["amount"]}


def kinds(store) -> list[tuple[str, str, dict[str, Any]]]:
    """Each record's kind, subject and body, without the rows it binds or their states."""
    return [
        (
            r["kind"],
            r["subject_id"],
            {k: v for k, v in r["body"].items() if k not in ("binds", "left")},
        )
        for r in store.export()
    ]


def execution_rows(store) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(executions)).scalar_one())


def run(guard, decision, tool, *, key="call-1", arguments=ARGS) -> Execution:
    return guard.executions.run(
        decision_id=decision.id, key=key, tool="issue_refund", arguments=arguments, call=tool
    )


def test_run_calls_the_tool_once_with_its_key_and_records_the_result(guard, decision, store):
    tool = Tool()
    execution = run(guard, decision, tool)
    assert tool.calls == [(ARGS, "call-1")]
    assert execution.status is ExecutionStatus.SUCCEEDED
    assert execution.result == {"refund_id": "rf-1", "amount": "40.00"}
    assert execution.attempts == 1
    assert not execution.is_replay
    assert execution.decision_id == decision.id
    records = kinds(store)
    assert [k for k, _, _ in records] == ["decision", "execution.started", "execution.succeeded"]
    assert records[1][1] == decision.id
    assert records[1][2] == {"key": "call-1", "tool": "issue_refund", "attempt": 1, "by": "run"}
    assert records[2][2]["result"] == {"refund_id": "rf-1", "amount": "40.00"}
    assert store.verify() == 3


def test_a_retried_call_with_the_same_key_never_runs_the_tool_again(guard, decision, store):
    tool = Tool()
    first = run(guard, decision, tool)
    again = run(guard, decision, tool)
    assert len(tool.calls) == 1
    assert again.is_replay
    assert again.result == first.result
    assert again.status is ExecutionStatus.SUCCEEDED
    assert [k for k, _, _ in kinds(store)].count("execution.started") == 1
    assert guard.executions.get("call-1") == first


def test_the_same_key_with_other_arguments_is_an_error_and_runs_nothing(guard, decision):
    tool = Tool()
    run(guard, decision, tool)
    with pytest.raises(ProposalError, match="already used for 'issue_refund' with other"):
        run(guard, decision, tool, arguments={**ARGS, "amount": "400.00"})
    assert len(tool.calls) == 1


def test_a_failed_call_is_recorded_raised_and_may_be_retried(guard, decision, store):
    tool = Tool(fail=1)
    with pytest.raises(RuntimeError, match="gateway"):
        run(guard, decision, tool)
    failed = guard.executions.get("call-1")
    assert failed is not None
    assert failed.status is ExecutionStatus.FAILED
    assert failed.error == "RuntimeError: payment gateway unavailable"
    retried = run(guard, decision, tool)
    assert retried.status is ExecutionStatus.SUCCEEDED
    assert retried.attempts == 2
    assert retried.error is None
    assert [k for k, _, _ in kinds(store)][1:] == [
        "execution.started",
        "execution.failed",
        "execution.started",
        "execution.succeeded",
    ]
    assert store.verify() == 5


def test_a_claimed_call_that_has_not_ended_is_not_run_again(guard, decision):
    inner: list[BaseException] = []

    def reentrant(arguments: dict[str, Any], key: str) -> str:
        # While this call runs, a retry with the same key must not run the tool again.
        try:
            run(guard, decision, Tool(), key=key)
        except ExecutionError as exc:
            inner.append(exc)
        return "done"

    execution = run(guard, decision, reentrant)
    assert execution.result == "done"
    assert len(inner) == 1
    assert inner[0].key == "call-1"
    assert "has not reported how it ended" in str(inner[0])


def test_enqueue_writes_the_outbox_in_the_callers_transaction(guard, decision, store, clock):
    with store.transaction() as tx:
        guard.executions.enqueue(
            tx,
            decision_id=decision.id,
            key="approved-1",
            tool="issue_refund",
            arguments=ARGS,
            at=clock(),
        )
    [queued] = guard.executions.pending()
    assert queued.status is ExecutionStatus.PENDING
    assert queued.queued_at == clock()
    assert queued.arguments == ARGS
    assert queued.attempts == 0
    assert guard.executions.for_decision(decision.id) == [queued]
    assert kinds(store)[-1] == (
        "execution.queued",
        decision.id,
        {"key": "approved-1", "tool": "issue_refund", "arguments": ARGS},
    )
    tool = Tool()
    done = guard.executions.run_pending({"issue_refund": tool})
    assert [e.status for e in done] == [ExecutionStatus.SUCCEEDED]
    assert guard.executions.run_pending({"issue_refund": tool}) == []
    assert guard.executions.pending() == []
    assert len(tool.calls) == 1
    assert store.verify() == 4


def test_enqueue_rolls_back_with_the_callers_transaction(guard, decision, store, clock):
    def approve_then_fail() -> None:
        with store.transaction() as tx:
            guard.executions.enqueue(
                tx, decision_id=decision.id, key="k", tool="t", arguments={}, at=clock()
            )
            raise RuntimeError("the approval failed")

    with pytest.raises(RuntimeError):
        approve_then_fail()
    assert execution_rows(store) == 0
    assert [k for k, _, _ in kinds(store)] == ["decision"]


def test_enqueue_refuses_a_key_used_for_other_arguments(guard, decision, store, clock):
    def queue(arguments: dict[str, Any]) -> None:
        with store.transaction() as tx:
            guard.executions.enqueue(
                tx, decision_id=decision.id, key="q", tool="t", arguments=arguments, at=clock()
            )

    queue({"a": 1})
    queue({"a": 1})
    with pytest.raises(ProposalError, match="other arguments"):
        queue({"a": 2})
    assert execution_rows(store) == 1


def test_run_pending_records_a_failure_and_goes_on(guard, decision, store, clock):
    with store.transaction() as tx:
        for key in ("a", "b"):
            guard.executions.enqueue(
                tx,
                decision_id=decision.id,
                key=key,
                tool="issue_refund",
                arguments=ARGS,
                at=clock(),
            )
    tool = Tool(fail=1)
    done = guard.executions.run_pending({"issue_refund": tool})
    assert [(e.key, e.status) for e in done] == [
        ("a", ExecutionStatus.FAILED),
        ("b", ExecutionStatus.SUCCEEDED),
    ]


def test_results_that_are_not_json_are_stored_as_text(guard, decision, store):
    class Receipt:
        def __str__(self) -> str:
            return "receipt rf-9"

    execution = run(guard, decision, lambda arguments, key: Receipt())
    assert execution.result == "receipt rf-9"
    with store.engine.connect() as connection:
        stored = connection.execute(select(executions.c.result)).scalar_one()
    assert json.loads(stored) == "receipt rf-9"


@pytest.mark.anyio
async def test_arun_runs_an_async_tool_exactly_once(guard, decision, store):
    calls: list[str] = []

    async def tool(arguments: dict[str, Any], key: str) -> str:
        calls.append(key)
        return "refunded"

    first = await guard.executions.arun(
        decision_id=decision.id, key="k-async", tool="issue_refund", arguments=ARGS, call=tool
    )
    again = await guard.executions.arun(
        decision_id=decision.id, key="k-async", tool="issue_refund", arguments=ARGS, call=tool
    )
    assert calls == ["k-async"]
    assert first.result == "refunded"
    assert again.is_replay
    with store.engine.connect() as connection:
        count = connection.execute(
            select(func.count()).select_from(ledger).where(ledger.c.kind.like("execution.%"))
        ).scalar_one()
    assert count == 2


def test_two_runners_claiming_a_queued_call_at_once_get_it_once(guard, decision, store, clock):
    with store.transaction() as tx:
        guard.executions.enqueue(
            tx,
            decision_id=decision.id,
            key="approved-1",
            tool="issue_refund",
            arguments=ARGS,
            at=clock(),
        )
    barrier = threading.Barrier(2)
    won: list[Execution] = []
    lost: list[ExecutionError] = []

    def claim() -> None:
        barrier.wait()
        try:
            won.append(guard.executions.claim("approved-1"))
        except ExecutionError as exc:
            lost.append(exc)

    runners = [threading.Thread(target=claim) for _ in range(2)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    assert [(e.status, e.attempts) for e in won] == [(ExecutionStatus.RUNNING, 1)]
    [refused] = lost
    assert "has not reported how it ended" in str(refused)
    done = guard.executions.report("approved-1", result={"refund_id": "rf-1"})
    assert (done.status, done.result, done.attempts) == (
        ExecutionStatus.SUCCEEDED,
        {"refund_id": "rf-1"},
        1,
    )
    with pytest.raises(ExecutionError, match="is succeeded, not running"):
        guard.executions.report("approved-1", error="late")
    assert [k for k, _, _ in kinds(store)].count("execution.started") == 1
    assert store.verify() == 4


def test_a_result_holding_nan_or_infinity_is_recorded_as_text(guard, decision, store):
    # Canonical JSON refuses non-finite numbers; the tool ran, so its call must still end.
    result = {"rate": float("nan"), "limits": [float("inf"), -float("inf")], "paid": 40.5}
    execution = run(guard, decision, lambda arguments, key: result)
    assert execution.status is ExecutionStatus.SUCCEEDED
    expected = {"rate": "NaN", "limits": ["Infinity", "-Infinity"], "paid": 40.5}
    assert execution.result == expected
    with store.engine.connect() as connection:
        stored = connection.execute(select(executions.c.status, executions.c.result)).one()
    assert stored.status == "succeeded"
    assert json.loads(stored.result) == expected
    assert kinds(store)[-1] == (
        "execution.succeeded",
        decision.id,
        {"key": "call-1", "tool": "issue_refund", "result": expected},
    )
    assert store.verify() == 3  # the decision, the claim and its result: the chain holds


def test_a_result_holding_a_lone_surrogate_is_recorded_with_the_replacement_character(
    guard, decision, store
):
    # Text decoded with `surrogateescape` is not text JSON can hold; the tool ran, so its call
    # must still end, never stay running.
    result = {"receipt": b"ok \xff".decode("utf-8", "surrogateescape"), "lines": ["\ud800"]}
    execution = run(guard, decision, lambda arguments, key: result)
    assert execution.status is ExecutionStatus.SUCCEEDED
    expected = {"receipt": "ok \ufffd", "lines": ["\ufffd"]}
    assert execution.result == expected
    with store.engine.connect() as connection:
        stored = connection.execute(select(executions.c.result)).one()
    assert json.loads(stored.result) == expected
    assert store.verify() == 3
