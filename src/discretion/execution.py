"""Exactly-once execution of governed tool calls, and the outbox of approved ones.

Every governed tool call runs under a key (the framework's tool-call id, or one derived from the
case, the tool and the canonical arguments). `Executions.run` claims the key in one transaction
(lineage `execution.started`), calls the tool outside any transaction, then records
`execution.succeeded` with the result, or `execution.failed` with the error, in another:

```
(no row) ──run──▶ running ──▶ succeeded      a later run with the key returns the stored result
pending ──run──▶ running ──▶ failed ──run──▶ running ...   a failed call may be retried
```

`enqueue` writes a `pending` row (lineage `execution.queued`) inside the caller's transaction:
an approval enqueues the approved call in the same transaction as the approval, and the call runs
later through `run` or `run_pending`.

A claim that never recorded its end (the process stopped mid-call) stays `running`: whether the
tool ran is unknown, so it is never run again automatically (`ExecutionError`). The key is passed
to the tool so that a payment API can deduplicate on it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeAlias

from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python

from discretion.errors import ExecutionError, ProposalError, StoreError
from discretion.lineage import canonical_json, digest, without_surrogates
from discretion.store import ExecutionRow, SqlStore, SqlTransaction
from discretion.types import Clock

__all__ = ["AsyncToolCall", "Execution", "ExecutionStatus", "Executions", "ToolCallable"]

ToolCallable: TypeAlias = Callable[[dict[str, Any], str], Any]
"""Runs a tool: called with the call's arguments and its idempotency key, returns the result."""

AsyncToolCall: TypeAlias = Callable[[dict[str, Any], str], Awaitable[Any]]
"""`ToolCallable` for async tools."""


def _jsonable(value: Any) -> Any:
    """A tool's result as JSON can hold it, so that it is always recorded.

    Tool results are often framework objects (messages, models): what JSON can say is kept, the
    rest is written as text. A NaN or an infinity, which canonical JSON refuses, is kept as the
    text `"NaN"`, `"Infinity"` or `"-Infinity"`, and a lone surrogate as U+FFFD: the tool ran,
    and a result that could not be recorded would leave its call running for ever, never to be
    run again.
    """
    try:
        return json.loads(to_json(value, fallback=str, inf_nan_mode="strings"))
    except PydanticSerializationError:
        # A lone surrogate in a text (one decoded with `surrogateescape`): not text, so no JSON
        # can hold it. Each is kept as U+FFFD, the replacement character; the rest as it was.
        plain = _replaced(to_jsonable_python(value, fallback=str))
        return json.loads(to_json(plain, inf_nan_mode="strings"))


def _replaced(node: Any) -> Any:
    """`node`, plain JSON-able values, with each lone surrogate in a text or key as U+FFFD."""
    if isinstance(node, str):
        return without_surrogates(node)
    if isinstance(node, dict):
        return {_replaced(key): _replaced(child) for key, child in node.items()}
    if isinstance(node, list):
        return [_replaced(child) for child in node]
    return node


