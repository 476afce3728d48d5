"""Write the monthly review as JSON (SPEC §9 keys), Markdown or CSV.

All three read the same `MonthlyReport`; the Markdown puts each figure's one-line
definition under its heading, and the CSV is long (`section,key,field,value`), one
value a row, so a spreadsheet can pivot it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from router.reviews.definitions import monthly_definitions
from router.reviews.monthly import MonthlyReport


def monthly_json(report: MonthlyReport) -> dict[str, Any]:
    """Return the review as the JSON object of SPEC §9, plus the figures issue 12 adds."""
    return {
        "month": report.month, "timezone": report.timezone,
        "cap_hours_per_week": report.cap_hours_per_week,
        "weeks": [{"start": w.start.isoformat(), "cto_hours": w.cto_hours,
                   "over_cap": w.over_cap} for w in report.weeks],
        "cto_hours": report.cto_hours,
        "escalations": {
            "total": len(report.escalations), "by_trigger": report.escalations_by_trigger,
            "items": [{"id": e.id, "trigger": e.trigger, "items": list(e.items),
                       "paged_at": e.paged_at.isoformat(), "status": e.status,
                       "minutes_to_acknowledge": e.minutes_to_acknowledge,
                       "cto_minutes": e.cto_minutes, "hours": e.hours,
                       "follow_up_owner": e.follow_up_owner} for e in report.escalations]},
        "handed_back": {
            "total": report.handed_back, "by_source": report.handed_back_by_source,
            "by_assigner": report.handed_back_by_assigner,
            "top_senders": [{"who": who, "count": n} for who, n in report.top_senders]},
        "exceptions": {"total": report.exceptions, "items": report.exception_items},
        "deferred": report.deferred,
        "time_to_owner_minutes": {s: {"median": t.median, "p90": t.p90, "count": t.count}
                                  for s, t in report.time_to_owner.items()},
        "scope_lines": [{"line": c.line, "owner": c.owner, "items": c.items,
                         "reached_cto": c.reached_cto} for c in report.scope_lines],
        "time_boxed": [{"line": s.line, "owner": s.owner, "mode": s.mode,
                        "until": s.until.isoformat(), "note": s.note, "hours": s.hours,
                        "items": s.items, "ended": s.ended,
                        "items_after_stop": s.items_after_stop,
                        "hours_after_stop": s.hours_after_stop,
                        "ran_past_stop": s.ran_past_stop} for s in report.time_boxed],
        "catch_all": None if report.catch_all is None else {
            "line": report.catch_all.line, "items": report.catch_all.items,
            "by_project": report.catch_all.by_project,
            "by_label": report.catch_all.by_label},
        "triggers_fired": report.triggers_fired,
        "away_without_backup": report.away_without_backup,
        "decisions": report.decisions,
        "suggestions": list(report.suggestions),
        "definitions": monthly_definitions(report),
    }


def monthly_markdown(report: MonthlyReport) -> str:
    """Return the review as Markdown: suggestions first, each figure with its definition."""
    d = monthly_definitions(report)
    out = [f"# Monthly review {report.month} ({report.timezone})", "", "## Suggestions", ""]
    out += [f"{i}. {s}" for i, s in enumerate(report.suggestions, 1)]
    for part in (_cto_time, _sent_to_cto, _owners):
        out += part(report, d)
    out += _section("Triggers", d["triggers_fired"], ["trigger", "fired on"],
                    _pairs(report.triggers_fired))
    out += _section("Away with no backup", d["away_without_backup"], ["person", "days away"],
                    _pairs(report.away_without_backup))
    out += _section(f"Decisions: {sum(report.decisions.values())}", d["decisions"],
                    ["outcome", "decisions"], _pairs(report.decisions))
    return "\n".join(out) + "\n"


def _cto_time(report: MonthlyReport, d: dict[str, str]) -> list[str]:
    """The weeks against the cap and the escalations, one row each."""
    out = _section(f"CTO hours against the weekly cap: {report.cto_hours:g}h", d["weeks"],
                   ["week starting", "CTO hours", f"over {report.cap_hours_per_week:g}h"],
                   [[w.start, f"{w.cto_hours:g}", "yes" if w.over_cap else "no"]
                    for w in report.weeks])
    out += _section(f"Escalations: {len(report.escalations)}", d["escalations"],
                    ["trigger", "escalations"], _pairs(report.escalations_by_trigger))
    if report.escalations:
        out += _table(["id", "trigger", "items", "paged", "to acknowledge", "CTO time",
                       "hours", "follow-up owner"],
                      [[e.id, e.trigger, ", ".join(e.items), e.paged_at.isoformat(),
                        _min(e.minutes_to_acknowledge), _min(e.cto_minutes), f"{e.hours:g}",
                        e.follow_up_owner or "-"] for e in report.escalations],
                      d["escalation_times"])
    return out


def _sent_to_cto(report: MonthlyReport, d: dict[str, str]) -> list[str]:
    """Hand-backs by source and sender, repeat senders, exceptions, deferrals."""
    out = _section(f"Reached the CTO and handed back: {report.handed_back}",
                   d["handed_back"], ["by source", "items"], _pairs(report.handed_back_by_source))
    out += _table(["by who put it on the CTO", "items"], _pairs(report.handed_back_by_assigner))
    out += _table(["repeat sender", "items put on the CTO"],
                  [list(p) for p in report.top_senders], d["top_senders"])
    out += _section(f"The CTO's own exceptions: {report.exceptions}", d["exceptions"],
                    ["item"], [[k] for k in report.exception_items])
    return out + _section(f"Deferred: {report.deferred}", d["deferred"], [], [])


def _owners(report: MonthlyReport, d: dict[str, str]) -> list[str]:
    """Time to owner, the scope lines, time-boxed lines and the catch-all line."""
    out = _section("Time to owner (minutes)", d["time_to_owner_minutes"],
                   ["source", "median", "p90", "items"],
                   [[s, f"{t.median:g}", f"{t.p90:g}", t.count]
                    for s, t in report.time_to_owner.items()])
    out += _section("Per scope line", d["scope_lines"],
                    ["owner line", "owner", "items", "reached the CTO first"],
                    [[c.line, c.owner or "(not in the note)", c.items, c.reached_cto]
                     for c in report.scope_lines])
    out += _section("Time-boxed lines", d["time_boxed"],
                    ["line", "owner", "mode", "until", "hours", "items", "ran past its stop"],
                    [[s.line, s.owner, s.mode or "-", s.until, f"{s.hours:g}", s.items,
                      _past(s.ran_past_stop, s.items_after_stop, s.hours_after_stop)]
                     for s in report.time_boxed])
    return out + _catch_all(report, d["catch_all"])


def _pairs(counts: dict[str, int]) -> list[list[Any]]:
    return [[k, v] for k, v in counts.items()]


def _catch_all(report: MonthlyReport, definition: str) -> list[str]:
    """The catch-all line's items by project and label."""
    c = report.catch_all
    if c is None:
        return _section("Catch-all line", definition, [], [])
    groups = [[f"project {k}", n] for k, n in c.by_project.items()]
    groups += [[f"label {k}", n] for k, n in c.by_label.items()]
    return _section(f"Only the catch-all line {c.line!r}: {c.items} items", definition,
                    ["group", "items"], groups)


