"""Short transactions of a store part's own, apart from any decision's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from discretion.errors import StoreError

if TYPE_CHECKING:
    from discretion.store._sql import SqlStore

__all__ = ["ShortTransactions"]


class ShortTransactions:
    """A part of `SqlStore` whose every method runs in one short transaction of its own."""

    _passes: ClassVar[tuple[type[SQLAlchemyError], ...]] = ()
    """Database errors its methods handle themselves: raised as they are, not as StoreError."""

    def __init__(self, store: SqlStore) -> None:
        self._engine = store.engine
        self._where = store.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def _begin(self, doing: str) -> Iterator[Connection]:
        """A transaction, committed on leaving; a database error becomes a `StoreError`."""
        try:
            with self._engine.begin() as connection:
                yield connection
        except self._passes:
            raise
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot {doing} at {self._where}: {exc}") from exc
