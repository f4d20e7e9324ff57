"""What the LLM judge remembers across processes: verdicts by question, and calls per day.

`judge_verdicts` keeps each assessment as the judge's JSON, which the judge parses back
(`discretion.judge`); `judge_calls` counts calls per UTC day. Every process and replica sharing
the store shares both. Each method runs in a short transaction of its own, apart from any
decision's: the judge is asked before a decision's transaction opens. A cached verdict decides
later cases, so it is bound to a `judge.verdict` lineage record like every working row that is
acted on (`_bindings`), and one that does not answer to it is never used.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from discretion.errors import StoreError
from discretion.store._schema import judge_calls, judge_verdicts, to_us
from discretion.store._short import ShortTransactions

if TYPE_CHECKING:
    from discretion.store._sql import SqlStore

__all__ = ["Verdicts"]

# Two processes may create a day's counter row at once; the loser retries on the row.
_INSERT_RACES = 3


class Verdicts(ShortTransactions):
    """`SqlStore.verdicts`: the LLM judge's verdict cache and its daily call counter."""

    # A duplicate key or a racing insert is an answer here (the first verdict stands, the
    # counter row exists), so it reaches the methods as it is.
    _passes = (IntegrityError,)

    def __init__(self, store: SqlStore) -> None:
        super().__init__(store)
        self._store = store

    def cached(self, key: str) -> str | None:
        """The assessment (JSON) recorded under `key`, if any.

        Raises:
            LedgerIntegrityError: the row does not answer to the record that bound it (edited
                or forged behind discretion's back); it is never used.
        """
        with self._begin("read the judge's verdict cache") as connection:
            row = connection.execute(
                select(*judge_verdicts.columns).where(judge_verdicts.c.key == key)
            ).first()
            if row is None:
                return None
            values = dict(row._mapping)
            self._store.bindings.check(connection, "judge_verdicts", [values])
        return str(values["assessment"])

    def remember(
        self, key: str, assessment: str, *, model: str, prompt_hash: str, at: datetime
    ) -> None:
        """Record an assessment (JSON) under `key`; the first one recorded is kept.

        With a `judge.verdict` lineage record binding it: the verdict decides later cases.
        """
        values = {
            "key": key,
            "model": model,
            "prompt_hash": prompt_hash,
            "assessment": assessment,
            "recorded_us": to_us(at),
            "ledger_hash": None,
        }
        try:
            with self._store.transaction(doing="write the judge's verdict cache") as tx:
                connection = tx._connection
                taken = connection.execute(
                    select(judge_verdicts.c.key).where(judge_verdicts.c.key == key)
                ).first()
                if taken is not None:
                    # Another process cached the same question first: its verdict stands.
                    return
                connection.execute(insert(judge_verdicts).values(**values))
                tx.touch("judge_verdicts", key, values)
                tx.record(
                    "judge.verdict",
                    key,
                    {"key": key, "model": model, "prompt_hash": prompt_hash, "at": at},
                    at=at,
                )
        except StoreError as exc:
            if not isinstance(exc.__cause__, IntegrityError):
                raise
            # Another process cached the same question at that moment: the first stands.

    def take_call(self, day: str, limit: int) -> bool:
        """Count one call against `day`; False, counting nothing, when `limit` are used.

        Raises:
            StoreError: the database failed, or the day's row stayed contended.
        """
        for _ in range(_INSERT_RACES):
            try:
                with self._begin("count the judge's calls") as connection:
                    # One conditional update: two processes can never both take the last call.
                    taken = connection.execute(
                        update(judge_calls)
                        .where(judge_calls.c.day == day, judge_calls.c.calls < limit)
                        .values(calls=judge_calls.c.calls + 1)
                    ).rowcount
                    if taken:
                        return True
                    used = connection.execute(
                        select(judge_calls.c.calls).where(judge_calls.c.day == day)
                    ).scalar_one_or_none()
                    if used is not None:
                        return False
                    connection.execute(insert(judge_calls).values(day=day, calls=1))
                    return True
            except IntegrityError:
                continue
        raise StoreError(f"cannot count the judge's calls for {day} at {self._where}: contention")
