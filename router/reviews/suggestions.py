"""Scope-note suggestions for the monthly review: one sentence each, with its figure.

The first is always "Set one change for next month", naming the biggest lever found;
the rest follow in the order they weigh on the CTO's time: weeks over the cap, people
who keep sending work to the CTO, work only the catch-all line took, time-boxed stints
that ended or ran over, triggers that never fired, people away with no backup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.reviews.monthly import MonthlyReport

Found = tuple[str, str]  # (the figure in a few words, the sentence)
TOP_GROUPS = 2


def suggest(report: MonthlyReport) -> list[str]:
    """Return the review's suggestions, "Set one change for next month" first."""
    if not report.decisions:
        return ["Set one change for next month: firstline recorded no decisions this month, "
                "so first check that the trackers' webhooks reach it."]
    found = [*_over_cap(report), *_senders(report), *_catch_all(report), *_stints(report),
             *_never_fired(report), *_away(report)]
    if found:
        first = f"Set one change for next month, starting with the biggest: {found[0][0]}."
    else:
        first = (f"Set one change for next month: nothing stood out ({len(report.escalations)} "
                 f"escalations, {report.cto_hours:g} CTO hours), so keep the scope note as "
                 "it is.")
    return [first, *(sentence for _, sentence in found)]


def _over_cap(report: MonthlyReport) -> list[Found]:
    out = []
    for week in report.weeks:
        if week.over_cap:
            figure = (f"the week of {week.start} used {week.cto_hours:g} CTO hours against "
                      f"the {report.cap_hours_per_week:g}h cap")
            out.append((figure, f"{figure[0].upper()}{figure[1:]}: look at what charged it "
                        "(the exception log) and move the biggest part to a team owner."))
    return out


def _senders(report: MonthlyReport) -> list[Found]:
    out = []
    for who, n in report.top_senders:
        figure = f"{who} put {_n(n, 'item')} on the CTO this month"
        out.append((figure, f"{_n(n, 'item')} were put on the CTO by {who} this month: agree "
                    f"with {who} which owner line that work belongs to, and add a line if "
                    "none fits."))
    return out


def _catch_all(report: MonthlyReport) -> list[Found]:
    c = report.catch_all
    if c is None or c.items == 0:
        return []
    groups = [f"project {p} {n}" for p, n in list(c.by_project.items())[:TOP_GROUPS]]
    groups += [f"label {label} {n}" for label, n in list(c.by_label.items())[:TOP_GROUPS]]
    most = f" (most: {', '.join(groups)})" if groups else ""
    figure = f"{_n(c.items, 'item')} matched only the catch-all line {c.line!r}{most}"
    return [(figure, f"{figure[0].upper()}{figure[1:]}: give the biggest group an owner line "
             "of its own.")]


def _stints(report: MonthlyReport) -> list[Found]:
    out = []
    for s in report.time_boxed:
        kind = f"{s.mode} stint" if s.mode else "time-boxed line"
        if s.ran_past_stop:
            figure = (f"the {kind} {s.line!r} ended on {s.until} but "
                      f"{_n(s.items_after_stop, 'item')} still matched it afterwards "
                      f"({s.hours_after_stop:g} CTO hours charged under it after its stop)")
            advice = "renew it with a new until, or give that work a permanent owner line."
        elif s.ended:
            figure = f"the {kind} {s.line!r} ended on {s.until}"
            advice = "remove the line from the scope note."
        else:
            continue
        out.append((figure, f"{figure[0].upper()}{figure[1:]}: {advice}"))
    return out


def _never_fired(report: MonthlyReport) -> list[Found]:
    silent = [t for t, n in report.triggers_fired.items() if n == 0]
    if not silent:
        return []
    figure = (f"{len(silent)} of {len(report.triggers_fired)} triggers never fired this month "
              f"({', '.join(silent)})")
    return [(figure, f"{figure[0].upper()}{figure[1:]}: check each still matches how the team "
             "labels such work, or drop it.")]


def _away(report: MonthlyReport) -> list[Found]:
    out = []
    for who, days in report.away_without_backup.items():
        figure = f"{who} was away {_n(days, 'day')} this month with no backup"
        out.append((figure, f"Nobody backs up {who}, who was away {_n(days, 'day')} this "
                    "month: name a backup in the scope note."))
    return out


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
