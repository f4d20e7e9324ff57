"""Context: the facts a decision needs, and only those.

A `ContextProvider` answers a `ContextRequest` with the facts it knows. The guard asks for exactly
the fields the pack declares the action reads, checks each value's type, freezes the result into a
`Snapshot` and digests it: that snapshot is what the decision is made on and what the lineage
keeps (invariant 6, least context).
"""

from discretion.context._assemble import Snapshot, assemble
from discretion.context._providers import (
    ChainedContext,
    ContextProvider,
    ContextRequest,
    JsonContextProvider,
    StaticContextProvider,
    records_of,
)
from discretion.context._sqlite_cases import SqliteCaseStore
from discretion.context._timeout import TimeoutContext

__all__ = [
    "ChainedContext",
    "ContextProvider",
    "ContextRequest",
    "JsonContextProvider",
    "Snapshot",
    "SqliteCaseStore",
    "StaticContextProvider",
    "TimeoutContext",
    "assemble",
    "records_of",
]
