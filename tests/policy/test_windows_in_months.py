"""Rolling windows of whole months or years: "once in any 12 months", leap days and all."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import FakeClock
from discretion import Guard, Outcome, PolicyError, SqlStore, load_pack
from discretion.context import StaticContextProvider

PACK = """
pack: waivers
currency: USD
timezone: America/Chicago
entities:
  customer: {}
totals:
  customer.waivers_12m: {type: int, actions: [waive], per: customer, window: WINDOW}
roles:
  - id: ai_agent
    ai: true
    authority:
      waive: {standard: "50.00"}
  - id: supervisor
    authority:
      waive: {standard: "500.00"}
actions:
  waive:
    tools:
      - {name: waive_late_fee, amount: amount, customer: customer_id}
    reads: [customer.waivers_12m]
    standard:
      - id: once-a-year
        when: customer.waivers_12m == 0
        granted_by: [ai_agent]
      - id: supervisor-again
        granted_by: [supervisor]
"""


def guard(tmp_path: Path, store: SqlStore, clock: FakeClock, window: str = "12 months") -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK.replace("WINDOW", window), encoding="utf-8")
    context = StaticContextProvider({"customer.id": "c-1"})
    return Guard(load_pack(path), store=store, context=context, clock=clock)


def waive(key: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent", "is_ai": True},
        "tool": {"name": "waive_late_fee", "arguments": {"amount": "10.00", "customer_id": "c-1"}},
        "idempotency_key": key,
    }


@pytest.mark.parametrize(
    ("granted", "asked", "again"),
    [
        # A leap day between: 365 days later is still within 12 months.
        ("2027-03-01T10:00:00-06:00", "2028-02-29T10:00:00-06:00", Outcome.ROUTE),
        # The same day and hour 12 months on: the year has passed.
        ("2027-06-15T10:00:00-05:00", "2028-06-15T10:00:00-05:00", Outcome.ALLOW),
        ("2027-06-15T10:00:00-05:00", "2028-06-15T09:59:00-05:00", Outcome.ROUTE),
        # From the 31st: the month with fewer days ends on its last day.
        ("2027-03-31T10:00:00-05:00", "2028-02-29T10:00:00-06:00", Outcome.ROUTE),
    ],
)
def test_twelve_months_are_counted_on_the_calendar(tmp_path, store, granted, asked, again):
    clock = FakeClock(datetime.fromisoformat(granted).astimezone(UTC))
    g = guard(tmp_path, store, clock)
    assert g.decide(waive("a")).outcome is Outcome.ALLOW
    clock.now = datetime.fromisoformat(asked).astimezone(UTC)
    decision = g.decide(waive("b"))
    assert decision.outcome is again
    if again is Outcome.ROUTE:
        assert decision.required_role == "supervisor"


def test_a_year_is_twelve_months(tmp_path, store):
    clock = FakeClock(datetime(2027, 3, 1, 16, tzinfo=UTC))
    g = guard(tmp_path, store, clock, window="1 year")
    g.decide(waive("a"))
    clock.now = datetime(2028, 2, 29, 16, tzinfo=UTC)
    assert g.decide(waive("b")).outcome is Outcome.ROUTE


@pytest.mark.parametrize("window", ["0 months", "12 mo", "12m onths"])
def test_a_window_of_no_months_or_a_misspelt_unit_is_refused(tmp_path, store, window):
    with pytest.raises(PolicyError, match="window"):
        guard(tmp_path, store, FakeClock(datetime(2027, 1, 1, tzinfo=UTC)), window=window)
