"""Aliases shared across discretion's modules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from discretion.decision import Decision

__all__ = ["JSON", "Clock", "DecisionHook", "IdFactory", "utc_now"]

Clock: TypeAlias = Callable[[], datetime]
"""Returns the current time as an aware datetime. Inject one to control time in tests."""


def utc_now() -> datetime:
    """The wall clock in UTC: the `Clock` every part uses when none is injected."""
    return datetime.now(UTC)


IdFactory: TypeAlias = Callable[[], str]
"""Returns a fresh, unique id for a decision or record."""

DecisionHook: TypeAlias = "Callable[[Decision], None]"
"""Called with each new decision after it is recorded."""

JSON: TypeAlias = "dict[str, JSON] | list[JSON] | str | int | float | bool | None"
"""A JSON value."""
