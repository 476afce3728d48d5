"""The scope note's schema (SPEC §2): pydantic models that refuse unknown keys.

Field validators check what can be checked locally (durations, regexes, times, enum
values); `router.scope.load` adds the cross-checks (person keys, duplicate ids) with lines.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from router.core.durations import parse_duration
from router.core.model import KINDS, SOURCES, STATUSES

SevName = Literal["sev1", "sev2", "sev3", "sev4"]
DayName = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
GROUP_FIELDS = ("project", "source", "labels", "kind", "priority", "severity", "status", "key")


def _as_list(value: Any) -> Any:
    """Let a single value stand for a one-item list ("a list means any of")."""
    if value is None:
        return []
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list):
        return [str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                for v in value]
    return value


def _as_text(value: Any) -> Any:
    """Accept account ids that YAML read as numbers."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


StrList = Annotated[list[str], BeforeValidator(_as_list)]
Text = Annotated[str, BeforeValidator(_as_text)]


def _one_of(values: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    for value in values:
        if value.lower() not in allowed:
            raise ValueError(f"unknown {what} {value!r} (one of: {', '.join(allowed)})")
    return [v.lower() for v in values]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SeverityBound(Strict):
    at_least: SevName | None = None
    at_most: SevName | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> SeverityBound:
        if self.at_least is None and self.at_most is None:
            raise ValueError("give at_least or at_most (an empty severity map matches nothing)")
        return self


# The loc tags pydantic puts after `severity` in an error path; `router.scope.load` drops them.
SEVERITY_FORMS = ("bound", "names")


def _severity_form(value: Any) -> str:
    """`{at_least: sevN}` / `{at_most: sevN}` is a bound; anything else is severity names.

    Choosing the form first means a bad value gets one error from its own form, not a
    second one complaining that it is not the other form either.
    """
    return "bound" if isinstance(value, dict | SeverityBound) else "names"


SeverityMatch = Annotated[
    Annotated[SeverityBound, Tag("bound")]
    | Annotated[list[SevName], BeforeValidator(_as_list), Tag("names")],
    Discriminator(_severity_form),
]


class MatchSpec(Strict):
    source: StrList = []
    kind: StrList = []
    project: StrList = []
    labels: StrList = []
    labels_all: StrList = []
    priority: StrList = []
    severity: SeverityMatch = []
    status: StrList = []
    assignee: StrList = []
    reporter: StrList = []
    text: str | None = None
    any_: list[MatchSpec] | None = Field(default=None, alias="any")
    all_: list[MatchSpec] | None = Field(default=None, alias="all")
    not_: MatchSpec | None = Field(default=None, alias="not")

    @field_validator("source")
    @classmethod
    def _source(cls, v: list[str]) -> list[str]:
        return _one_of(v, SOURCES, "source")

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: list[str]) -> list[str]:
        return _one_of(v, KINDS, "kind")

    @field_validator("status")
    @classmethod
    def _status(cls, v: list[str]) -> list[str]:
        return _one_of(v, STATUSES, "status")

    @field_validator("text")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"bad regular expression {v!r}: {exc}") from exc
        return v


def _duration(value: Any) -> Any:
    if value is not None:
        parse_duration(value if isinstance(value, str) else str(value))
    return value


DurationText = Annotated[str, BeforeValidator(_duration)]


class Person(Strict):
    name: str | None = None
    jira: Text | None = None
    linear: Text | None = None
    github: Text | None = None
    pagerduty: Text | None = None
    email: str | None = None
    backup: str | None = None
    away: StrList = []

    @field_validator("away")
    @classmethod
    def _away(cls, v: list[str]) -> list[str]:
        for span in v:
            parse_away(span)
        return v


def parse_away(span: str) -> tuple[date, date]:
    """Read `2026-12-21..2027-01-02` (inclusive) or a single date."""
    first, _, last = span.partition("..")
    try:
        start = date.fromisoformat(first.strip())
        end = date.fromisoformat(last.strip()) if last else start
    except ValueError as exc:
        raise ValueError(f"away {span!r}: use YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD") from exc
    if end < start:
        raise ValueError(f"away {span!r}: the end is before the start")
    return start, end


class BusinessHours(Strict):
    days: list[DayName] = ["mon", "tue", "wed", "thu", "fri"]
    start: str = "09:00"
    end: str = "18:00"

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, v: str) -> str:
        if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", v):
            raise ValueError(f"time {v!r}: use HH:MM, e.g. \"09:00\"")
        return v


class Accounts(Strict):
    jira: Text | None = None
    linear: Text | None = None
    github: Text | None = None
    pagerduty: Text | None = None


def _day(value: Any) -> Any:
    """Read `until` as a calendar date; YAML gives a date, a quoted one is text."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise ValueError(f"until {value!r}: use YYYY-MM-DD (the last day the line "
                         "applies)") from exc


Day = Annotated[date, BeforeValidator(_day)]
StintMode = Literal["rescue", "cleanup", "coaching"]


class OwnerLine(Strict):
    name: str
    match: MatchSpec | None = None
    owner: str
    cost: DurationText = "1h"
    until: Day | None = None  # the last day the line applies, in the note's timezone
    mode: StintMode | None = None  # a time-boxed stint of CTO work
    note: str | None = None  # free text, shown with the stint


class SeverityRule(Strict):
    match: MatchSpec | None = None
    severity: SevName


class Trigger(Strict):
    id: str
    name: str
    match: MatchSpec | None = None
    after: DurationText | None = None
    group_by: StrList = []

    @field_validator("group_by")
    @classmethod
    def _group(cls, v: list[str]) -> list[str]:
        return _one_of(v, GROUP_FIELDS, "group_by field")


class Cap(Strict):
    ad_hoc_hours_per_week: float = Field(default=6.0, ge=0)
    week_starts: DayName = "mon"


class Paging(Strict):
    max_per_hour: int | None = Field(default=None, ge=1)


class Reviews(Strict):
    """Where review checklists are filed as tickets when an escalation resolves (optional):
    a Jira project key, a Linear team key or a GitHub `owner/repo`."""

    source: Literal["jira", "linear", "github"]
    project: str = Field(min_length=1)
    labels: StrList = []
    issue_type: str = "Task"  # Jira only: the issue type the ticket is created as


class ScopeNote(Strict):
    version: Literal[1]
    mode: Literal["shadow", "enforce"] = "shadow"
    timezone: str = "UTC"
    business_hours: BusinessHours = BusinessHours()
    holidays: list[date] = []
    people: dict[str, Person]
    cto: str
    firstline: Accounts = Accounts()
    owners: list[OwnerLine] = Field(min_length=1)
    severity: list[SeverityRule] = []
    triggers: list[Trigger] = []
    cap: Cap = Cap()
    skip_label: str = "firstline-skip"
    paging: Paging = Paging()
    reviews: Reviews | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {v!r} (use an IANA name like Europe/Berlin)") \
                from exc
        return v

