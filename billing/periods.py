"""Billing-period arithmetic: periods repeat monthly or yearly from an anchor."""

from __future__ import annotations

import calendar
from datetime import datetime


def add_months(moment: datetime, months: int, *, anchor_day: int | None = None) -> datetime:
    """``moment`` moved by whole months, the day clamped to the month's length.

    ``anchor_day`` keeps the original day of month across short months
    (Jan 31 -> Feb 28 -> Mar 31), as Stripe's billing cycle anchor does.
    """
    total = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(total, 12)
    day = min(anchor_day or moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def period_containing(anchor: datetime, now: datetime, *, months: int) -> tuple[datetime, datetime]:
    """The period [start, end) of ``months`` months, counted from ``anchor``, that holds ``now``."""
    if now < anchor:
        return anchor, add_months(anchor, months, anchor_day=anchor.day)
    elapsed = (now.year - anchor.year) * 12 + (now.month - anchor.month)
    steps = max(elapsed // months - 1, 0)
    while True:
        start = add_months(anchor, steps * months, anchor_day=anchor.day)
        end = add_months(anchor, (steps + 1) * months, anchor_day=anchor.day)
        if start <= now < end:
            return start, end
        steps += 1
