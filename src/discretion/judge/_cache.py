"""What the LLM judge remembers across processes: verdicts by question, and calls per day.

On a `SqlStore` both live in the store (`judge_verdicts`, `judge_calls`), so every process and
replica sharing it shares them. Any other store gets an in-process memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from discretion.errors import StoreError
from discretion.judge._request import Assessment
from discretion.store import SqlStore, Store
from discretion.store._schema import judge_calls, judge_verdicts
from discretion.store._sql import to_us

__all__ = ["JudgeMemory", "memory_for"]

# Two processes may create a day's counter row at once; the loser retries on the row.
_INSERT_RACES = 3


class JudgeMemory(Protocol):
    """The verdict cache and the daily call counter."""

    def cached(self, key: str, /) -> Assessment | None:
        """The assessment recorded under `key`, if any."""
        ...

    def remember(
        self, key: str, assessment: Assessment, /, *, model: str, prompt_hash: str, at: datetime
    ) -> None:
        """Record an assessment under `key`; the first one recorded is kept."""
        ...

    def take_call(self, day: str, limit: int, /) -> bool:
        """Count one call against `day`; False, counting nothing, when `limit` are used."""
        ...


class _SqlMemory:
    def __init__(self, store: SqlStore) -> None:
        self._engine: Engine = store.engine
        self._where = store.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def _begin(self, doing: str) -> Iterator[Connection]:
        try:
            with self._engine.begin() as connection:
                yield connection
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot {doing} at {self._where}: {exc}") from exc

    def cached(self, key: str) -> Assessment | None:
        with self._begin("read the judge's verdict cache") as connection:
            text = connection.execute(
                select(judge_verdicts.c.assessment).where(judge_verdicts.c.key == key)
            ).scalar_one_or_none()
        return Assessment.model_validate_json(text) if text is not None else None

    def remember(
        self, key: str, assessment: Assessment, *, model: str, prompt_hash: str, at: datetime
    ) -> None:
        try:
            with self._begin("write the judge's verdict cache") as connection:
                connection.execute(
                    insert(judge_verdicts).values(
                        key=key,
                        model=model,
                        prompt_hash=prompt_hash,
                        assessment=assessment.model_dump_json(),
                        recorded_us=to_us(at),
                    )
                )
        except IntegrityError:
            # Another process cached the same question first: its verdict stands.
            pass

    def take_call(self, day: str, limit: int) -> bool:
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


class _LocalMemory:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._verdicts: dict[str, Assessment] = {}
        self._calls: dict[str, int] = {}

    def cached(self, key: str) -> Assessment | None:
        return self._verdicts.get(key)

    def remember(
        self, key: str, assessment: Assessment, *, model: str, prompt_hash: str, at: datetime
    ) -> None:
        with self._lock:
            self._verdicts.setdefault(key, assessment)

    def take_call(self, day: str, limit: int) -> bool:
        with self._lock:
            used = self._calls.get(day, 0)
            if used >= limit:
                return False
            self._calls[day] = used + 1
            return True


def memory_for(store: Store) -> JudgeMemory:
    """The store's own tables for a `SqlStore`; an in-process memory for any other store."""
    if isinstance(store, SqlStore):
        return _SqlMemory(store)
    return _LocalMemory()
