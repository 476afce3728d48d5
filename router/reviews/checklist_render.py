"""Render a review checklist (router.reviews.checklist.Review) as JSON or Markdown.

The JSON holds every key of SPEC §9 (`id`, `triggers`, `items`, `timeline`,
`follow_up_owner`, `cto_minutes`, `questions`, `prevention`) and what the review adds:
the page's state and times, each trigger's evidence, linked items, what is missing, the
review ticket. The Markdown is the same review for people, times in the scope note's
timezone; it is also the body of the review ticket.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from router.reviews.checklist import Review
from router.reviews.timeline import Line

PAGE_WORDS = {
    "shadow": "never sent: shadow mode",
    "pending": "not sent yet (pending)",
    "sent": "sent",
    "dead": "never sent: its action failed (dead)",
}


def review_json(review: Review) -> dict[str, Any]:
    """Return the review as the JSON object of SPEC §9, with the review's extra keys."""
    return {
        "id": review.id,
        "status": review.status,
        "page": {"state": review.page_state, "sent_at": _iso(review.page_sent_at)},
        "paged_at": _iso(review.paged_at),
        "acknowledged_at": _iso(review.acknowledged_at),
        "resolved_at": _iso(review.resolved_at),
        "triggers": [{"id": t.id, "name": t.name, "because": list(t.because), "item": t.item,
                      "at": _iso(t.at), "decision_id": t.decision_id}
                     for t in review.triggers],
        "items": [{"source": i.source, "key": i.key, "url": i.url, "title": i.title,
                   "linked": i.linked, "via": i.via} for i in review.items],
        "timeline": [{"at": _iso(ln.at), "source": ln.source, "key": ln.key,
                      "event": ln.event, "linked": ln.linked} for ln in review.timeline],
        "follow_up_owner": review.follow_up_owner,
        "follow_up_why": review.follow_up_why,
        "cto_minutes": review.cto_minutes,
        "minutes_to_acknowledge": review.minutes_to_acknowledge,
        "minutes_to_resolve": review.minutes_to_resolve,
        "questions": list(review.questions),
        "prevention": list(review.prevention),
        "missing": list(review.missing),
        "review_ticket": ({"state": review.ticket.state, "key": review.ticket.key,
                           "url": review.ticket.url} if review.ticket else None),
        "timezone": review.timezone,
    }


def review_markdown(review: Review) -> str:
    """Return the review as Markdown: facts first, then the questions to answer."""
    tz = ZoneInfo(review.timezone)
    title = review.triggers[0].name if review.triggers else "escalation"
    out = [f"# Review of escalation {review.id}: {title}", ""]
    out += _summary(review, tz)
    out += ["", "## Items", ""]
    for item in review.items:
        link = f" <{item.url}>" if item.url else ""
        linked = f" (linked: {item.via})" if item.linked else ""
        out.append(f"- {item.source} **{item.key}** {item.title}{link}{linked}".rstrip())
    out += ["", "## Why the CTO was paged", ""]
    for t in review.triggers:
        because = "; ".join(t.because) if t.because else "evidence not stored"
        out.append(f"- **{t.id}** ({t.name}): on {t.item} at {_local(t.at, tz)}, "
                   f"because {because}")
    out += ["", f"## Timeline ({review.timezone})", ""]
    out += _timeline(review.timeline, tz)
    if review.missing:
        out += ["", "## Missing from the records", ""]
        out += [f"- {gap}" for gap in review.missing]
    out += ["", "## Review (15-30 minutes)", ""]
    for n, question in enumerate(review.questions, 1):
        out.append(f"{n}. {question}")
    out += [f"   - [ ] {answer}" for answer in review.prevention]  # under the last question
    return "\n".join(out) + "\n"


def _summary(review: Review, tz: ZoneInfo) -> list[str]:
    page = PAGE_WORDS.get(review.page_state, review.page_state)
    if review.page_state == "sent" and review.page_sent_at:
        page += f" {_local(review.page_sent_at, tz)}"
    owner = review.follow_up_owner or "unknown"
    lines = [
        f"- Status: {review.status}; the CTO's page: {page} "
        f"(decided {_local(review.paged_at, tz)})",
        f"- Follow-up owner: {owner} ({review.follow_up_why})",
        f"- CTO time (page acknowledged to resolved): {_mins(review.cto_minutes)}",
        f"- Time to acknowledge: {_mins(review.minutes_to_acknowledge)}; "
        f"time to resolve: {_mins(review.minutes_to_resolve)}",
    ]
    if review.ticket is not None:
        where = review.ticket.key or "not filed yet"
        if review.ticket.url:
            where += f" <{review.ticket.url}>"
        lines.append(f"- Review ticket: {where} ({review.ticket.state})")
    return lines


def _timeline(lines: tuple[Line, ...], tz: ZoneInfo) -> list[str]:
    if not lines:
        return ["(nothing stored)"]
    out = ["| when | source | item | what |", "| --- | --- | --- | --- |"]
    for ln in lines:
        key = f"{ln.key} (linked)" if ln.linked else ln.key
        out.append(f"| {_local(ln.at, tz)} | {ln.source} | {_cell(key)} | {_cell(ln.event)} |")
    return out


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _mins(value: float | None) -> str:
    return "unknown" if value is None else f"{value:g} min"


def _local(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
