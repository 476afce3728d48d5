"""Jira Cloud. Inbound: parse a webhook (`signature` verifies it and reads its delivery id).

Jira puts its event type in the body (`webhookEvent`), so `parse()` ignores the header
argument. Issue events (`jira:issue_created`/`_updated`/`_deleted`) carry the full issue
and become a `WorkItem`; comment events carry a slim issue (summary, project, status...,
but no `created`, `updated`, labels or reporter) and are ignored with a reference to the
issue, unless the site sends the full issue, which is then decided on. Events with no
issue at all (projects, sprints, versions...) are ignored.

Parsing is plain dict access: `parse()` runs about a hundred thousand times a second in
`replay`, so there is no schema layer here.

The event's envelope (its type, actor, the issue it names) is read here; the issue's own
fields in `items`, what an update changed in `changelog`, so each module knows one part
of Jira's format.

Outbound, `outbound(settings)` returns a `JiraOutbound` that performs its actions
through REST API v2 (see `outbound` and `client`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.base import InboundAdapter, optional_time
from adapters.jira.changelog import COMMENT_SUMMARY, assignment, changelog_items, summary
from adapters.jira.items import account_id, opt_str, required_str, work_item
from adapters.jira.signature import delivery_id, verify
from router.core.model import Event, ItemRef, PayloadError

# Fields a full issue has and the slim issue of a comment event lacks.
_FULL_ISSUE_FIELDS = ("status", "created", "updated")


def parse(payload: Any, event_type: str | None) -> Event:
    """Turn a Jira webhook body into an Event; the event type is read from the body.

    Raises PayloadError naming the field when the JSON is not a Jira delivery.
    """
    if not isinstance(payload, dict):
        raise PayloadError("jira: payload is not a JSON object")
    name = payload.get("webhookEvent")
    if not isinstance(name, str) or not name:
        raise PayloadError("jira: webhookEvent is missing; not a Jira webhook delivery")
    occurred_at = _time(payload.get("timestamp"), "timestamp")
    actor = _actor(payload, name)
    issue = payload.get("issue")
    if issue is None and name.startswith("jira:issue_"):
        raise PayloadError(f"jira: issue is missing from a {name} event")
    if issue is None:
        return Event(
            source="jira",
            event_type=name,
            occurred_at=occurred_at,
            actor=actor,
            item=None,
            ref=_worklog_ref(payload),
            ignore_reason=f"a Jira {name} event carries no issue",
            summary=name,
        )
    if not isinstance(issue, dict):
        raise PayloadError("jira: issue is not an object")
    fields = issue.get("fields")
    if not isinstance(fields, dict):
        raise PayloadError("jira: issue.fields is missing")
    if "status" not in fields or "created" not in fields or "updated" not in fields:
        missing = next(f for f in _FULL_ISSUE_FIELDS if f not in fields)
        return _slim(issue, name, missing, occurred_at, actor)
    deleted = name == "jira:issue_deleted"
    changes = changelog_items(payload)
    assigned, unassigned = assignment(changes, payload, fields)
    return Event(
        source="jira",
        event_type=name,
        occurred_at=occurred_at,
        actor=actor,
        item=work_item(issue, fields, deleted),
        deleted=deleted,
        assigned=assigned,
        unassigned=unassigned,
        summary=summary(name, changes, deleted),
    )


def _slim(
    issue: dict[str, Any],
    name: str,
    missing: str,
    occurred_at: datetime | None,
    actor: str | None,
) -> Event:
    """Name the issue of an event that carries no issue state, or refuse a broken one.

    A comment's slim issue is expected; an issue event without its state is not Jira.
    """
    if name.startswith("jira:issue_"):
        raise PayloadError(f"jira: issue.fields.{missing} is missing from a {name} event")
    return Event(
        source="jira",
        event_type=name,
        occurred_at=occurred_at,
        actor=actor,
        item=None,
        ref=ItemRef(source="jira", id=required_str(issue, "id"), key=opt_str(issue, "key")),
        ignore_reason=f"a Jira {name} event carries a slim issue without its state",
        summary=COMMENT_SUMMARY.get(name, name),
    )


def _actor(payload: dict[str, Any], name: str) -> str | None:
    """Return who caused the event: the body's `user`, else the comment's author.

    Comment events from Jira Cloud have no `user`; an edit is caused by `updateAuthor`.
    """
    actor = account_id(payload.get("user"))
    if actor is not None:
        return actor
    comment = payload.get("comment")
    if not isinstance(comment, dict):
        return None
    if name == "comment_updated":
        actor = account_id(comment.get("updateAuthor"))
    return actor or account_id(comment.get("author"))


def _worklog_ref(payload: dict[str, Any]) -> ItemRef | None:
    """Name the issue of an issue-less event that points at one (worklogs do)."""
    worklog = payload.get("worklog")
    issue_id = worklog.get("issueId") if isinstance(worklog, dict) else None
    return ItemRef(source="jira", id=str(issue_id)) if issue_id else None


def _time(value: Any, what: str) -> datetime | None:
    """Read an optional timestamp, refusing one that is present but unreadable."""
    return optional_time(value, f"jira: {what}")


adapter = InboundAdapter(source="jira", verify=verify, delivery_id=delivery_id, parse=parse)
