"""`Money.of` and `Money.read` check exactly what validating Money's JSON form checks.

They build money without pydantic's machinery on the hot path (every fact and amount read), so
they are held here to the model's own validation over many inputs, valid and not.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from discretion.errors import ProposalError
from discretion.money import Money

AMOUNTS = st.one_of(
    st.from_regex(r"[0-9]{1,20}(\.[0-9]{0,5})?", fullmatch=True),
    st.sampled_from(["-0.00", "+1.00", " 1.00", "1_000", "٦٤.٩٩", "NaN", "inf", "1e3", "", "."]),
    st.integers(min_value=-5, max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
CURRENCIES = st.one_of(
    st.sampled_from(["USD", "usd", "JPY", "KWD", "EUR", "XXX", "", "US D"]),
    st.integers(),
    st.none(),
)


def _validated(amount: Any, currency: Any) -> Money | str:
    try:
        return Money.model_validate({"amount": amount, "currency": currency})
    except ProposalError as exc:
        return f"ProposalError: {exc} [{exc.field}]"


def _fast(amount: Any, currency: Any) -> Money | str:
    try:
        return Money.of(amount, currency)
    except ProposalError as exc:
        return f"ProposalError: {exc} [{exc.field}]"


@given(AMOUNTS, CURRENCIES)
def test_of_checks_what_validation_checks(amount: Any, currency: Any) -> None:
    fast, validated = _fast(amount, currency), _validated(amount, currency)
    assert fast == validated
    if isinstance(fast, Money):
        assert isinstance(validated, Money)
        assert str(fast.amount) == str(validated.amount)  # the same quantized representation
        assert fast.model_dump() == validated.model_dump()
        assert fast.model_fields_set == validated.model_fields_set
        assert hash(fast) == hash(validated)


@given(AMOUNTS, CURRENCIES)
def test_read_of_json_form_matches_validation(amount: Any, currency: Any) -> None:
    assert _fast(amount, currency) == (_read({"amount": amount, "currency": currency}))


def _read(value: Any) -> Money | str:
    try:
        return Money.read(value)
    except ProposalError as exc:
        return f"ProposalError: {exc} [{exc.field}]"


def test_read_refuses_other_shapes_as_validation_does() -> None:
    money = Money.of("12.50", "USD")
    assert Money.read(money) is money
    for bad in ({"amount": "1.00", "currency": "USD", "extra": 1}, {"amount": "1.00"}, "1.00", 3):
        with pytest.raises(ValidationError):
            Money.read(bad)


def test_from_minor_is_exact_money() -> None:
    made = Money.from_minor(6499, "USD")
    assert made == Money.of("64.99", "USD")
    assert made.amount == Decimal("64.99")
    assert str(made.amount) == "64.99"
    assert Money.from_minor(7, "JPY") == Money.of(7, "JPY")
