"""Business days: `businessDays(from, to)` on the pack's weekend, holidays and time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from discretion import Guard, Outcome, load_pack
from discretion.context import StaticContextProvider
from discretion.errors import PolicyError
from discretion.policy._business import BusinessDays

PACK = """
pack: returns
currency: USD
context:
  order.delivered_at: timestamp
roles:
  - id: ai_agent
    ai: true
    authority:
      refund: {standard: "100.00"}
  - id: tier1
    authority:
      refund: {standard: "1000.00"}
actions:
  refund:
    tools:
      - name: issue_refund
        amount: amount
    reads: [order.delivered_at]
    standard:
      - id: within-4-business-days
        when: businessDays(order.delivered_at, now) <= 4
"""

# A Thursday, 23:30 in UTC: already Friday in Berlin.
DELIVERED = "2026-12-03T23:30:00+00:00"


def decide(tmp_path: Path, now: str, text: str = PACK, delivered: str = DELIVERED) -> Any:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    context = StaticContextProvider({"order.delivered_at": delivered})
    guard = Guard(load_pack(path), context=context, clock=lambda: datetime.fromisoformat(now))
    proposal = {
        "actor": {"id": "bot", "role": "ai_agent"},
        "tool": {"name": "issue_refund", "arguments": {"amount": "10.00"}},
    }
    return guard.preview(proposal)


@pytest.mark.parametrize(
    ("now", "outcome"),
    [
        # Friday, Monday, Tuesday, Wednesday: four business days; the weekend is not counted.
        ("2026-12-09T18:00:00+00:00", Outcome.ALLOW),
        # Thursday is the fifth.
        ("2026-12-10T09:00:00+00:00", Outcome.DENY),
    ],
)
def test_a_rule_counts_business_days_not_calendar_days(
    tmp_path: Path, now: str, outcome: Outcome
) -> None:
    assert decide(tmp_path, now).outcome is outcome


def test_days_are_the_pack_s_time_zone_s(tmp_path: Path) -> None:
    berlin = PACK.replace("currency: USD\n", "currency: USD\ntimezone: Europe/Berlin\n")
    # Delivered on Friday in Berlin: Monday to Thursday are four business days.
    decision = decide(tmp_path, "2026-12-10T09:00:00+00:00", berlin)
    assert (decision.outcome, decision.rules) == (Outcome.ALLOW, ["within-4-business-days"])


def test_holidays_and_another_weekend_are_not_business_days(tmp_path: Path) -> None:
    # A Friday-Saturday weekend; Sunday 6 December a holiday, written as a YAML date.
    text = PACK.replace(
        "currency: USD\n",
        "currency: USD\nbusiness_days:\n  weekend: [friday, saturday]\n"
        "  holidays: [2026-12-06, '2026-12-31']\n",
    )
    # From Thursday: Monday 7 to Thursday 10 are the four (Friday, Saturday, the holiday out).
    assert decide(tmp_path, "2026-12-10T09:00:00+00:00", text).outcome is Outcome.ALLOW
    assert decide(tmp_path, "2026-12-13T09:00:00+00:00", text).outcome is Outcome.DENY


def test_a_count_backwards_is_negative(tmp_path: Path) -> None:
    text = PACK.replace(
        "businessDays(order.delivered_at, now) <= 4", "businessDays(order.delivered_at, now) < 0"
    )
    # Delivery dated after now (a carrier's estimate): Friday 4th back to Thursday 3rd is -1.
    decision = decide(tmp_path, "2026-12-03T09:00:00+00:00", text, "2026-12-04T09:00:00+00:00")
    assert decision.outcome is Outcome.ALLOW


@pytest.mark.parametrize(
    ("old", "new", "message", "line"),
    [
        (
            "businessDays(order.delivered_at, now) <= 4",
            "businessDays(order.delivered_at, 4) <= 4",
            "businessDays",
            22,
        ),
        (
            "currency: USD\n",
            "currency: USD\nbusiness_days:\n  holidays: [2026-13-01]\n",
            "business_days.holidays",
            5,
        ),
        (
            "currency: USD\n",
            "currency: USD\nbusiness_days:\n  weekend: [monday, tuesday, wednesday, thursday,"
            " friday, saturday, sunday]\n",
            "leaves no business days",
            5,
        ),
        (
            "currency: USD\n",
            "currency: USD\nbusiness_days:\n  weekend: [caturday]\n",
            "business_days.weekend",
            5,
        ),
    ],
)
def test_a_calendar_or_call_that_cannot_count_is_refused_with_its_line(
    tmp_path: Path, old: str, new: str, message: str, line: int
) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK.replace(old, new), encoding="utf-8")
    with pytest.raises(PolicyError, match=message) as raised:
        load_pack(path)
    assert raised.value.line == line


def test_a_date_elsewhere_in_a_pack_is_the_text_written(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK.replace("pack: returns", "pack: returns\ndescription: 2026-12-01"))
    assert load_pack(path).version.startswith("sha256:")


def _counted(calendar: BusinessDays, start: date, end: date) -> int:
    """Day by day: the business days after `start` up to and with `end`."""
    sign, (low, high) = (1, (start, end)) if start <= end else (-1, (end, start))
    days = (low + timedelta(days=n) for n in range(1, (high - low).days + 1))
    return sign * sum(
        1 for d in days if d.weekday() not in calendar.weekend and d not in calendar.holidays
    )


@given(
    start=st.dates(date(2020, 1, 1), date(2030, 12, 31)),
    end=st.dates(date(2020, 1, 1), date(2030, 12, 31)),
    weekend=st.frozensets(st.integers(0, 6), max_size=6),
    holidays=st.lists(st.dates(date(2020, 1, 1), date(2030, 12, 31)), max_size=30),
)
def test_the_count_is_the_day_by_day_count(
    start: date, end: date, weekend: frozenset[int], holidays: list[date]
) -> None:
    calendar = BusinessDays.of(zone=UTC, weekend=weekend, holidays=tuple(holidays))
    at = datetime(2000, 1, 1, 12, tzinfo=UTC)
    start_at = at.replace(year=start.year, month=start.month, day=start.day)
    end_at = at.replace(year=end.year, month=end.month, day=end.day)
    assert calendar.between(start_at, end_at) == _counted(calendar, start, end)


MONTHS = PACK.replace(
    "      - id: within-4-business-days\n        when: businessDays(order.delivered_at, now) <= 4",
    "      - id: within-6-calendar-months\n        when: now < addMonths(order.delivered_at, 6)",
)


@pytest.mark.parametrize(
    ("delivered", "now", "outcome"),
    [
        # Delivered 31 August 2026 at 10:00 in Berlin: six months on is 28 February 2027.
        ("2026-08-31T08:00:00+00:00", "2027-02-28T08:59:59+00:00", Outcome.ALLOW),
        ("2026-08-31T08:00:00+00:00", "2027-02-28T09:00:00+00:00", Outcome.DENY),
        # Across the change to winter time the local hour is kept: 10:00 in Berlin.
        ("2026-06-15T08:00:00+00:00", "2026-12-15T08:59:59+00:00", Outcome.ALLOW),
        ("2026-06-15T08:00:00+00:00", "2026-12-15T09:00:00+00:00", Outcome.DENY),
    ],
)
def test_add_months_counts_calendar_months_in_the_pack_s_time_zone(
    tmp_path: Path, delivered: str, now: str, outcome: Outcome
) -> None:
    berlin = MONTHS.replace("currency: USD", "currency: USD\ntimezone: Europe/Berlin")
    assert decide(tmp_path, now, berlin, delivered).outcome is outcome


def test_add_months_keeps_the_last_day_a_shorter_month_has() -> None:
    calendar = BusinessDays()
    moment = datetime(2028, 1, 31, 12, 0, tzinfo=UTC)
    assert calendar.add_months(moment, 1) == datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    assert calendar.add_months(moment, -2) == datetime(2027, 11, 30, 12, 0, tzinfo=UTC)
    assert calendar.add_months(moment, 12) == datetime(2029, 1, 31, 12, 0, tzinfo=UTC)
