"""Render a scope note as the short list a founder would pin up (`firstline scope`)."""

from __future__ import annotations

from datetime import date, datetime

from router.scope.load import OwnerRule, Scope
from router.scope.schema import MatchSpec, SeverityBound


def describe_scope(scope: Scope, today: date | None = None) -> str:
    """Return who owns what, how severe is what, the CTO triggers, and the cap; a
    time-boxed line shows its stint, ended or not as of `today` (default: the note's)."""
    note = scope.note
    today = today or datetime.now(scope.tz).date()
    cto = scope.people[scope.cto]
    lines = [f"Scope note {scope.path} ({note.mode} mode, {note.timezone}, "
             f"version {scope.hash[:8]})", "", "Who owns first response (first match wins):"]
    for i, line in enumerate(note.owners, 1):
        person = scope.people[line.owner]
        cost = f" — costs the CTO {line.cost}" if line.owner == scope.cto else ""
        lines.append(f"  {i}. {line.name}: {describe_match(line.match)} -> {person.name} "
                     f"({line.owner}){_away(scope, line.owner)}{cost}"
                     f"{_stint(scope.owners[i - 1], today)}")
    if note.severity:
        lines += ["", "Severity (first match wins, else the trackers' own priorities):"]
        lines += [f"  - {describe_match(r.match)} -> {r.severity}" for r in note.severity]
    lines += ["", f"The CTO, {cto.name}, is paged only when:"]
    for t in note.triggers:
        timing = f" for {t.after}" if t.after else ""
        group = f" (one page per {', '.join(t.group_by)})" if t.group_by else ""
        lines.append(f"  - [{t.id}] {t.name}: {describe_match(t.match)}{timing}{group}")
    if not note.triggers:
        lines.append("  (no triggers: the CTO is never paged)")
    lines += ["", f"Cap: {scope.cap_hours:g} hours a week of ad-hoc CTO work (weeks start "
              f"{note.cap.week_starts}); beyond it, CTO-owned work waits for next week."]
    hours = note.business_hours
    lines.append(f"Business hours: {', '.join(hours.days)} {hours.start}-{hours.end}"
                 + (f"; holidays {', '.join(str(d) for d in note.holidays)}"
                    if note.holidays else ""))
    lines.append(f"Items labelled {note.skip_label!r} are left alone.")
    return "\n".join(lines)


def describe_match(spec: MatchSpec | None) -> str:
    """Return a match map in words: `labels bug or outage, severity at least sev2`."""
    if spec is None or spec == MatchSpec():
        return "everything"
    parts: list[str] = []
    for key in ("source", "kind", "project", "labels", "priority", "status", "assignee",
                "reporter"):
        values: list[str] = getattr(spec, key)
        if values:
            parts.append(f"{key} {' or '.join(values)}")
    if spec.labels_all:
        parts.append(f"labels {' and '.join(spec.labels_all)}")
    if isinstance(spec.severity, SeverityBound):
        if spec.severity.at_least:
            parts.append(f"severity at least {spec.severity.at_least}")
        if spec.severity.at_most:
            parts.append(f"severity at most {spec.severity.at_most}")
    elif spec.severity:
        parts.append(f"severity {' or '.join(spec.severity)}")
    if spec.text:
        parts.append(f"text /{spec.text}/")
    if spec.any_:
        parts.append("any of (" + "; ".join(describe_match(s) for s in spec.any_) + ")")
    if spec.all_:
        parts.append("all of (" + "; ".join(describe_match(s) for s in spec.all_) + ")")
    if spec.not_:
        parts.append(f"not ({describe_match(spec.not_)})")
    return ", ".join(parts)


def _stint(line: OwnerRule, today: date) -> str:
    """Return ` — rescue stint until 2026-12-31 (ended): note` for a time-boxed line."""
    if line.until is None:
        return ""
    kind = f"{line.mode} stint" if line.mode else "time-boxed"
    ended = " (ended: no longer matches)" if line.expired_on(today) else ""
    note = f": {line.note}" if line.note else ""
    return f" — {kind} until {line.until}{ended}{note}"


def _away(scope: Scope, key: str) -> str:
    person = scope.people[key]
    if not person.away:
        return ""
    spans = ", ".join(f"{a}..{b}" for a, b in person.away)
    backup = f", then {person.backup}" if person.backup else ", no backup"
    return f" (away {spans}{backup})"
