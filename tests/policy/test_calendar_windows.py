"""Calendar windows: a total, a budget or cumulative authority counting this day, month, year."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from conftest import FakeClock
from discretion import Actor, Guard, Outcome, SqlStore, load_pack
from discretion.context import StaticContextProvider
from discretion.errors import PolicyError
from discretion.policy._model import Calendar

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("unit", "now", "begun"),
    [
        # 2026-03-29 is the day Berlin moves to summer time: its midnight is still +01:00.
        ("day", "2026-03-29T12:00:00+00:00", "2026-03-28T23:00:00+00:00"),
        # Sunday 1 November: the week began on Monday 26 October, in summer time no longer.
        ("week", "2026-11-01T10:00:00+00:00", "2026-10-25T23:00:00+00:00"),
        # 00:30 on 1 November in Berlin is still October in UTC.
        ("month", "2026-10-31T23:30:00+00:00", "2026-10-31T23:00:00+00:00"),
        ("month", "2026-10-31T22:30:00+00:00", "2026-09-30T22:00:00+00:00"),
        ("quarter", "2026-08-15T12:00:00+00:00", "2026-06-30T22:00:00+00:00"),
        ("year", "2026-12-04T12:00:00+00:00", "2025-12-31T23:00:00+00:00"),
    ],
)
def test_a_calendar_period_begins_at_local_midnight(unit: str, now: str, begun: str) -> None:
    start = Calendar(unit=unit, zone=BERLIN).start(datetime.fromisoformat(now))
    assert start == datetime.fromisoformat(begun)
    assert start.astimezone(BERLIN).time().isoformat() == "00:00:00"


PACK = """
pack: monthly
currency: USD
timezone: Europe/Berlin
entities:
  customer: {}
context:
  customer.tier: string
totals:
  customer.credits_today: {type: int, actions: [credit], per: customer, window: calendar day}
roles:
  - id: ai_agent
    ai: true
    authority:
      credit: {standard: "100.00"}
  - id: tier1
    authority:
      credit: {standard: "1000.00"}
budgets:
  - id: budget.monthly
    key: customer
    window: calendar month
    limit: "50.00"
actions:
  credit:
    tools:
      - name: apply_credit
        amount: amount
        currency: currency
        customer: customer_id
    reads: [customer.tier, customer.credits_today]
    standard:
      - id: credit.first-today
        when: customer.credits_today == 0
"""


def guard(tmp_path: Path, clock: FakeClock, text: str = PACK) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    facts = StaticContextProvider({"customer.id": "c-1", "customer.tier": "gold"})
    store = SqlStore(f"sqlite:///{tmp_path}/ledger.db")
    return Guard(load_pack(path), store=store, context=facts, clock=clock)


def credit(amount: str, key: str) -> dict[str, Any]:
    return {
        "actor": {"id": "bot", "role": "ai_agent"},
        "tool": {
            "name": "apply_credit",
            "arguments": {"amount": amount, "currency": "USD", "customer_id": "c-1"},
        },
        "idempotency_key": key,
    }


def test_a_calendar_month_budget_and_a_calendar_day_total_start_over_at_local_midnight(
    tmp_path: Path,
) -> None:
    # 23:10 on 31 October in Berlin (22:10 UTC).
    clock = FakeClock(datetime(2026, 10, 31, 22, 10, tzinfo=UTC))
    g = guard(tmp_path, clock)
    assert g.decide(credit("40.00", "oct-1")).outcome is Outcome.ALLOW
    clock.advance(minutes=20)
    # The same day: the day's total holds one credit, so the standard rule no longer applies.
    second = g.decide(credit("5.00", "oct-2"))
    assert second.outcome is Outcome.DENY
    assert second.rules[0] == "discretion.not-standard"
    clock.advance(minutes=40)  # 00:10 on 1 November in Berlin, still 31 October in UTC
    november = g.decide(credit("40.00", "nov-1"))
    # A new day and a new month: the 40.00 of October no longer counts against 50.00.
    assert november.outcome is Outcome.ALLOW
    assert [r.key for r in november.reservations] == ["c-1"]
    clock.advance(days=1)
    # The next day: the first credit of the day, but 80.00 this month against 50.00.
    over = g.decide(credit("40.00", "nov-2"))
    assert over.outcome is Outcome.ROUTE
    assert over.rules == ["credit.first-today", "budget.monthly"]


def test_a_rolling_budget_still_counts_back_from_now(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 10, 31, 22, 10, tzinfo=UTC))
    g = guard(tmp_path, clock, PACK.replace("window: calendar month", "window: 30d"))
    assert g.decide(credit("40.00", "oct-1")).outcome is Outcome.ALLOW
    clock.advance(hours=1, minutes=10)
    assert "budget.monthly" in g.decide(credit("40.00", "nov-1")).rules
    assert g.pack.budgets[0].since(clock.now) == clock.now - timedelta(days=30)


def test_an_unknown_time_zone_or_calendar_unit_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(PACK.replace("Europe/Berlin", "Europe/Atlantis"), encoding="utf-8")
    with pytest.raises(PolicyError, match="timezone 'Europe/Atlantis' is not a time zone"):
        load_pack(path)
    path.write_text(PACK.replace("calendar month", "calendar fortnight"), encoding="utf-8")
    with pytest.raises(PolicyError, match="window"):
        load_pack(path)


def test_a_grant_made_at_local_midnight_exactly_counts_in_the_period_it_opens(
    tmp_path: Path,
) -> None:
    """A calendar period includes its start: a grant at 00:00:00 was in neither day while the
    start was excluded, so the day's budget and total both missed it."""
    # 00:00:00 on 1 November in Berlin (23:00 UTC on 31 October): a new day and a new month.
    clock = FakeClock(datetime(2026, 10, 31, 23, 0, tzinfo=UTC))
    g = guard(tmp_path, clock)
    assert g.decide(credit("40.00", "midnight")).outcome is Outcome.ALLOW
    clock.advance(seconds=1)
    # The same day: its total holds the midnight credit, so the standard rule does not hold.
    again = g.decide(credit("5.00", "after"))
    assert again.outcome is Outcome.DENY
    assert again.rules[0] == "discretion.not-standard"
    clock.advance(days=1)
    # The next day: the month's budget holds the midnight credit's 40.00 against 50.00.
    over = g.decide(credit("40.00", "next-day"))
    assert over.outcome is Outcome.ROUTE
    assert over.rules == ["credit.first-today", "budget.monthly"]


