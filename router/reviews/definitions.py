"""One-line definitions of every figure in the monthly review and the exception log.

Shown under each figure in the Markdown and given under `definitions` in the JSON, so
nobody has to guess what "time to owner" counts or from which timestamps.
"""

from __future__ import annotations

from router.reviews.monthly import MonthlyReport


def monthly_definitions(report: MonthlyReport) -> dict[str, str]:
    """Return the definition of each figure, with the note's timezone, cap and week start."""
    tz, cap, week_starts = report.timezone, f"{report.cap_hours_per_week:g}h", report.week_starts
    would = " (in shadow mode: the pages firstline would have sent)" \
        if report.mode == "shadow" else ""
    return {
        "weeks": (
            f"Hours charged to the CTO's weekly cap in each week that starts in the month "
            f"(weeks start {week_starts}, {tz}), by the event time of the decision that "
            "charged them: CTO-owned work its line's cost once per item and week (the CTO's "
            "own assignments and put-backs too), each escalation its page's "
            f"acknowledged->resolved time (1h until both are known); over cap: above {cap}."),
        "escalations": (
            f"Pages to the CTO{would}, one per page however many items joined it, in the "
            f"month ({tz}) of the event that fired the trigger; by trigger: the trigger that "
            "opened the page."),
        "escalation_times": (
            "Per escalation: to acknowledge = page decided -> PagerDuty's acknowledgement; CTO "
            "time = acknowledged -> resolved, by PagerDuty's own timestamps; hours = what "
            "the page charged to the cap."),
        "handed_back": (
            "Items someone else assigned to the CTO that firstline gave to their scope "
            "line's owner; by source: the item's tool; by who: the person who assigned it "
            "to the CTO, else the item's reporter when it was decided."),
        "top_senders": (
            "People who put work on the CTO at least twice this month: hand-backs, plus "
            "items put back on the CTO after firstline handed them on."),
        "exceptions": (
            "Decisions on items the CTO assigned to themself: kept, counted against the "
            "cap, listed here."),
        "deferred": (
            "Items of CTO-owned lines that waited for next week because the cap was used up "
            "(an item counts once per scope line)."),
        "time_to_owner_minutes": (
            "Minutes from an item's creation (the source's created_at) to the event time of "
            "the first decision that left it with a first-response owner other than the "
            "CTO: firstline handed it to the scope line's owner, an escalation kept the team "
            "on it, or a person other than the CTO already had it; items whose first owner "
            "came this month, per source; median and p90 by nearest rank (rank ceil(p*n))."),
        "scope_lines": (
            "Distinct items decided under each owner line this month; reached the CTO: of "
            "those, items paged, assigned to the CTO, CTO-owned or deferred under the line."),
        "time_boxed": (
            "Owner lines with an until date; hours: CTO hours charged under the line this "
            "month; ran past its stop: items still matched it after its last day (skipped "
            "as expired), or CTO hours were charged under it after that day."),
        "catch_all": (
            "Distinct items that only the last, match-everything owner line took this "
            "month, by the item's project and labels when the line last took it."),
        "triggers_fired": (
            "Decisions each trigger fired on this month, items joining an open page "
            "included; 0: the trigger never fired."),
        "away_without_backup": (
            "People with away days in the month and no backup in the scope note."),
        "decisions": "Every decision on an event of the month, by outcome.",
    }


EXCEPTION_LOG = (
    "Every time the CTO's time was spent, in the month of the event decided on: each "
    "escalation (its trigger; hours = the page's acknowledged->resolved time, 1h until "
    "known), each time the CTO assigned work to themself (\"CTO took it\"), each item put "
    "back on the CTO after firstline handed it on, and each CTO-owned item charged to the "
    "weekly cap (its scope line; hours = the line's cost, once per item and week). "
    "Follow-up owner: the first-response owner (the backup while away).")
