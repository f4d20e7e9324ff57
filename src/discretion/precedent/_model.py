"""Precedent records and the spec an approver writes when setting one."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from discretion.money import Money

__all__ = ["Precedent", "PrecedentSpec", "Range", "ScopeValue"]

_MODEL = ConfigDict(frozen=True, extra="forbid")


class Range(BaseModel):
    """An inclusive range a numeric, money or time fact must fall in."""

    model_config = _MODEL

    min: Decimal | datetime | None = None
    """The lowest value that matches; no lower bound when absent."""
    max: Decimal | datetime | None = None
    """The highest value that matches; no upper bound when absent."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.min is None and self.max is None:
            raise ValueError("a range needs min, max or both")
        if self.min is not None and self.max is not None:
            if type(self.min) is not type(self.max):
                raise ValueError("min and max must both be numbers or both be times")
            if self.min > self.max:  # type: ignore[operator]
                raise ValueError(f"min {self.min} is above max {self.max}")
        for bound in (self.min, self.max):
            if isinstance(bound, datetime) and bound.tzinfo is None:
                raise ValueError("time bounds need a timezone")
            if isinstance(bound, Decimal) and not bound.is_finite():
                raise ValueError("bounds must be finite numbers")
        return self


ScopeValue = Annotated[str, StringConstraints(max_length=200)] | bool | int | Range
"""What a scope key must be: an exact value (a string, an int, a bool; for a list field, a member
it must contain) or a `Range`."""


class PrecedentSpec(BaseModel):
    """What an approver fixes when making a granted exception citable.

    Example:
        ```python
        PrecedentSpec(
            scope={"shipment.carrier": "parcelco", "customer.region": "eu-west"},
            max_amount=Money.of("80.00", "USD"),
            expires_at=now + timedelta(days=30),
            citations=10,
            note="ParcelCo lost a whole trailer in the Rotterdam depot fire",
        )
        ```
    """

    model_config = _MODEL

    scope: Annotated[dict[str, ScopeValue], Field(min_length=1, max_length=20)]
    """Context fields that must match a new case's facts (never its claims)."""
    max_amount: Money | None = None
    """The largest amount the precedent can justify."""
    max_ratio: Annotated[Decimal, Field(gt=0, le=10)] | None = None
    """The largest amount as a ratio of the pack's `ratio_of` money field (1 = all of it)."""
    expires_at: AwareDatetime
    """When it stops being citable; no later than the pack's `max_expiry` allows."""
    citations: Annotated[int, Field(ge=1, le=1_000_000)]
    """How many decisions may rely on it."""
    learnable: bool = True
    """False for one-off goodwill: never citable, never exported for learning."""
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    """Why it was set, for the people who read it later."""

    @field_validator("max_ratio")
    @classmethod
    def _finite(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and not value.is_finite():
            raise ValueError("max_ratio must be a finite number")
        return value

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.max_amount is None and self.max_ratio is None:
            raise ValueError("a precedent needs bounds: max_amount, max_ratio or both")
        return self


class Precedent(BaseModel):
    """A granted exception an approver made citable, with what has happened to it since."""

    model_config = _MODEL

    id: str
    """Its id, such as `prec_...`."""
    source_decision_id: str
    """The decision that granted the exception it was set from."""
    action: str
    """The action it covers."""
    reason: str
    """The exception reason it covers."""
    grantor_id: str
    """Who set it."""
    grantor_role: str
    """The role they set it under."""
    grantor_limit: Money
    """The grantor role's exception limit for the action when it was set: the most it can cover."""
    policy_version: str
    """The pack version it was set under."""
    scope: dict[str, Any]
    """The spec's scope, with ranges as `{"min": ..., "max": ...}`."""
    max_amount: Money | None
    """The spec's fixed bound."""
    max_ratio: Decimal | None
    """The spec's ratio bound."""
    ratio_of: str | None
    """The money field `max_ratio` applies to."""
    expires_at: AwareDatetime
    """When it stops being citable."""
    citations: int
    """The citation cap."""
    uses: int = 0
    """Decisions that relied on it so far."""
    learnable: bool
    """False for a one-off: never citable, never exported for learning."""
    note: str
    """Why it was set."""
    created_at: AwareDatetime
    """When it was set."""
    revoked_at: AwareDatetime | None = None
    """When it was revoked, if it was."""
    revoked_by: str | None = None
    """Who revoked it."""
    revoked_reason: str | None = None
    """Why it was revoked."""

    @property
    def citations_left(self) -> int:
        """How many more decisions may rely on it."""
        return max(self.citations - self.uses, 0)
