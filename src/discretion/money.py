"""Exact money: a `Decimal` amount with an ISO 4217 currency, or a unit a pack counts instead.

Invariant 7 (money is exact): amounts are never floats. NaN, infinities, negatives, unknown
currencies and more decimal places than the currency has are errors. Inside CEL, money is an
integer count of minor units (cents), so a limit compares exactly to the cent.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from discretion.errors import ProposalError

__all__ = [
    "AMOUNT_GRAMMAR",
    "CURRENCY_EXPONENTS",
    "EXPONENTS",
    "UNIT_CODE",
    "Money",
    "SignedMoney",
    "parse_amount",
    "parse_decimal",
    "register_unit",
    "scaled",
]

# ISO 4217 minor units of the currencies in common use. A currency outside this table is an error
# rather than a guess: a wrong exponent would scale every limit by a power of ten.
CURRENCY_EXPONENTS: dict[str, int] = {
    "AED": 2, "ARS": 2, "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0,
    "CNY": 2, "COP": 2, "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2,
    "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0, "KWD": 3, "MXN": 2,
    "MYR": 2, "NOK": 2, "NZD": 2, "OMR": 3, "PEN": 2, "PHP": 2, "PKR": 2, "PLN": 2, "QAR": 2,
    "RON": 2, "RUB": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2, "TWD": 2,
    "UAH": 2, "USD": 2, "VND": 0, "ZAR": 2,
}  # fmt: skip


EXPONENTS: dict[str, int] = dict(CURRENCY_EXPONENTS)
"""Places of every code an amount may be in: the ISO 4217 currencies above, and the units packs
declare for actions that count something other than money (`MILES`, `DAYS`; `register_unit`)."""

UNIT_CODE = re.compile(r"[A-Z][A-Z0-9_]{1,23}")
"""How a unit is named: upper-case letters, digits and underscores, at most 24, such as `MILES`."""

_MAX_DIGITS = 18

_QUANTA = {exponent: Decimal(1).scaleb(-exponent) for exponent in range(10)}
"""The smallest unit of each exponent (0 to 9 places), to quantize by."""


def register_unit(code: str, places: int) -> None:
    """Let amounts be counted in the unit `code` with `places` decimal places.

    A unit is what an action that moves no money counts (miles, days, seats): amounts in it are
    exact as money is, and never added to, converted into or compared with any currency. The
    same code may be registered again with the same places (two packs, or one loaded twice).

    Raises:
        ValueError: `code` is an ISO 4217 currency, not written as `UNIT_CODE`, or already a
            unit of other places.
    """
    if code in CURRENCY_EXPONENTS:
        raise ValueError(f"{code!r} is an ISO 4217 currency; name the unit otherwise")
    if UNIT_CODE.fullmatch(code) is None:
        raise ValueError(
            f"{code!r} is not a unit name: use 2 to 24 upper-case letters, digits and"
            " underscores, starting with a letter (MILES, DAYS)"
        )
    if not 0 <= places <= 9:
        raise ValueError(f"unit {code!r} has {places} places; give 0 to 9")
    known = EXPONENTS.get(code)
    if known is not None and known != places:
        raise ValueError(
            f"unit {code!r} is already counted with {known} places by a pack loaded in this"
            f" process, not {places}; one unit name has one number of places"
        )
    EXPONENTS[code] = places


AMOUNT_GRAMMAR = re.compile(r"[0-9]+(?:\.[0-9]+)?")
"""The one way an amount is written as text: ASCII digits, optionally a point and more digits.

