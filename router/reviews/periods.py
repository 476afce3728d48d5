"""Months and weeks in the scope note's timezone, and nearest-rank percentiles.

A decision, escalation or hand-back belongs to the week and month of the event it decided
on, in the note's `timezone`; a month's weeks are those that start in it (on
`cap.week_starts`), so a week is reported once even when it runs into the next month.
The boundaries are computed here as UTC instants, so the queries compare stored times
with plain `>=` / `<` and walk the `event_at` index.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_MONTH = re.compile(r"(\d{4})-(\d{2})")


class BadMonth(ValueError):
    """A month that is not YYYY-MM; the message is the one line to show."""


@dataclass(frozen=True, slots=True)
class Week:
    """A week that starts in the month: its local first day and its UTC span."""

    start: date
    begins: datetime
    ends: datetime


@dataclass(frozen=True, slots=True)
class Month:
    """A calendar month in a timezone: its UTC span and the weeks that start in it."""

    label: str  # "2026-11"
    tz: ZoneInfo
    first: date
    begins: datetime  # local midnight of the 1st, in UTC
    ends: datetime  # local midnight of the next month's 1st, in UTC
    weeks: tuple[Week, ...]

    def holds(self, moment: datetime) -> bool:
        return self.begins <= moment < self.ends

    @property
    def last_day(self) -> date:
        return (self.ends - timedelta(days=1)).astimezone(self.tz).date()


def parse_month(text: str) -> tuple[int, int]:
    """Read `YYYY-MM`; anything else raises BadMonth naming the value."""
    found = _MONTH.fullmatch(text.strip())
    if not found or not 1 <= int(found.group(2)) <= 12 or int(found.group(1)) < 1:
        raise BadMonth(f"month {text!r}: use YYYY-MM, e.g. 2026-11")
    return int(found.group(1)), int(found.group(2))


def month_of(text: str | None, tz: ZoneInfo, week_starts: int, now: datetime) -> Month:
    """Return the month named `text`, or the last complete one as of `now` in `tz`."""
    if text is None:
        today = now.astimezone(tz).date()
        year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    else:
        year, month = parse_month(text)
    return month_span(year, month, tz, week_starts)


def month_span(year: int, month: int, tz: ZoneInfo, week_starts: int) -> Month:
    """Return the month with its weeks (starting on weekday `week_starts`, 0 = Monday)."""
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    day = first + timedelta(days=(week_starts - first.weekday()) % 7)
    weeks = []
    while day < following:
        ends = local_midnight(day + timedelta(days=7), tz)
        weeks.append(Week(day, local_midnight(day, tz), ends))
        day += timedelta(days=7)
    return Month(f"{year:04d}-{month:02d}", tz, first, local_midnight(first, tz),
                 local_midnight(following, tz), tuple(weeks))


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """Return local midnight of `day` as a UTC instant (so spans subtract correctly)."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def nearest_rank(ordered: Sequence[float], percent: float) -> float | None:
    """Return the nearest-rank percentile of values sorted ascending (None if empty):
    the value at rank ceil(percent/100 * n), counting from 1."""
    if not ordered:
        return None
    rank = max(1, math.ceil(percent / 100.0 * len(ordered)))
    return ordered[rank - 1]
