"""A decision's ledger body is the canonical JSON of what it records, whichever way it is made.

The snapshot's canonical JSON, made once for its digest, is spliced into the record's body
rather than serialised again (`canonical_members`); the text hashed must be exactly what
`canonical_json` of the whole body gives, or `ledger verify` and every reader that
re-serialises a body would disagree with the chain.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import select

from conftest import refund
from discretion import Guard
from discretion.context import Snapshot
from discretion.decision import ClaimCheck, JudgeRecord
from discretion.lineage import canonical_json, canonical_members, digest
from discretion.money import Money
from discretion.store import SqlStore
from discretion.store._bindings import _STATE, row_digest
from discretion.store._schema import approvals

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


FINITE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=-1e-3, max_value=1e-3, allow_nan=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(), inner, max_size=4)
        | st.dictionaries(st.integers(), inner, max_size=2)
    ),
    max_leaves=25,
)


@given(FINITE)
def test_the_fast_canonical_json_of_finite_values_is_the_standard_ones_byte_for_byte(
    value: Any,
) -> None:
    # Floats below 1e-4, ints beyond 64 bits and keys that are not text are written by the
    # standard encoder; every other value by orjson. Either way, the same text.
    assert canonical_json(value, finite=True) == canonical_json(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.5e-07, '{"x":1.5e-07}'),
        (1e-05, '{"x":1e-05}'),
        (6.4e-05, '{"x":6.4e-05}'),
        (1e16, '{"x":1e+16}'),
        (0.0001, '{"x":0.0001}'),
        (2**70, '{"x":1180591620717411303424}'),
        ('\x1f\u2028é\\"', '{"x":"\\u001f\u2028é\\\\\\""}'),
    ],
)
def test_the_fast_canonical_json_writes_what_the_standard_encoder_writes(
    value: Any, text: str
) -> None:
    assert canonical_json({"x": value}, finite=True) == text
    assert canonical_json({"x": value}) == text


def test_a_non_finite_number_is_still_refused_when_the_caller_does_not_vouch_for_it() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical_json({"x": float("nan")})
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical_json({"x": float("inf")})


def test_what_neither_encoder_can_write_is_refused_by_the_standard_ones_error() -> None:
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        canonical_json({"x": object()}, finite=True)


def test_a_decision_refuses_a_non_finite_float_so_its_canonical_json_may_assume_none() -> None:
    with pytest.raises(ValidationError, match="finite number"):
        JudgeRecord(latency_ms=float("nan"))
    with pytest.raises(ValidationError, match="finite number"):
        ClaimCheck(field="order.total", value=float("inf"), rule="discretion.claim.grounded")


class _Moment(datetime):
    """A datetime subclass, as some clients' libraries hand facts over."""


def test_a_snapshots_json_is_the_same_by_exact_type_and_by_subclass() -> None:
    # Money and timestamps are converted by their exact type; anything else (a subclass, a
    # decimal, a duration, a list) through `_json`'s tests. Both must give one JSON form.
    at = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    snapshot = Snapshot.of(
        {
            "b.money": Money.of("12.5", "USD"),
            "a.when": at,
            "c.subclass": _Moment.fromisoformat(at.isoformat()),
            "d.decimal": Decimal("1.50"),
            "e.duration": timedelta(hours=2),
            "f.tags": ("x", "y"),
            "g.plain": 3,
            "h.none": None,
        }
    )
    assert list(snapshot.data) == sorted(snapshot.data)
    assert dict(snapshot.data) == {
        "a.when": "2026-11-20T10:00:00.123456+05:30",
        "b.money": {"amount": "12.50", "currency": "USD"},
        "c.subclass": "2026-11-20T10:00:00.123456+05:30",
        "d.decimal": "1.50",
        "e.duration": 7200.0,
        "f.tags": ["x", "y"],
        "g.plain": 3,
        "h.none": None,
    }
    assert snapshot.canonical == canonical_json(dict(snapshot.data))


def test_a_routes_approval_is_bound_by_the_digest_its_row_reads_back_to(
    make_guard: Callable[..., Guard], store: SqlStore
) -> None:
    """The approval a route opens is digested from the state the writer built (the fast,
    finite path) and its proposal column reuses the record's JSON; both must be exactly what
    the row, read back from the table, digests to and what the record holds."""
    decision = make_guard().decide(refund("80.00"))
    assert decision.outcome.value == "route"
    [entry] = store.history(decision.id)
    body = json.loads(entry.body)
    [(table, key, bound)] = body["binds"]
    assert (table, key) == ("approvals", decision.id)
    with store.engine.connect() as connection:
        row = connection.execute(select(approvals).where(approvals.c.id == decision.id)).one()
    state = dict(row._mapping)
    assert state["proposal"] == canonical_json(body["proposal"])
    assert row_digest("approvals", state) == bound
    assert row_digest("approvals", state, finite=True) == bound


def test_bound_tables_name_their_columns_as_plain_text() -> None:
    """SQLAlchemy's `quoted_name` is a `str` subclass orjson refuses as a key: a row's state
    keyed by it went to the standard encoder on every route."""
    for columns in _STATE.values():
        assert all(type(name) is str for name in columns)