def test_a_window_of_ever_counts_everything_on_record(tmp_path: Path) -> None:
    """ "Once per account, ever": a total over `ever` still holds a grant years old."""
    clock = FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    g = guard(tmp_path, clock, PACK.replace("window: calendar day", "window: ever"))
    assert g.decide(credit("5.00", "first")).outcome is Outcome.ALLOW
    clock.advance(days=3650)
    again = g.decide(credit("5.00", "ten-years-on"))
    assert again.outcome is Outcome.DENY
    assert again.rules[0] == "discretion.not-standard"


DAILY_CAP = """
pack: daily-cap
currency: USD
timezone: Europe/Berlin
entities:
  customer: {}
context:
  customer.tier: string
totals:
  customer.credited_today: {type: money, actions: [credit], per: customer, window: calendar day}
roles:
  - id: ai_agent
    ai: true
    authority:
      credit: {standard: "50.00"}
  - id: tier1
    authority:
      credit: {standard: "1000.00"}
actions:
  credit:
    tools:
      - {name: apply_credit, amount: amount, currency: currency, customer: customer_id}
    reads: [customer.tier, customer.credited_today]
    hard_limits:
      - id: credit.daily-cap
        when: amount + customer.credited_today > 10000
        message: at most 100.00 a day is credited to a customer
    standard:
      - id: credit.any
"""


def test_approved_money_counts_in_the_period_it_was_approved_in(
    tmp_path: Path, store: SqlStore
) -> None:
    """A case opened late one day and approved the next moved its money the next day: a day's
    total counted it on the day it was asked, so the next day's cap let 125.00 through."""
    path = tmp_path / "pack.yaml"
    path.write_text(DAILY_CAP, encoding="utf-8")
    # 23:30 on 25 November in Berlin.
    clock = FakeClock(datetime(2026, 11, 25, 22, 30, tzinfo=UTC))
    facts = StaticContextProvider({"customer.id": "c-1", "customer.tier": "gold"})
    g = Guard(load_pack(path), store=store, context=facts, clock=clock)
    routed = g.decide(credit("80.00", "late"))
    assert (routed.outcome, routed.required_role) == (Outcome.ROUTE, "tier1")
    clock.advance(hours=1)  # 00:30 on the 26th: the 80.00 moves today
    g.approvals.approve(routed.id, approver=Actor(id="tina", role="tier1", is_ai=False), note="ok")
    clock.advance(minutes=30)

    second = g.decide(credit("45.00", "next-morning"))

    assert second.outcome is Outcome.DENY
    assert second.rules == ["credit.daily-cap"]
    assert g.decide(credit("20.00", "small")).outcome is Outcome.ALLOW