class ExecutionStatus(StrEnum):
    """Where a tool call stands."""

    PENDING = "pending"
    """Approved and queued; it has not started."""
    RUNNING = "running"
    """Claimed; the tool was called and has not reported back."""
    SUCCEEDED = "succeeded"
    """The tool returned; its result is stored and it never runs again."""
    FAILED = "failed"
    """The tool raised; it may be run again with the same key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """One governed tool call, keyed for exactly-once execution."""

    key: str
    """The idempotency key: the same key never runs the tool twice."""
    decision_id: str
    """The decision that allowed it (for an approved call, the routed decision's id)."""
    tool: str
    """The tool's name."""
    arguments: dict[str, Any]
    """The arguments it runs with, as JSON."""
    status: ExecutionStatus
    """Where it stands."""
    attempts: int
    """How many times it was claimed to run."""
    result: Any = None
    """The tool's result as JSON, once it succeeded."""
    error: str | None = None
    """What the tool raised, when the last attempt failed."""
    queued_at: datetime | None = None
    """When it was queued after an approval."""
    started_at: datetime | None = None
    """When the last attempt started."""
    finished_at: datetime | None = None
    """When the last attempt ended."""
    is_replay: bool = False
    """True when `run` returned a stored success instead of calling the tool."""


def _execution(row: ExecutionRow) -> Execution:
    return Execution(
        key=row.key,
        decision_id=row.decision_id,
        tool=row.tool,
        arguments=json.loads(row.arguments),
        status=ExecutionStatus(row.status),
        attempts=row.attempts,
        result=json.loads(row.result) if row.result is not None else None,
        error=row.error,
        queued_at=row.queued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Call:
    """A call's identity, canonicalised once."""

    key: str
    decision_id: str
    tool: str
    arguments: dict[str, Any]
    text: str
    digest: str

    @classmethod
    def of(cls, *, key: str, decision_id: str, tool: str, arguments: Mapping[str, Any]) -> _Call:
        if not key or len(key) > 200:
            raise ProposalError(
                f"execution key {key!r}: give a key of 1 to 200 characters", field="key"
            )
        plain = _jsonable(dict(arguments))
        text = canonical_json(plain)
        return cls(
            key=key,
            decision_id=decision_id,
            tool=tool,
            arguments=plain,
            text=text,
            digest=digest({"tool": tool, "arguments": plain}),
        )

    def check(self, row: ExecutionRow) -> None:
        """Raise unless `row` holds this same call."""
        if row.arguments_digest != self.digest:
            raise ProposalError(
                f"execution key {self.key!r} was already used for {row.tool!r} with other"
                f" arguments ({row.arguments}); a new call needs a new key",
                field="idempotency_key",
            )


def _check_same_actor(tx: SqlTransaction, call: _Call, row: ExecutionRow) -> None:
    """Raise unless the call on record under the key was proposed by this call's actor.

    A decision's execution key joins its actor's id and its idempotency key with `:`, so two
    actors' keys can meet (`bot` with `x:1`, `bot:x` with `1`). Another actor's run under the
    same key is never replayed as this call's, nor its queued call run as this one.
    """
    earlier, this = tx.decision(row.decision_id), tx.decision(call.decision_id)
    if earlier is None or this is None or earlier.actor_id == this.actor_id:
        return
    raise ProposalError(
        f"execution key {call.key!r} is already the key of a call {earlier.actor_id!r}"
        f" proposed (decision {row.decision_id}), not {this.actor_id!r}; propose this call"
        " with another idempotency key",
        field="idempotency_key",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Claim:
    """A claimed attempt: what its end is recorded against."""

    decision_id: str
    attempt: int
    started_at: datetime
    queued_at: datetime | None = None


def _relied_on(tx: SqlTransaction, call: _Call, decision_id: str) -> None:
    """Refuse to run an approved call whose decision relies on a precedent since revoked.

    Revoking a precedent stops the approvals that rely on it: a pending one cannot be approved
    (`pipeline._recheck`), and a call approved and still queued does not run.

    Raises:
        ExecutionError: naming the precedent; nothing is written.
    """
    decision = tx.decision(decision_id)
    if decision is None:
        return
    approval = tx.approvals.get(decision_id)
    fallen = tx.precedents.fallen(
        decision.relied_on(approval.proposal if approval is not None else None)
    )
    if fallen is not None:
        precedent_id, why = fallen
        raise ExecutionError(
            f"execution {call.key!r} ({call.tool}) relies on precedent {precedent_id!r}, which"
            f" {why}; it does not run. Ask for a new proposal that stands without it",
            key=call.key,
        )


class Executions:
    """The exactly-once ledger of tool calls and the outbox of approved ones.

    Example:
        ```python
        execution = guard.executions.run(
            decision_id=decision.id, key=decision.execution_key, tool="issue_refund",
            arguments=arguments, call=lambda args, key: payments.refund(**args, key=key),
        )
        ```

    Args:
        store: the store whose transactions also record the executions.
        clock: the current time as an aware datetime.
    """

    def __init__(self, store: SqlStore, *, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def _now(self) -> datetime:
        moment = self._clock()
        if moment.tzinfo is None:
            raise ProposalError("the executions clock returned a naive datetime; use an aware one")
        return moment

    # Writes -----------------------------------------------------------------------------------

    def enqueue(
        self,
        tx: SqlTransaction,
        *,
        decision_id: str,
        key: str,
        tool: str,
        arguments: Mapping[str, Any],
        at: datetime,
    ) -> None:
        """Queue an approved call inside the caller's transaction (lineage `execution.queued`).

        Queuing the same call again is a no-op.

        Raises:
            ProposalError: the key was already used for other arguments.
        """
        call = _Call.of(key=key, decision_id=decision_id, tool=tool, arguments=arguments)
        row = tx.executions.get(key)
        if row is not None:
            call.check(row)
            return
        tx.executions.queue(
            ExecutionRow(
                key=key,
                decision_id=decision_id,
                tool=tool,
                arguments=call.text,
                arguments_digest=call.digest,
                status=ExecutionStatus.PENDING.value,
                attempts=0,
                queued_at=at,
            )
        )
        tx.record(
            "execution.queued",
            decision_id,
            {"key": key, "tool": tool, "arguments": call.arguments},
            at=at,
        )

    def _claim(self, call: _Call, *, by: str) -> _Claim | Execution:
        """Claim the call to run now; return the stored success instead when there is one.

        `by`: `run` (this process calls the tool and records its end) or `claim` (a runner
        elsewhere calls it and reports with `report`); on record with the claim.
        """
        now = self._now()
        with self._store.transaction() as tx:
            # A claim inserts the key's row or, finding it, locks it: no two claims of one key
            # interleave.
            claim = _Claim(decision_id=call.decision_id, attempt=1, started_at=now)
            claimed = tx.executions.claim(
                key=call.key,
                decision_id=call.decision_id,
                tool=call.tool,
                arguments=call.text,
                arguments_digest=call.digest,
                status=ExecutionStatus.RUNNING.value,
                started_at=now,
            )
            if not claimed:
                row = tx.executions.locked(call.key)
                if row is None:  # pragma: no cover - rows are never deleted
                    raise StoreError(f"execution {call.key!r} vanished while it was claimed")
                call.check(row)
                if row.decision_id != call.decision_id:
                    _check_same_actor(tx, call, row)
                status = ExecutionStatus(row.status)
                if status is ExecutionStatus.SUCCEEDED:
                    return replace(_execution(row), is_replay=True)
                if status is ExecutionStatus.RUNNING:
                    raise ExecutionError(
                        f"execution {call.key!r} ({call.tool}) started at"
                        f" {row.started_at} and has not reported how it ended; it is not run"
                        " again. Check with the tool's system whether it ran, using the key,"
                        " before acting on it by hand",
                        key=call.key,
                    )
                if row.queued_at is not None:
                    _relied_on(tx, call, row.decision_id)
                claim = _Claim(
                    decision_id=row.decision_id,
                    attempt=row.attempts + 1,
                    started_at=now,
                    queued_at=row.queued_at,
                )
                tx.executions.restart(
                    call.key,
                    status=ExecutionStatus.RUNNING.value,
                    attempts=claim.attempt,
                    started_at=now,
                )
            tx.record(
                "execution.started",
                claim.decision_id,
                {"key": call.key, "tool": call.tool, "attempt": claim.attempt, "by": by},
                at=now,
            )
        return claim

    def _finish(
        self,
        call: _Call,
        claim: _Claim,
        *,
        result: Any = None,
        error: str | None = None,
        reported: bool = False,
    ) -> Execution:
        now = self._now()
        succeeded = error is None
        status = ExecutionStatus.SUCCEEDED if succeeded else ExecutionStatus.FAILED
        body: dict[str, Any] = {"key": call.key, "tool": call.tool}
        stored = _jsonable(result) if succeeded else None
        if succeeded:
            body["result"] = stored
        else:
            body["error"] = error
        with self._store.transaction() as tx:
            if reported:
                # A runner elsewhere reports across requests: only the attempt it claimed, once.
                row = tx.executions.locked(call.key)
                if row is None or ExecutionStatus(row.status) is not ExecutionStatus.RUNNING:
                    state = row.status if row is not None else "missing"
                    raise ExecutionError(
                        f"execution {call.key!r} ({call.tool}) is {state}, not running: its"
                        " result was already reported, or it was never claimed; claim it first",
                        key=call.key,
                    )
                started = tx.record_of(row.decision_id, row.ledger_hash)
                if started is not None and started.get("by") == "run":
                    # The process that called the tool records its end: a report from anyone
                    # else would free the call to run again while it may still be paying out.
                    raise ExecutionError(
                        f"execution {call.key!r} ({call.tool}) is running in the process that"
                        " claimed it, which records how it ends; only a call claimed with"
                        " `claim` (POST .../claim) is reported",
                        key=call.key,
                    )
                claim = replace(claim, attempt=row.attempts)
            tx.executions.finish(
                call.key,
                status=status.value,
                result=canonical_json(stored) if succeeded else None,
                error=error,
                finished_at=now,
            )
            tx.record(f"execution.{status.value}", claim.decision_id, body, at=now)
        return Execution(
            key=call.key,
            decision_id=claim.decision_id,
            tool=call.tool,
            arguments=call.arguments,
            status=status,
            attempts=claim.attempt,
            result=stored,
            error=error,
            queued_at=claim.queued_at,
            started_at=claim.started_at,
            finished_at=now,
        )

    def run(
        self,
        *,
        decision_id: str,
        key: str,
        tool: str,
        arguments: Mapping[str, Any],
        call: ToolCallable,
    ) -> Execution:
        """Run `call(arguments, key)` exactly once for `key`.

        A key that already succeeded returns the stored execution (`is_replay`) without calling.
        A queued (`pending`) or failed key is claimed and called. What the tool raises is
        recorded as `execution.failed` and raised again.

        Raises:
            ProposalError: the key was already used for other arguments or another tool.
            ExecutionError: an earlier attempt with the key has not reported how it ended.
        """
        item = _Call.of(key=key, decision_id=decision_id, tool=tool, arguments=arguments)
        claim = self._claim(item, by="run")
        if isinstance(claim, Execution):
            return claim
        try:
            result = call(dict(item.arguments), key)
        except Exception as exc:
            self._finish(item, claim, error=f"{type(exc).__name__}: {exc}")
            raise
        return self._finish(item, claim, result=result)

    async def arun(
        self,
        *,
        decision_id: str,
        key: str,
        tool: str,
        arguments: Mapping[str, Any],
        call: AsyncToolCall,
    ) -> Execution:
        """`run` for async tools.

        The store is used on the caller's event loop when it is embedded, else from a worker
        thread (`SqlStore.arun`).
        """
        item = _Call.of(key=key, decision_id=decision_id, tool=tool, arguments=arguments)
        claim = await self._store.arun(self._claim, item, by="run")
        if isinstance(claim, Execution):
            return claim
        try:
            result = await call(dict(item.arguments), key)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            await self._store.arun(self._finish, item, claim, error=error)
            raise
        return await self._store.arun(self._finish, item, claim, result=result)

    def run_pending(
        self, calls: Mapping[str, ToolCallable], *, limit: int = 100
    ) -> list[Execution]:
        """Run the queued calls whose tools are in `calls` (by tool name), oldest first.

        A call whose tool raises is recorded as failed, and one another worker is running is
        left to it; the rest still run.

        Raises:
            StoreError: the store failed; nothing after the failing call ran.
        """
        done: list[Execution] = []
        for queued in self.pending(limit=limit):
            tool = calls.get(queued.tool)
            if tool is None:
                continue
            raised: list[Exception] = []

            def call(
                arguments: dict[str, Any],
                key: str,
                tool: ToolCallable = tool,
                raised: list[Exception] = raised,
            ) -> Any:
                try:
                    return tool(arguments, key)
                except Exception as exc:
                    raised.append(exc)
                    raise

            try:
                done.append(
                    self.run(
                        decision_id=queued.decision_id,
                        key=queued.key,
                        tool=queued.tool,
                        arguments=queued.arguments,
                        call=call,
                    )
                )
            except Exception as exc:
                # Only the tool's own failure (run recorded it) or a call another worker holds
                # is passed over: a store failure is never reported as a finished execution.
                if not isinstance(exc, ExecutionError) and not any(exc is e for e in raised):
                    raise
                stored = self.get(queued.key)
                if stored is not None:
                    done.append(stored)
        return done

    def claim(self, key: str) -> Execution:
        """Claim a queued (or failed) call for a runner outside this process.

        The runner (an agent over HTTP, say) then calls the tool and reports with `report`.
        The claim records `execution.started`, as `run` does. Exactly one claim of an attempt
        wins: a call that is running or succeeded is not claimed again.

        Raises:
            ExecutionError: no call is queued under `key`, or it is running or succeeded.
        """
        row = self._store.executions.get(key)
        if row is None:
            raise ExecutionError(f"no execution {key!r} is queued; nothing to claim", key=key)
        item = self._call_of(row)
        claim = self._claim(item, by="claim")
        if isinstance(claim, Execution):
            raise ExecutionError(
                f"execution {key!r} ({row.tool}) already succeeded; it is not run again",
                key=key,
            )
        return Execution(
            key=key,
            decision_id=claim.decision_id,
            tool=item.tool,
            arguments=item.arguments,
            status=ExecutionStatus.RUNNING,
            attempts=claim.attempt,
            queued_at=claim.queued_at,
            started_at=claim.started_at,
        )

    def report(self, key: str, *, result: Any = None, error: str | None = None) -> Execution:
        """Record how a call claimed with `claim` ended: its result, or the error it raised.

        A report ends the attempt once (`execution.succeeded` or `execution.failed`); a failed
        call may be claimed again.

        Raises:
            ExecutionError: the call is not running (never claimed, or already reported), or
                `run` claimed it: the process calling the tool records how it ends.
        """
        row = self._store.executions.get(key)
        if row is None or row.started_at is None:
            raise ExecutionError(f"no execution {key!r} was claimed; claim it first", key=key)
        claim = _Claim(
            decision_id=row.decision_id,
            attempt=row.attempts,
            started_at=row.started_at,
            queued_at=row.queued_at,
        )
        return self._finish(self._call_of(row), claim, result=result, error=error, reported=True)

    @staticmethod
    def _call_of(row: ExecutionRow) -> _Call:
        return _Call.of(
            key=row.key,
            decision_id=row.decision_id,
            tool=row.tool,
            arguments=json.loads(row.arguments),
        )

    # Reads ------------------------------------------------------------------------------------

    def get(self, key: str) -> Execution | None:
        """The execution with this key, if any."""
        row = self._store.executions.get(key)
        return _execution(row) if row is not None else None

    def pending(self, limit: int = 100, *, actor_id: str | None = None) -> list[Execution]:
        """The outbox: queued calls that have not started, oldest first.

        With `actor_id`, only the calls that actor proposed.
        """
        rows = self._store.executions.with_status(
            ExecutionStatus.PENDING.value, limit=limit, actor_id=actor_id
        )
        return [_execution(row) for row in rows]

    def for_decision(self, decision_id: str) -> list[Execution]:
        """The executions a decision led to (at most one for a call; none when not allowed)."""
        return [_execution(row) for row in self._store.executions.for_decision(decision_id)]
