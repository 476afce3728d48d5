"""Durations from the scope note and the business-time arithmetic behind timed triggers;
and `parse_since`, the one reading of a `since` bound (read API and CLI), in the note's
timezone.

Plain durations (`15m`, `2h`, `1d`) are wall-clock time. Business durations (`4 business
hours`, `1 business day`) count only time inside business hours, skipping weekends and
holidays, in the scope note's timezone; one business day is the length of one business
day (09:00-18:00 is 9 hours), so Thursday 15:00 plus one business day is Friday 15:00.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_PLAIN = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)\s*$",
    re.IGNORECASE,
)
_NEGATIVE = re.compile(r"^\s*-\s*\d")
_BUSINESS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s+business\s+(hours?|days?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Duration:
    """A wall-clock span (`seconds`) or a business span (`business_seconds`/`business_days`)."""

    text: str
    seconds: float = 0.0
    business_hours: float = 0.0
    business_days: float = 0.0

    @property
    def is_zero(self) -> bool:
        return not (self.seconds or self.business_hours or self.business_days)

    @property
    def is_business(self) -> bool:
        return bool(self.business_hours or self.business_days)

    def hours(self) -> float:
        """Return the span in hours, business days not included (their length is the
        calendar's: see `router.scope._cost_hours`)."""
        return self.seconds / 3600.0 + self.business_hours


def parse_duration(text: str) -> Duration:
    """Parse `15m`, `2h`, `1d`, `N business hours`, `N business day(s)`; ValueError if not."""
    if not isinstance(text, str):
        raise ValueError(f"not a duration: {text!r} (use e.g. 15m, 2h, 1d, 1 business day)")
    if _NEGATIVE.match(text):
        raise ValueError(f"negative duration {text!r}: a clock cannot run backwards "
                         "(use 0 or more, e.g. 15m)")
    plain = _PLAIN.match(text)
    if plain:
        unit = plain.group(2).lower()
        unit = "m" if unit.startswith("min") else unit[0]
        return Duration(text=text, seconds=float(plain.group(1)) * _UNIT_SECONDS[unit])
    business = _BUSINESS.match(text)
    if business:
        amount = float(business.group(1))
        if business.group(2).lower().startswith("hour"):
            return Duration(text=text, business_hours=amount)
        return Duration(text=text, business_days=amount)
    raise ValueError(f"not a duration: {text!r} (use e.g. 15m, 2h, 1d, 1 business day)")


@dataclass(frozen=True, slots=True)
class Calendar:
    """Business hours in one timezone: which weekdays, opening and closing, holidays."""

    tz: ZoneInfo
    days: frozenset[int]  # 0 = Monday
    opens: time
    closes: time
    holidays: frozenset[date]

    @property
    def day_seconds(self) -> float:
        opens = datetime.combine(date(2000, 1, 3), self.opens)
        return (datetime.combine(date(2000, 1, 3), self.closes) - opens).total_seconds()

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.days and day not in self.holidays

    def next_opening(self, local: datetime) -> datetime:
        """Return `local` if it is inside business hours, else the next opening after it."""
        day = local.date()
        if self.is_business_day(day) and local.time() < self.closes:
            if local.time() >= self.opens:
                return local
            return datetime.combine(day, self.opens, tzinfo=self.tz)
        for _ in range(3660):  # ten years of holidays would be a broken scope note
            day += timedelta(days=1)
            if self.is_business_day(day):
                return datetime.combine(day, self.opens, tzinfo=self.tz)
        raise ValueError("no business day within ten years: check business_hours and holidays")


def add_duration(start: datetime, duration: Duration, calendar: Calendar) -> datetime:
    """Return when `duration` after `start` ends; business spans skip closed time."""
    if not duration.is_business:
        return start + timedelta(seconds=duration.seconds)
    remaining = duration.business_hours * 3600.0 + duration.business_days * calendar.day_seconds
    cursor = calendar.next_opening(start.astimezone(calendar.tz))
    while True:
        closing = datetime.combine(cursor.date(), calendar.closes, tzinfo=calendar.tz)
        available = (closing - cursor).total_seconds()
        if remaining <= available:
            return cursor + timedelta(seconds=remaining)
        remaining -= available
        cursor = calendar.next_opening(closing)


def week_start(moment: datetime, tz: ZoneInfo, starts_on: int) -> date:
    """Return the local date on which the week holding `moment` begins."""
    local = moment.astimezone(tz).date()
    return local - timedelta(days=(local.weekday() - starts_on) % 7)


SINCE_HINT = ("give a date (YYYY-MM-DD, midnight in the scope note's timezone) or a time "
              "with an offset, e.g. 2026-11-01T00:00:00Z")


def parse_since(text: str, tz: ZoneInfo) -> datetime:
    """Read a `since` bound for the read API and the CLI: a date means its midnight in the
    scope note's timezone (`tz`); a time needs an offset. ValueError says what to give."""
    value = text.strip()
    try:
        return datetime.combine(date.fromisoformat(value), time(0), tzinfo=tz)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{text!r} is not a date or time: {SINCE_HINT}") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no offset: {SINCE_HINT}")
    return moment
