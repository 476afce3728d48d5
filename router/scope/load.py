"""Load a scope note: parse, validate every rule with its line, compile for decide().

`load_scope(path)` returns a `Scope` and its warnings, or raises `ScopeError` listing
every problem found as `path:line: message` (not just the first), the way Alertmanager
refuses "undefined receiver %q used in route" once, at load.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from router.core.durations import DAY_NAMES, Calendar, Duration, parse_duration
from router.core.match import Matcher, compile_match
from router.core.model import SOURCES, Severity, Source
from router.scope.schema import SEVERITY_FORMS, MatchSpec, ScopeNote, parse_away
from router.scope.yamllines import YamlProblem, line_of, load_with_lines


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    message: str


class ScopeError(ValueError):
    """A scope note that cannot be used; `lines()` gives each problem as path:line: msg."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = sorted(problems, key=lambda p: p.line)
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.path}:{p.line}: {p.message}" for p in self.problems]


@dataclass(frozen=True, slots=True)
class Person:
    key: str
    name: str
    accounts: dict[Source, str]
    backup: str | None
    away: tuple[tuple[date, date], ...]

    def away_on(self, day: date) -> bool:
        return any(start <= day <= end for start, end in self.away)


@dataclass(frozen=True, slots=True)
class OwnerRule:
    index: int
    name: str
    matcher: Matcher
    owner: str
    cost_hours: float
    until: date | None = None  # the last local day the line applies (a time-boxed stint)
    mode: str | None = None  # rescue | cleanup | coaching
    note: str | None = None

    def expired_on(self, day: date) -> bool:
        """Tell whether the line no longer applies on local `day` (its `until` passed)."""
        return self.until is not None and day > self.until


@dataclass(frozen=True, slots=True)
class SeverityRule:
    index: int
    matcher: Matcher
    severity: Severity


@dataclass(frozen=True, slots=True)
class TriggerRule:
    id: str
    name: str
    matcher: Matcher
    after: Duration | None
    group_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Scope:
    """A validated scope note, compiled for decide(). Immutable; reload makes a new one."""

    path: str
    hash: str
    note: ScopeNote
    tz: ZoneInfo
    calendar: Calendar
    people: dict[str, Person]
    cto: str
    # source -> account id (lower-cased) -> person key
    accounts: dict[Source, dict[str, str]]
    firstline: dict[Source, frozenset[str]]
    owners: tuple[OwnerRule, ...]
    severity_rules: tuple[SeverityRule, ...]
    triggers: tuple[TriggerRule, ...]
    cap_hours: float
    week_starts: int
    skip_label: str
    max_pages_per_hour: int | None
    # Runtime settings that are not part of the note: the CTO's PagerDuty paging service.
    paging_service_id: str | None = field(default=None)

    @property
    def mode(self) -> str:
        return self.note.mode

    def person_for(self, source: Source, account: str | None) -> str | None:
        """Return the person key behind a tool account, or None when nobody has it."""
        if account is None:
            return None
        return self.accounts[source].get(account.lower())

    def is_firstline(self, source: Source, account: str | None) -> bool:
        return account is not None and account.lower() in self.firstline[source]


def load_scope(path: str | Path, paging_service_id: str | None = None,
               today: date | None = None) -> tuple[Scope, list[str]]:
    """Read, validate and compile a scope note; return it with its warnings (as of
    `today`, see `parse_scope`)."""
    shown = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ScopeError(shown, [Problem(1, f"cannot read the scope note: {exc.strerror}")]) \
            from exc
    return parse_scope(raw, shown, paging_service_id, today)


