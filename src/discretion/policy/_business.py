"""Business days: the working days of a pack's calendar, counted for `businessDays()` in CEL.

Written policies count in business days ("within 10 business days of delivery"): a pack names
its weekend and holidays, and its rules read `businessDays(order.delivered_at, now)`. Days are
the pack's `timezone`'s: a parcel delivered on Friday at 23:30 in Berlin was delivered on a
Friday, whatever the hour in UTC.
"""

from __future__ import annotations

import calendar
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo

__all__ = ["WEEKDAYS", "BusinessDays", "shift_months"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
"""The days of the week, in `date.weekday()` order."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BusinessDays:
    """A pack's working days: every day but its weekend and its holidays, in its time zone."""

    zone: tzinfo = UTC
    weekend: frozenset[int] = frozenset({5, 6})
    """The days of the week that are never business days (`date.weekday()`: Monday is 0)."""
    holidays: tuple[date, ...] = ()
    """Further days that are not business days: sorted, none of them in the weekend (`of`)."""

    @classmethod
    def of(
        cls, *, zone: tzinfo, weekend: frozenset[int], holidays: tuple[date, ...] = ()
    ) -> BusinessDays:
        """The calendar, its holidays sorted and those that fall on its weekend left out."""
        kept = sorted({day for day in holidays if day.weekday() not in weekend})
        return cls(zone=zone, weekend=weekend, holidays=tuple(kept))

    def _through(self, day: date) -> int:
        """How many business days there are from an arbitrary origin up to and with `day`."""
        ordinal = day.toordinal()
        # date.fromordinal(1) is a Monday: whole weeks, then the days of the last one.
        weeks, rest = divmod(ordinal - 1, 7)
        working = 7 - len(self.weekend)
        count = weeks * working + sum(1 for d in range(rest + 1) if d not in self.weekend)
        return count - bisect_right(self.holidays, day)

    def between(self, start: datetime, end: datetime) -> int:
        """The business days after `start`'s day up to and with `end`'s; negative when before.

        Delivered on a Friday, read the next Tuesday: 2 (Monday and Tuesday), with the default
        weekend and no holidays.
        """
        first = start.astimezone(self.zone).date()
        last = end.astimezone(self.zone).date()
        return self._through(last) - self._through(first)

    def add_months(self, moment: datetime, months: int) -> datetime:
        """`addMonths(ts, n)`: the same time of day `months` calendar months on, in the zone.

        "Within six calendar months of the last credit" reads
        `now < addMonths(customer.last_credit_at, 6)` (see `shift_months`).
        """
        return shift_months(moment, months, self.zone).astimezone(UTC)


def shift_months(moment: datetime, months: int, zone: tzinfo) -> datetime:
    """The same local day and time `months` calendar months on (back, when negative) in `zone`.

    A day the later month lacks is its last: 31 January and one month is 28 or 29 February.
    """
    local = moment.astimezone(zone)
    year, month = divmod(local.year * 12 + (local.month - 1) + months, 12)
    if not 1 <= year <= 9999:
        raise OverflowError("the months leave the years a timestamp can hold")
    last = calendar.monthrange(year, month + 1)[1]
    return local.replace(year=year, month=month + 1, day=min(local.day, last), fold=0)