ZONED = (
    PACK.replace(
        "  customer.tier: string\n", "  customer.tier: string\n  customer.timezone: string\n"
    )
    .replace(
        "per: customer, window: calendar day}",
        "per: customer, window: calendar day, timezone: customer.timezone}",
    )
    .replace(
        "    window: calendar month\n",
        "    window: calendar month\n    timezone: customer.timezone\n",
    )
    .replace(
        "reads: [customer.tier, customer.credits_today]",
        "reads: [customer.tier, customer.timezone, customer.credits_today]",
    )
)


def zoned_guard(tmp_path: Path, clock: FakeClock, zone: str | None) -> Guard:
    path = tmp_path / "pack.yaml"
    path.write_text(ZONED, encoding="utf-8")
    facts = StaticContextProvider(
        {"customer.id": "c-1", "customer.tier": "gold", "customer.timezone": zone}
    )
    return Guard(
        load_pack(path),
        store=SqlStore(f"sqlite:///{tmp_path}/ledger.db"),
        context=facts,
        clock=clock,
    )


def test_a_calendar_in_the_time_zone_a_fact_names_begins_at_that_zones_midnight(
    tmp_path: Path,
) -> None:
    """A Tokyo customer's month, in a Berlin pack: 40.00 at 01:00 on 1 November in Tokyo.

    In Berlin it is still 31 October: counted in the pack's zone, the 40.00 paid at 23:30
    Tokyo time on 31 October and this one fall in two months, and 80.00 passes a 50.00 cap.
    """
    clock = FakeClock(datetime(2026, 10, 31, 14, 30, tzinfo=UTC))  # 23:30 in Tokyo
    g = zoned_guard(tmp_path, clock, "Asia/Tokyo")
    assert g.decide(credit("40.00", "oct-1")).outcome is Outcome.ALLOW
    clock.advance(hours=1)  # 00:30 on 1 November in Tokyo, 16:30 on 31 October in Berlin
    november = g.decide(credit("40.00", "nov-1"))
    # Tokyo's new day and month: the day's total and the month's budget start over.
    assert november.outcome is Outcome.ALLOW
    clock.advance(hours=2)
    # Still Tokyo's 1 November: a second credit of its day, 80.00 in its month.
    again = g.decide(credit("40.00", "nov-2"))
    assert again.outcome is Outcome.DENY
    assert again.rules[0] == "discretion.not-standard"


def test_a_time_zone_fact_that_names_none_routes(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 10, 31, 14, 30, tzinfo=UTC))
    g = zoned_guard(tmp_path, clock, "Mars/Olympus_Mons")
    decision = g.decide(credit("10.00", "k-1"))
    assert decision.outcome is Outcome.ROUTE
    assert decision.reservations == []


UNREAD = ZONED.replace(
    "reads: [customer.tier, customer.timezone, customer.credits_today]",
    "reads: [customer.tier, customer.credits_today]",
)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            ZONED.replace("calendar month\n    timezone", "30d\n    timezone"),
            "for a calendar window",
        ),
        (ZONED.replace("timezone: string\n", "timezone: int\n"), "not a string context field"),
        (UNREAD, "'customer.timezone' names, which action 'credit' does not read"),
        (
            ZONED.replace("    key: customer\n", "    key: organisation\n"),
            "timezone 'customer.timezone' is not a fact of what it is kept for (organisation)",
        ),
        (
            UNREAD.replace("    timezone: customer.timezone\n", ""),
            "reads total 'customer.credits_today', whose calendar begins in the time zone",
        ),
    ],
)
def test_a_time_zone_fact_must_be_a_string_read_on_a_calendar_window(
    tmp_path: Path, text: str, says: str
) -> None:
    path = tmp_path / "pack.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match=re.escape(says)):
        load_pack(path)


def test_the_metrics_count_a_budget_in_each_cases_zone_over_its_longest_span(
    tmp_path: Path,
) -> None:
    """40.00 at 01:00 on 1 November in Tokyo, read at 00:30 on 1 November in Berlin.

    Tokyo's month holds it; the pack's Berlin month began after it. The gauge cannot know each
    key's zone, so it counts the longest span a month runs: the spend is in it.
    """
    from discretion._metrics import GuardMetrics

    clock = FakeClock(datetime(2026, 10, 31, 16, 0, tzinfo=UTC))
    g = zoned_guard(tmp_path, clock, "Asia/Tokyo")
    assert g.decide(credit("40.00", "nov-1")).outcome is Outcome.ALLOW
    clock.now = datetime(2026, 10, 31, 23, 30, tzinfo=UTC)
    text = GuardMetrics(g).exposition().decode()
    assert 'discretion_budget_utilisation_ratio{budget="budget.monthly"} 0.8' in text
