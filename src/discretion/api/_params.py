"""Ids and names in paths and query strings, refused when no stored row could hold them.

A control character (NUL above all, which PostgreSQL cannot compare) or an id longer than its
column is bad input, answered 422 naming the parameter, on every database alike: sent on to
the store it was answered as an outage on PostgreSQL and as "not found" on SQLite.
"""

# FastAPI reads these aliases at runtime in the routes' signatures.

from typing import Annotated

from fastapi import Path, Query

from discretion.proposal import MAX_ID, MAX_NAME, PRINTABLE

__all__ = ["NO_NUL", "DecisionId", "ExecutionKey", "NameQuery", "PrecedentId"]

_RECORD_ID = 64
"""How long a decision's, an approval's or a precedent's id may be (`store/_schema.py`)."""

DecisionId = Annotated[str, Path(min_length=1, max_length=_RECORD_ID, pattern=PRINTABLE)]
"""A decision's id, which is also its approval's."""
PrecedentId = Annotated[str, Path(min_length=1, max_length=_RECORD_ID, pattern=PRINTABLE)]
"""A precedent's id."""
ExecutionKey = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=PRINTABLE)]
"""An execution's idempotency key."""
NameQuery = Annotated[str | None, Query(max_length=MAX_NAME, pattern=PRINTABLE)]
"""An action, a reason or a role to filter by."""

NO_NUL = "^[^\x00]*$"
"""Free text a store can hold (a note, an error): any character but NUL (U+0000), which
PostgreSQL refuses."""