def parse_scope(raw: bytes, shown: str, paging_service_id: str | None = None,
                today: date | None = None) -> tuple[Scope, list[str]]:
    """Validate scope-note bytes (named `shown` in messages) and compile them.

    `today` (default: the local date in the note's timezone) is what time-boxed lines
    are warned about: a line past its `until` no longer matches.
    """
    try:
        data, lines = load_with_lines(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ScopeError(shown, [Problem(1, "the file is not UTF-8 text")]) from exc
    except YamlProblem as exc:
        raise ScopeError(shown, [Problem(exc.line, f"not valid YAML: {exc.message}")]) from exc
    if data is None:
        raise ScopeError(shown, [Problem(1, "the scope note is empty")])
    if not isinstance(data, dict):
        raise ScopeError(shown, [Problem(1, "the scope note must be a YAML mapping")])
    try:
        note = ScopeNote.model_validate(data)
    except ValidationError as exc:
        raise ScopeError(shown, list(_schema_problems(exc, lines))) from exc
    problems = [Problem(line_of(lines, p), f"{_dotted(p)}: {m}") for p, m in _cross_check(note)]
    if problems:
        raise ScopeError(shown, problems)
    if today is None:
        today = datetime.now(ZoneInfo(note.timezone)).date()
    found = sorted(((line_of(lines, p), p, m) for p, m in _warnings(note, today)),
                   key=lambda w: w[0])
    warnings = [f"{shown}:{line}: warning: {_dotted(p)}: {m}" for line, p, m in found]
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return _compile(note, shown, digest, paging_service_id), warnings


def _schema_problems(exc: ValidationError, lines: dict[Any, int]) -> Iterator[Problem]:
    for err in exc.errors():
        loc = tuple(err["loc"])
        # pydantic puts the chosen form of a severity predicate in the path; drop it.
        loc = tuple(p for i, p in enumerate(loc)
                    if not (i and loc[i - 1] == "severity" and p in SEVERITY_FORMS))
        if err["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        elif err["type"] == "missing":
            message = f"missing required key {loc[-1]!r}"
        elif err["type"] == "value_error":
            message = str(err["msg"]).removeprefix("Value error, ")  # ours name the value
        else:
            message = str(err["msg"])
            if isinstance(err.get("input"), str | int | float):
                message += f" (got {err['input']!r})"
        yield Problem(line_of(lines, loc), f"{_dotted(loc)}: {message}")


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


Finding = tuple[tuple[Any, ...], str]


def _cross_check(note: ScopeNote) -> Iterator[Finding]:
    """Yield every reference to an undefined person and every repeated or circular rule."""
    people = note.people

    def known(key: str, where: tuple[Any, ...]) -> Iterator[Finding]:
        if key not in people:
            yield where, f"unknown person {key!r} (define it under people)"

    yield from known(note.cto, ("cto",))
    for key, person in people.items():
        if person.backup is not None:
            yield from known(person.backup, ("people", key, "backup"))
            if person.backup == key:
                yield ("people", key, "backup"), "a person cannot be their own backup"
    for i, line in enumerate(note.owners):
        yield from known(line.owner, ("owners", i, "owner"))
        if line.mode is not None and line.until is None:
            yield ("owners", i, "mode"), f"a {line.mode} stint needs until: the last day " \
                "it applies (YYYY-MM-DD), set on day one"
        yield from _match_refs(line.match, ("owners", i, "match"), people, severity_ok=True)
    for i, rule in enumerate(note.severity):
        yield from _match_refs(rule.match, ("severity", i, "match"), people, severity_ok=False)
    seen: dict[str, int] = {}
    for i, trigger in enumerate(note.triggers):
        if trigger.id in seen:
            yield ("triggers", i, "id"), \
                f"trigger id {trigger.id!r} is used twice (first at triggers[{seen[trigger.id]}])"
        seen.setdefault(trigger.id, i)
        yield from _match_refs(trigger.match, ("triggers", i, "match"), people, severity_ok=True)
    hours = note.business_hours
    if _pad(hours.start) >= _pad(hours.end):
        yield ("business_hours", "end"), "business hours must end after they start"
    if not hours.days:
        yield ("business_hours", "days"), "at least one business day is needed"


def _match_refs(spec: MatchSpec | None, where: tuple[Any, ...], people: dict[str, Any],
                severity_ok: bool) -> Iterator[Finding]:
    if spec is None:
        return
    for key in spec.assignee:
        if key not in ("none", "any") and key not in people:
            yield (*where, "assignee"), f"unknown person {key!r} (define it under people, " \
                "or use none/any)"
    for key in spec.reporter:
        if key not in people:
            yield (*where, "reporter"), f"unknown person {key!r} (define it under people)"
    if spec.severity and not severity_ok:
        yield (*where, "severity"), "a severity rule cannot match on severity (it sets it)"
    for name, subs in (("any", spec.any_), ("all", spec.all_)):
        for j, sub in enumerate(subs or []):
            yield from _match_refs(sub, (*where, name, j), people, severity_ok)
    yield from _match_refs(spec.not_, (*where, "not"), people, severity_ok)


def _warnings(note: ScopeNote, today: date) -> Iterator[Finding]:
    last = len(note.owners) - 1
    if note.owners[last].match is not None and note.owners[last].match != MatchSpec():
        yield ("owners", last), "the last owner line has a match: work that matches no " \
            "line gets no owner (end with a catch-all line without match)"
    tools = [s for s in SOURCES if any(getattr(p, s) for p in note.people.values())]
    for i, line in enumerate(note.owners):
        person = note.people[line.owner]
        gaps = [s for s in tools if getattr(person, s) is None and line.owner != note.cto]
        if gaps:
            yield ("owners", i, "owner"), f"{line.owner} has no account in {', '.join(gaps)}: " \
                "there firstline removes the CTO and comments naming them instead of assigning"
    for i, trigger in enumerate(note.triggers):
        if trigger.after is not None and parse_duration(trigger.after).is_zero:
            yield ("triggers", i, "after"), f"after {trigger.after!r} is zero: the trigger " \
                "pages as soon as its match holds (leave out after for an instant trigger)"
    for key, person in note.people.items():
        if person.away and person.backup is None:
            yield ("people", key, "away"), f"{key} is away at times but has no backup"
    for i, line in enumerate(note.owners):
        if line.until is not None and today > line.until:
            stint = f"{line.mode} stint" if line.mode else "line"
            yield ("owners", i, "until"), f"the {stint} {line.name!r} ended on " \
                f"{line.until}: it no longer matches; remove it or set a new until"


def _compile(note: ScopeNote, shown: str, digest: str, paging_service_id: str | None) -> Scope:
    keys = frozenset(note.people)
    people = {k: Person(k, p.name or k, {s: str(getattr(p, s)) for s in SOURCES
                                         if getattr(p, s) is not None},
                        p.backup, tuple(parse_away(a) for a in p.away))
              for k, p in note.people.items()}
    accounts: dict[Source, dict[str, str]] = {s: {} for s in SOURCES}
    for key, person in people.items():
        for source, account in person.accounts.items():
            accounts[source].setdefault(account.lower(), key)
    firstline = {s: frozenset({str(getattr(note.firstline, s)).lower()}
                              if getattr(note.firstline, s) else set()) for s in SOURCES}
    hours = note.business_hours
    calendar = Calendar(ZoneInfo(note.timezone), frozenset(DAY_NAMES.index(d) for d in hours.days),
                        time.fromisoformat(_pad(hours.start)), time.fromisoformat(_pad(hours.end)),
                        frozenset(note.holidays))
    return Scope(
        path=shown, hash=digest, note=note, tz=calendar.tz, calendar=calendar, people=people,
        cto=note.cto, accounts=accounts, firstline=firstline,
        owners=tuple(OwnerRule(i, o.name, compile_match(o.match, keys), o.owner,
                               _cost_hours(o.cost, calendar), o.until, o.mode, o.note)
                     for i, o in enumerate(note.owners)),
        severity_rules=tuple(SeverityRule(i, compile_match(r.match, keys), r.severity)
                             for i, r in enumerate(note.severity)),
        triggers=tuple(TriggerRule(t.id, t.name, compile_match(t.match, keys),
                                   parse_duration(t.after) if t.after else None,
                                   tuple(t.group_by)) for t in note.triggers),
        cap_hours=note.cap.ad_hoc_hours_per_week,
        week_starts=DAY_NAMES.index(note.cap.week_starts),
        skip_label=note.skip_label.lower(),
        max_pages_per_hour=note.paging.max_per_hour,
        paging_service_id=paging_service_id,
    )


def _cost_hours(text: str, calendar: Calendar) -> float:
    """Return a line's cost in hours; a business day counts as one business day's length."""
    cost = parse_duration(text)
    return cost.hours() + cost.business_days * calendar.day_seconds / 3600.0


def _pad(clock: str) -> str:
    return clock if len(clock) == 5 else f"0{clock}"


def local_day(scope: Scope, moment: datetime) -> date:
    """Return the scope note's local calendar date of `moment`."""
    return moment.astimezone(scope.tz).date()
