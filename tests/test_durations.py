"""Durations and business-time arithmetic (SPEC §2), in the example's Europe/Berlin."""

from __future__ import annotations

import re
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from router.core.durations import (
    SINCE_HINT,
    add_duration,
    parse_duration,
    parse_since,
    week_start,
)
from tests.support import at, example_scope


@pytest.mark.parametrize(("text", "seconds", "business_hours", "business_days"), [
    ("15m", 900, 0, 0),
    ("2h", 7200, 0, 0),
    ("1d", 86400, 0, 0),
    ("45 minutes", 2700, 0, 0),
    ("30s", 30, 0, 0),
    ("4 business hours", 0, 4, 0),
    ("1 business hour", 0, 1, 0),
    ("1 business day", 0, 0, 1),
    ("2 business days", 0, 0, 2),
])
def test_parse_duration(text: str, seconds: float, business_hours: float,
                        business_days: float) -> None:
    d = parse_duration(text)
    assert (d.seconds, d.business_hours, d.business_days) == (seconds, business_hours,
                                                               business_days)


@pytest.mark.parametrize("text", ["", "15", "m15", "1 fortnight", "business day", "1.5x"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["-5m", " - 2h", "-1 business day", "-0m"])
def test_a_negative_duration_is_refused_as_negative(text: str) -> None:
    with pytest.raises(ValueError, match=f"^negative duration {re.escape(repr(text))}: a clock "
                       r"cannot run backwards \(use 0 or more, e.g. 15m\)$"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "zero"), [("0m", True), ("0 business days", True),
                                            ("0.0h", True), ("1s", False),
                                            ("0.5 business hours", False)])
def test_zero_durations_are_known(text: str, zero: bool) -> None:
    assert parse_duration(text).is_zero is zero


BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(("text", "expected"), [
    # a date is its midnight in the scope note's timezone (UTC+1 in winter, +2 in summer)
    ("2026-12-01", "2026-11-30T23:00:00+00:00"),
    ("2026-07-01", "2026-06-30T22:00:00+00:00"),
    (" 2026-12-01 ", "2026-11-30T23:00:00+00:00"),
    # a time with an offset is that time
    ("2026-12-01T08:30:00Z", "2026-12-01T08:30:00+00:00"),
    ("2026-12-01T09:30:00+01:00", "2026-12-01T08:30:00+00:00"),
])
def test_since_reads_a_date_in_the_notes_timezone_or_a_time_with_its_offset(
        text: str, expected: str) -> None:
    assert parse_since(text, BERLIN) == at(expected)


@pytest.mark.parametrize(("text", "problem"), [
    ("2026-12-01T08:30:00", "'2026-12-01T08:30:00' has no offset"),
    ("2026-13-01", "'2026-13-01' is not a date or time"),
    ("yesterday", "'yesterday' is not a date or time"),
])
def test_since_refuses_what_it_cannot_place(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_since(text, BERLIN)
    assert str(refused.value) == f"{problem}: {SINCE_HINT}"


# Berlin is UTC+1 in winter: 14:00Z is 15:00 local.
@pytest.mark.parametrize(("start", "duration", "due"), [
    # plain durations ignore business hours
    ("2026-11-21T22:00:00+00:00", "15m", "2026-11-21T22:15:00+00:00"),
    # Thursday 15:00 + 1 business day = Friday 15:00 (the SPEC's own example)
    ("2026-11-19T14:00:00+00:00", "1 business day", "2026-11-20T14:00:00+00:00"),
    # Friday 15:00 + 1 business day skips the weekend: Monday 15:00
    ("2026-11-20T14:00:00+00:00", "1 business day", "2026-11-23T14:00:00+00:00"),
    # Thursday 24 Dec 15:00 + 1 business day skips the holidays 25/26 and the weekend
    ("2026-12-24T14:00:00+00:00", "1 business day", "2026-12-28T14:00:00+00:00"),
    # a clock that starts on Saturday starts at Monday's opening (09:00 local = 08:00Z)
    ("2026-11-21T10:00:00+00:00", "2 business hours", "2026-11-23T10:00:00+00:00"),
    # a clock that starts after closing starts next morning
    ("2026-11-17T19:00:00+00:00", "1 business hour", "2026-11-18T09:00:00+00:00"),
    # before opening on a business day: starts at that day's opening
    ("2026-11-18T05:00:00+00:00", "3 business hours", "2026-11-18T11:00:00+00:00"),
    # spans several days: 20 business hours from Monday 09:00 = Tuesday 18:00 + 2h = Wed 11:00
    ("2026-11-23T08:00:00+00:00", "20 business hours", "2026-11-25T10:00:00+00:00"),
    # summer time (UTC+2): Friday 17:00 local + 2 business hours = Monday 10:00 local
    ("2026-06-19T15:00:00+00:00", "2 business hours", "2026-06-22T08:00:00+00:00"),
])
def test_add_duration(start: str, duration: str, due: str) -> None:
    calendar = example_scope().calendar
    assert add_duration(at(start), parse_duration(duration), calendar) == at(due)


def test_week_start_is_local_monday() -> None:
    scope = example_scope()
    # Sunday 23:30 UTC is already Monday in Berlin
    assert week_start(at("2026-11-22T23:30:00+00:00"), scope.tz, 0) == date(2026, 11, 23)
    assert week_start(at("2026-11-22T22:30:00+00:00"), scope.tz, 0) == date(2026, 11, 16)
    # weeks starting on Sunday
    assert week_start(at("2026-11-25T12:00:00+00:00"), scope.tz, 6) == date(2026, 11, 22)
