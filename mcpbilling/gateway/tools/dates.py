"""``date_calc``: add to a date, or count the days between two dates."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from mcpbilling.gateway.registry import tool

MAX_SPAN_DAYS = 366 * 10_000


class DateResult(BaseModel):
    date: str
    weekday: str
    iso_week: int
    days_between: int
    business_days_between: int


def _parse(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError as exc:
        raise ToolError(f"{text!r} is not a date like 2026-03-31.") from exc


def add_months(start: date, months: int) -> date:
    """The same day ``months`` later, or the month's last day when it is shorter."""
    month_index = start.year * 12 + start.month - 1 + months
    year, month = divmod(month_index, 12)
    if not 1 <= year <= 9999:
        raise ToolError("The result is outside the years 1 to 9999.")
    day = min(start.day, calendar.monthrange(year, month + 1)[1])
    return date(year, month + 1, day)


def business_days(start: date, end: date) -> int:
    """Weekdays from ``start`` (included) to ``end`` (excluded); negative when end is earlier."""
    if end < start:
        return -business_days(end, start)
    weeks, extra = divmod((end - start).days, 7)
    return weeks * 5 + sum(1 for offset in range(extra) if (start.weekday() + offset) % 7 < 5)


@tool(free=True, timeout_s=5.0)
def date_calc(
    start: str = Field(description="an ISO date, e.g. 2026-03-31"),
    end: str | None = Field(default=None, description="a second date to count the days to"),
    years: int = Field(default=0, ge=-9999, le=9999),
    months: int = Field(default=0, ge=-120_000, le=120_000),
    days: int = Field(default=0, ge=-MAX_SPAN_DAYS, le=MAX_SPAN_DAYS),
) -> DateResult:
    """Add years, months and days to a date (month ends are kept: Jan 31 + 1 month is Feb 28),
    or give the calendar and business days from start to end."""
    first = _parse(start)
    if end is not None:
        result = _parse(end)
    else:
        try:
            result = add_months(first, years * 12 + months) + timedelta(days=days)
        except OverflowError as exc:
            raise ToolError("The result is outside the years 1 to 9999.") from exc
    return DateResult(
        date=result.isoformat(),
        weekday=calendar.day_name[result.weekday()],
        iso_week=result.isocalendar().week,
        days_between=(result - first).days,
        business_days_between=business_days(first, result),
    )
