"""What the LLM judge remembers across processes: verdicts by question, and calls per day.

Both live in the store (`SqlStore.verdicts`), so every process and replica sharing it shares
them. The store keeps an assessment as JSON; it is parsed back into an `Assessment` here.
"""

from __future__ import annotations

from datetime import datetime

from discretion.judge._request import Assessment
from discretion.store import SqlStore

__all__ = ["JudgeMemory"]


class JudgeMemory:
    """The verdict cache and the daily call counter, in a store."""

    def __init__(self, store: SqlStore) -> None:
        self._verdicts = store.verdicts

    def cached(self, key: str) -> Assessment | None:
        """The assessment recorded under `key`, if any."""
        text = self._verdicts.cached(key)
        return Assessment.model_validate_json(text) if text is not None else None

    def remember(
        self, key: str, assessment: Assessment, *, model: str, prompt_hash: str, at: datetime
    ) -> None:
        """Record an assessment under `key`; the first one recorded is kept."""
        self._verdicts.remember(
            key, assessment.model_dump_json(), model=model, prompt_hash=prompt_hash, at=at
        )

    def take_call(self, day: str, limit: int) -> bool:
        """Count one call against `day`; False, counting nothing, when `limit` are used."""
        return self._verdicts.take_call(day, limit)
