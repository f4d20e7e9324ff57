"""Property tests: what must hold for every proposal, not just the ones we thought of."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, func, select

from conftest import NOW, SHOP_PACK, good_facts, refund
from discretion import Guard, Outcome, ProposalError, SqlStore, load_pack
from discretion.context import StaticContextProvider
from discretion.store._schema import decisions, ledger

PACK = load_pack(SHOP_PACK)
ROLES = [r.id for r in PACK.roles]
# The most any role may approve for a refund, standard or exception, in cents.
CEILING = max(
    max(a.standard_minor, a.exception_minor)
    for r in PACK.roles
    for action, a in r.authority.items()
    if action == "refund"
)

facts_strategy = st.fixed_dictionaries(
    {
        "customer.fraud_flag": st.booleans(),
        "shipment.status": st.sampled_from(["delivered", "lost", "in_transit", "damaged"]),
        "incident.active": st.booleans(),
        "order.delivered_at": st.one_of(st.none(), st.just(NOW.isoformat())),
        # Orders large enough that "above the order total" is not what stops the amount.
        "order.total": st.integers(CEILING, 10 * CEILING).map(
            lambda c: {"amount": str(Decimal(c) / 100), "currency": "USD"}
        ),
    }
)


def guard_for(facts: dict) -> Guard:
    return Guard(
        PACK,
        store=SqlStore("sqlite://"),
        context=StaticContextProvider(good_facts(**facts)),
        clock=lambda: NOW,
    )


def rows_in(guard: Guard, table: Table) -> int:
    with guard.store._reading(table.name) as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    facts=facts_strategy,
    cents=st.integers(CEILING + 1, 100 * CEILING),
    role=st.sampled_from(ROLES),
    reason=st.sampled_from([None, "carrier-lost", "outage-goodwill", "manager-discretion", "x"]),
)
def test_nothing_above_every_roles_limit_is_ever_allowed(facts, cents, role, reason):
    amount = str(Decimal(cents) / 100)
    decision = guard_for(facts).decide(refund(amount, role=role, actor="a", reason=reason))
    assert decision.outcome in (Outcome.ROUTE, Outcome.DENY)
    if decision.outcome is Outcome.ROUTE:
        # Routing goes to someone who could grant it, or a budget owner: never an AI role.
        target = PACK.role(decision.required_role or "")
        assert target is not None
        assert not target.is_ai


malformed = st.one_of(
    st.sampled_from(["NaN", "nan", "sNaN", "Infinity", "-Infinity", "", "1e", "1,00", "$5"]),
    st.floats(allow_nan=True, allow_infinity=True).filter(
        lambda f: f != f or abs(f) == float("inf")
    ),
    st.decimals(max_value=Decimal("-0.01"), allow_nan=False, places=2).map(str),
    st.integers(max_value=-1),
    st.decimals(min_value=0, max_value=10**6, places=5, allow_nan=False)
    .filter(lambda d: d != d.quantize(Decimal("0.01")))
    .map(str),
    st.text(alphabet="abcxyz ", min_size=1, max_size=8),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(amount=malformed)
def test_malformed_amounts_raise_proposal_error(amount):
    guard = guard_for({})
    with pytest.raises(ProposalError):
        guard.decide(refund(amount))
    assert rows_in(guard, decisions) == 0


@settings(max_examples=60, deadline=None)
@given(
    cents=st.integers(1, 20000),  # a zero is refused before it is decided
    role=st.sampled_from(ROLES),
    repeats=st.integers(2, 4),
    key=st.text(alphabet="abcdef0123456789-", min_size=1, max_size=30),
)
def test_same_proposal_with_one_key_is_recorded_once(cents, role, repeats, key):
    guard = guard_for({"shipment.status": "lost"})
    proposal = refund(str(Decimal(cents) / 100), role=role, actor="a", key=key)
    answers = {guard.decide(proposal).id for _ in range(repeats)}
    assert len(answers) == 1
    assert rows_in(guard, decisions) == 1
    assert rows_in(guard, ledger) == 1
