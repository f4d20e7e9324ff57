"""A decision's ledger body is the canonical JSON of what it records, whichever way it is made.

The snapshot's canonical JSON, made once for its digest, is spliced into the record's body
rather than serialised again (`canonical_members`); the text hashed must be exactly what
`canonical_json` of the whole body gives, or `ledger verify` and every reader that
re-serialises a body would disagree with the chain.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conftest import refund
from discretion import Guard
from discretion.lineage import canonical_json, canonical_members, digest
from discretion.store import SqlStore

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), JSON, max_size=6))
def test_members_join_to_the_canonical_json_of_the_whole(value: dict[str, Any]) -> None:
    members = {name: canonical_json(member) for name, member in value.items()}
    assert canonical_members(members) == canonical_json(value)


def test_recorded_body_is_canonical_and_holds_the_digested_snapshot(
    make_guard: Callable[..., Guard], store: SqlStore
) -> None:
    guard = make_guard()
    decision = guard.decide(refund("40.00"))
    [entry] = store.history(decision.id)
    body = json.loads(entry.body)
    assert entry.body == canonical_json(body)
    assert digest(body["context"]) == decision.context_digest
    assert body["decision"]["id"] == decision.id