def _section(title: str, definition: str, header: list[str], rows: list[list[Any]]) \
        -> list[str]:
    return ["", f"## {title}", "", f"*{definition}*", *_table(header, rows)]


def _table(header: list[str], rows: list[list[Any]], definition: str | None = None) \
        -> list[str]:
    out = ["", f"*{definition}*"] if definition else []
    if not header:
        return out
    if not rows:
        return [*out, "", "(none)"]
    out += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return out


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _min(minutes: float | None) -> str:
    return "-" if minutes is None else f"{minutes:g} min"


def _past(ran: bool, items: int, hours: float) -> str:
    if not ran:
        return "no"
    return f"yes: {items} items after, {hours:g}h after"


def monthly_csv(report: MonthlyReport) -> str:
    """Return the review as long CSV: `section,key,field,value`, one value a row."""
    return csv_text([["section", "key", "field", "value"], *_flatten(monthly_json(report))])


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    """Write rows (the header first) as CSV text."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _flatten(data: dict[str, Any]) -> Iterator[list[Any]]:
    """Yield a (section, key, field, value) row per value of the JSON object: the first
    name of its path, the middle ones joined by dots, and the last."""
    for path, value in _walk([], {k: v for k, v in data.items() if k != "definitions"}):
        yield [path[0], ".".join(path[1:-1]), path[-1] if len(path) > 1 else "", _csv(value)]


def _walk(path: list[str], value: Any) -> Iterator[tuple[list[str], Any]]:
    """Yield each leaf with its path; lists of objects are numbered from 1."""
    if isinstance(value, dict):
        for name, inner in value.items():
            yield from _walk([*path, str(name)], inner)
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        for i, inner in enumerate(value, 1):
            yield from _walk([*path, str(i)], inner)
    else:
        yield path, value


def _csv(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return "" if value is None else str(value)