No sign, no exponent, no spaces, no digit separators, no other script's digits: `Decimal` reads
`"+64.99"`, `"1_000"`, `" 64.99"` and `"٦٤.٩٩"` too, and a tool given the original text may read
it otherwise than the amount that was governed.
"""


def _not_an_amount(value: str, field: str) -> ProposalError:
    """Why `value` is not written as an amount, as specifically as can be said."""
    if value.strip().lower().lstrip("+-") in ("nan", "snan", "inf", "infinity"):
        return ProposalError(f"{field}: {value!r} is not a finite amount", field=field)
    if value.startswith("-") and AMOUNT_GRAMMAR.fullmatch(value[1:]):
        return ProposalError(
            f"{field}: {value!r} is negative; amounts are never below zero", field=field
        )
    return ProposalError(
        f"{field}: {value[:64]!r} is not a decimal amount; send ASCII digits, with digits on"
        " both sides of a decimal point if it has one, no sign, exponent, spaces or separators,"
        ' e.g. "80.00" or "80"',
        field=field,
    )


def parse_amount(value: object, *, field: str = "amount") -> Decimal:
    """Turn a JSON amount (a string in `AMOUNT_GRAMMAR`, an int or a float) into a Decimal.

    The result is finite and not negative (negative zero included). Floats are read through
    their shortest repr (`80.1` is `Decimal("80.1")`), never through their binary value.
    Booleans are refused: `True` is not one unit of money.
    """
    if isinstance(value, bool):
        raise ProposalError(
            f"{field}: {value!r} is not an amount; send a decimal string", field=field
        )
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ProposalError(f"{field}: {value!r} is not a finite amount", field=field)
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        if AMOUNT_GRAMMAR.fullmatch(value) is None:
            raise _not_an_amount(value, field)
        amount = Decimal(value)
    else:
        raise ProposalError(
            f"{field}: {type(value).__name__} is not an amount; send a decimal string", field=field
        )
    if not amount.is_finite():
        raise ProposalError(f"{field}: {value!r} is not a finite amount", field=field)
    if amount < 0 or amount.is_signed():
        raise ProposalError(
            f"{field}: {value!r} is negative; amounts are never below zero", field=field
        )
    if amount.adjusted() >= _MAX_DIGITS:
        # Beyond this no currency's quantize is exact (1e9999 raised InvalidOperation there).
        raise ProposalError(
            f"{field}: {value!r} is too large; amounts have at most {_MAX_DIGITS} digits before"
            " the decimal point",
            field=field,
        )
    return amount


_MAX_MINOR_DIGITS = 18
"""Digits an amount may have in minor units: the ledger keeps them in a signed 64-bit int."""


def _fits(amount: Decimal, code: str) -> None:
    """Refuse an amount whose minor units would not fit the ledger (`ProposalError`)."""
    if amount and amount.adjusted() + EXPONENTS[code] >= _MAX_MINOR_DIGITS:
        raise ProposalError(
            f"amount: {amount} {code} is too large; in minor units an amount has at most"
            f" {_MAX_MINOR_DIGITS} digits",
            field="amount",
        )


def _currency(code: object, *, field: str) -> str:
    if not isinstance(code, str) or code.upper() not in EXPONENTS:
        raise ProposalError(
            f"{field}: {code!r} is not a supported ISO 4217 currency code (e.g. 'USD', 'EUR')"
            " nor a unit a loaded pack counts in",
            field=field,
        )
    return code.upper()


_set = object.__setattr__


def _made(cls: type[Money], amount: Decimal, currency: str) -> Money:
    """A `Money` of an amount and currency already checked, as `model_construct` makes it.

    The same attributes `model_construct` sets, without its walk over the model's fields,
    which costs more than the checks themselves on the hot path.
    """
    money = object.__new__(cls)
    _set(money, "__dict__", {"amount": amount, "currency": currency})
    _set(money, "__pydantic_fields_set__", {"amount", "currency"})
    _set(money, "__pydantic_extra__", None)
    _set(money, "__pydantic_private__", None)
    return money


class Money(BaseModel):
    """An exact amount of one currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Decimal
    """The amount, finite, not negative, with no more places than the currency has."""
    currency: str
    """The ISO 4217 code, upper case."""

    @field_validator("amount", mode="before")
    @classmethod
    def _parse_amount(cls, value: object) -> Decimal:
        return parse_amount(value)

    @field_validator("currency", mode="before")
    @classmethod
    def _parse_currency(cls, value: object) -> str:
        return _currency(value, field="currency")

    @model_validator(mode="after")
    def _check_places(self) -> Self:
        exponent = EXPONENTS[self.currency]
        _fits(self.amount, self.currency)
        if self.amount != self.amount.quantize(Decimal(1).scaleb(-exponent)):
            raise ProposalError(
                f"amount: {self.amount} has more decimal places than {self.currency} allows"
                f" ({exponent})",
                field="amount",
            )
        # Normalise the representation so equal amounts hash and serialise identically.
        object.__setattr__(self, "amount", self.amount.quantize(Decimal(1).scaleb(-exponent)))
        return self

    @classmethod
    def of(cls, amount: object, currency: object) -> Money:
        """Build Money from a JSON-ish amount, raising `ProposalError` on anything inexact.

        The same checks, in the same order, as validating `{"amount": ..., "currency": ...}`
        (the amount, then the currency, then its places), without pydantic's machinery, which
        costs several times the checks themselves on every fact and argument read.
        """
        value = parse_amount(amount)
        code = _currency(currency, field="currency")
        quantum = _QUANTA[EXPONENTS[code]]
        _fits(value, code)
        exact = value.quantize(quantum)
        if value != exact:
            raise ProposalError(
                f"amount: {value} has more decimal places than {code} allows ({EXPONENTS[code]})",
                field="amount",
            )
        return _made(cls, exact, code)

    @classmethod
    def read(cls, value: object) -> Money:
        """Money from its JSON form (`{"amount": "12.50", "currency": "USD"}`) or a `Money`.

        Raises:
            ProposalError: an amount or currency that is not exact money.
            pydantic.ValidationError: anything else that is not money's JSON form.
        """
        if type(value) is dict and len(value) == 2 and "amount" in value and "currency" in value:
            return cls.of(value["amount"], value["currency"])
        return value if isinstance(value, Money) else cls.model_validate(value)

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> Money:
        """Build Money from an integer count of minor units (cents for USD)."""
        code = _currency(currency, field="currency")
        if type(minor) is not int or minor < 0:
            # Anything but a count of minor units goes through the full checks (and fails).
            return cls(amount=Decimal(minor).scaleb(-EXPONENTS[code]), currency=code)
        # A whole number of minor units is exact by construction: the checks that parsing needs
        # cost more than a ledger total's whole read.
        return _made(cls, Decimal(minor).scaleb(-EXPONENTS[code]), code)

    @property
    def minor(self) -> int:
        """The amount as an integer count of minor units; this is what CEL sees."""
        return int(self.amount.scaleb(EXPONENTS[self.currency]))

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ProposalError(
                f"currency mismatch: {self.currency} and {other.currency} cannot be combined",
                field="currency",
            )

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __str__(self) -> str:
        return f"{self.currency} {self.amount}"

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form: the amount as a string, never a float."""
        return {"amount": str(self.amount), "currency": self.currency}


def _split_sign(value: object) -> tuple[bool, object]:
    """Whether a JSON number is below zero, and its magnitude, for the unsigned readers."""
    if isinstance(value, str) and value.startswith("-"):
        return True, value[1:]
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool) and value < 0:
        return True, -value
    return False, value


def parse_decimal(value: object, places: int, *, field: str) -> Decimal:
    """An exact decimal number (either sign) with at most `places` decimal places.

    It is written as an amount is (`AMOUNT_GRAMMAR`), with an optional leading minus. More
    places than declared is an error rather than a rounding: `1.25` is not a one-place number.

    Raises:
        ProposalError: naming `field`.
    """
    negative, magnitude = _split_sign(value)
    number = parse_amount(magnitude, field=field)
    step = Decimal(1).scaleb(-places)
    if number != number.quantize(step):
        raise ProposalError(
            f"{field}: {value!r} has more than {places} decimal places", field=field
        )
    number = number.quantize(step)
    return -number if negative and number else number


def scaled(number: Decimal) -> int:
    """A decimal read by `parse_decimal` as CEL sees it: an int of its declared places.

    `parse_decimal` quantizes to the declared places, so the exponent says how many there are.
    """
    return int(number.scaleb(-int(number.as_tuple().exponent)))


@dataclass(frozen=True, slots=True)
class SignedMoney:
    """An exact amount of one currency that may be below zero, such as a price difference.

    Money proper is never negative (invariant 7); a difference between two amounts may be. It is
    read, scaled and recorded as money is: minor units in CEL, the amount as a string in JSON.
    """

    amount: Decimal
    currency: str

    @classmethod
    def of(cls, value: object, currency: str, *, field: str = "amount") -> SignedMoney:
        """Read a JSON amount with an optional minus sign, or a `{amount, currency}` object.

        Raises:
            ProposalError: not exact money in a supported currency.
        """
        if isinstance(value, SignedMoney):
            return value
        if isinstance(value, Money):
            return cls(amount=value.amount, currency=value.currency)
        raw = value
        if isinstance(value, dict):
            if set(value) != {"amount", "currency"}:
                raise ProposalError(
                    f"{field}: money is {{'amount': '-12.50', 'currency': 'USD'}}", field=field
                )
            raw, currency = value["amount"], _currency(value["currency"], field=field)
        negative, magnitude = _split_sign(raw)
        money = Money(amount=magnitude, currency=currency)
        amount = -money.amount if negative and money.amount else money.amount
        return cls(amount=amount, currency=money.currency)

    @property
    def minor(self) -> int:
        """The amount as an integer count of minor units, below zero for a negative amount."""
        return int(self.amount.scaleb(EXPONENTS[self.currency]))

    def __str__(self) -> str:
        return f"{self.currency} {self.amount}"

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form: the amount as a string, never a float."""
        return {"amount": str(self.amount), "currency": self.currency}
