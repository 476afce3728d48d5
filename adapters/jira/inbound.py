"""Jira Cloud. Inbound: verify `X-Hub-Signature`, read the delivery id, parse a webhook.

Jira puts its event type in the body (`webhookEvent`), so `parse()` ignores the header
argument. Issue events (`jira:issue_created`/`_updated`/`_deleted`) carry the full issue
and become a `WorkItem`; comment events carry a slim issue (summary, project, status...,
but no `created`, `updated`, labels or reporter) and are ignored with a reference to the
issue, unless the site sends the full issue, which is then decided on. Events with no
issue at all (projects, sprints, versions...) are ignored.

Parsing is plain dict access: `parse()` runs about a hundred thousand times a second in
`replay`, so there is no schema layer here.

Outbound, `outbound(settings)` returns a `JiraOutbound` that performs assign, unassign,
comment and label actions through REST API v2 (see the section at the end of the file).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from adapters.base import (
    JIRA_SEVERITY,
    Headers,
    InboundAdapter,
    SignatureError,
    VerifyContext,
    optional_time,
    require_time,
)
from router.core.model import Event, ItemRef, PayloadError, Severity, Status, WorkItem

SIGNATURE_HEADER = "x-hub-signature"
DELIVERY_HEADER = "x-atlassian-webhook-identifier"

# WebSub `method=signature`: Jira Cloud sends sha256; Data Center documents sha256 as the
# default algorithm, so the other SHA-2 sizes are accepted too. sha1 is not.
_ALGORITHMS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}

# SPEC §3: status category key -> normalized status. Jira's "undefined" category and a
# missing category read as open: the issue has not been started or finished.
_STATUS: dict[str, Status] = {"new": "open", "indeterminate": "in_progress", "done": "resolved"}

# Fields a full issue has and the slim issue of a comment event lacks.
_FULL_ISSUE_FIELDS = ("status", "created", "updated")

_COMMENT_SUMMARY = {
    "comment_created": "commented",
    "comment_updated": "comment edited",
    "comment_deleted": "comment deleted",
}


# -- verify -------------------------------------------------------------------------


def verify(body: bytes, headers: Headers, ctx: VerifyContext) -> None:
    """Refuse a delivery unless `X-Hub-Signature` is an HMAC of the body under a secret.

    The header reads `sha256=<hex>` (WebSub `method=signature`). Every configured secret
    is tried, so a secret can be rotated without dropping deliveries.
    """
    header = headers.get(SIGNATURE_HEADER)
    if not header:
        raise SignatureError("jira: X-Hub-Signature header is missing")
    method, sep, received = header.strip().partition("=")
    digestmod = _ALGORITHMS.get(method.lower())
    if not sep or digestmod is None:
        raise SignatureError("jira: X-Hub-Signature is malformed (expected sha256=<hex>)")
    received = received.lower()
    if len(received) != 2 * digestmod().digest_size or not _is_hex(received):
        raise SignatureError("jira: X-Hub-Signature is malformed (expected sha256=<hex>)")
    if not ctx.secrets:
        raise SignatureError("jira: no webhook secret is configured")
    for secret in ctx.secrets:
        expected = hmac.new(secret, body, digestmod).hexdigest()
        if hmac.compare_digest(expected, received):
            return
    raise SignatureError("jira: X-Hub-Signature matches none of the configured secrets")


def _is_hex(text: str) -> bool:
    """Tell whether text is lower-case hex, so a malformed header is named as such."""
    return all(c in "0123456789abcdef" for c in text)


def delivery_id(headers: Headers) -> str | None:
    """Return Jira's delivery id, which stays the same across retries of one delivery."""
    return headers.get(DELIVERY_HEADER) or None


# -- parse --------------------------------------------------------------------------


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
    changes = _changelog(payload)
    assigned, unassigned = _assignment(changes, payload, fields)
    return Event(
        source="jira",
        event_type=name,
        occurred_at=occurred_at,
        actor=actor,
        item=_item(issue, fields, deleted),
        deleted=deleted,
        assigned=assigned,
        unassigned=unassigned,
        summary=_summary(name, changes, deleted),
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
        ref=ItemRef(source="jira", id=_required_str(issue, "id"), key=_opt_str(issue, "key")),
        ignore_reason=f"a Jira {name} event carries a slim issue without its state",
        summary=_COMMENT_SUMMARY.get(name, name),
    )


def _item(issue: dict[str, Any], fields: dict[str, Any], deleted: bool) -> WorkItem:
    """Build the normalized item from a full issue (SPEC §3)."""
    key = _required_str(issue, "key")
    priority = _name(fields.get("priority"))
    assignee = _account(fields.get("assignee"))
    return WorkItem(
        source="jira",
        id=_required_str(issue, "id"),
        key=key,
        url=_browse_url(issue.get("self"), key),
        kind="ticket",
        project=_opt_str(fields.get("project"), "key"),
        title=_opt_str(fields, "summary") or "",
        description=_text(fields.get("description")),
        labels=_labels(fields.get("labels")),
        priority=priority,
        default_severity=default_severity(priority),
        status="resolved" if deleted else _status(fields.get("status")),
        assignees=(assignee,) if assignee else (),
        reporter=_account(fields.get("reporter")),
        created_at=_required_time(fields.get("created"), "issue.fields.created"),
        updated_at=_required_time(fields.get("updated"), "issue.fields.updated"),
    )


def default_severity(priority: str | None) -> Severity:
    """Map a priority name to SPEC §3's default severity.

    SPEC names only Highest, High, Medium, Low and Lowest. Any other name (a custom
    scheme's "Blocker") and a missing priority give sev4, the least severe, so that an
    unknown priority never pages anyone by default; scope-note `severity:` rules can
    match the raw `priority` name to say otherwise.
    """
    if priority is None:
        return "sev4"
    return JIRA_SEVERITY.get(priority.lower(), "sev4")


def _labels(labels: Any) -> frozenset[str]:
    """Return the labels lower-cased, since scope-note matching ignores case."""
    if not isinstance(labels, list):
        return frozenset()
    return frozenset(label.lower() for label in labels if isinstance(label, str))


def _status(status: Any) -> Status:
    """Read the status category; a missing or unknown category counts as open."""
    if not isinstance(status, dict):
        return "open"
    category = status.get("statusCategory")
    key = category.get("key") if isinstance(category, dict) else None
    return _STATUS.get(key, "open") if isinstance(key, str) else "open"


def _browse_url(self_url: Any, key: str) -> str | None:
    """Build the page a person opens from the REST `self` link's site and the key."""
    if not isinstance(self_url, str) or "/rest/" not in self_url:
        return None
    return f"{self_url.partition('/rest/')[0]}/browse/{key}"


def _actor(payload: dict[str, Any], name: str) -> str | None:
    """Return who caused the event: the body's `user`, else the comment's author.

    Comment events from Jira Cloud have no `user`; an edit is caused by `updateAuthor`.
    """
    actor = _account(payload.get("user"))
    if actor is not None:
        return actor
    comment = payload.get("comment")
    if not isinstance(comment, dict):
        return None
    if name == "comment_updated":
        actor = _account(comment.get("updateAuthor"))
    return actor or _account(comment.get("author"))


def _account(user: Any) -> str | None:
    """Return a user's accountId, or the pre-GDPR `name`/`key` when it has none."""
    if not isinstance(user, dict):
        return None
    for field in ("accountId", "name", "key"):
        value = user.get(field)
        if isinstance(value, str) and value:
            return value
    return None


def _changelog(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the changelog items, or an empty list when the event has none."""
    changelog = payload.get("changelog")
    items = changelog.get("items") if isinstance(changelog, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def _assignment(
    changes: list[dict[str, Any]], payload: dict[str, Any], fields: dict[str, Any]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Read who was assigned and unassigned from the changelog's `assignee` items.

    Current Jira Cloud sends account ids (`tmpToAccountId`, or in `to`); older sites
    sent user names in `from`/`to`, which are mapped to the account id of a user in the
    same payload with that name, so they compare equal to `assignees`.
    """
    assigned: list[str] = []
    unassigned: list[str] = []
    for change in changes:
        if change.get("field") != "assignee" and change.get("fieldId") != "assignee":
            continue
        new = change.get("tmpToAccountId") or _by_name(change.get("to"), payload, fields)
        old = change.get("tmpFromAccountId") or _by_name(change.get("from"), payload, fields)
        if isinstance(new, str) and new:
            assigned.append(new)
        if isinstance(old, str) and old:
            unassigned.append(old)
    return tuple(assigned), tuple(unassigned)


def _by_name(value: Any, payload: dict[str, Any], fields: dict[str, Any]) -> Any:
    """Map a legacy user name to the accountId of a user in the payload, if any."""
    if not isinstance(value, str) or not value:
        return value
    for user in (
        fields.get("assignee"),
        payload.get("user"),
        fields.get("reporter"),
        fields.get("creator"),
    ):
        if isinstance(user, dict) and value in (user.get("name"), user.get("key")):
            return user.get("accountId") or value
    return value


def _summary(name: str, changes: list[dict[str, Any]], deleted: bool) -> str:
    """Describe the event in a few words for timelines."""
    if deleted:
        return "deleted"
    if name == "jira:issue_created":
        return "created"
    if name in _COMMENT_SUMMARY:
        return _COMMENT_SUMMARY[name]
    parts = [p for p in (_describe(c) for c in changes) if p]
    if parts:
        return "; ".join(parts)
    return "updated" if name == "jira:issue_updated" else name


def _describe(change: dict[str, Any]) -> str | None:
    """Describe one changelog item, or None for fields timelines do not show."""
    field = str(change.get("field") or "").lower()
    old, new = change.get("fromString"), change.get("toString")
    if field == "assignee":
        to = new or change.get("tmpToAccountId") or change.get("to")
        return f"assigned to {to}" if to else "unassigned"
    if field == "priority":
        return f"priority {old} -> {new}" if old else f"priority {new}"
    if field == "status":
        return f"status {new}"
    if field == "labels":
        return f"labels {new}" if new else "labels removed"
    return None


def _worklog_ref(payload: dict[str, Any]) -> ItemRef | None:
    """Name the issue of an issue-less event that points at one (worklogs do)."""
    worklog = payload.get("worklog")
    issue_id = worklog.get("issueId") if isinstance(worklog, dict) else None
    return ItemRef(source="jira", id=str(issue_id)) if issue_id else None


def _name(obj: Any) -> str | None:
    """Return the `name` of a Jira object such as a priority, or None."""
    if isinstance(obj, dict):
        name = obj.get("name")
        if isinstance(name, str) and name:
            return name
    return None


def _text(value: Any) -> str:
    """Return a description as text: wiki-markup strings as sent, ADF documents flattened.

    Webhooks send the v2 string form; the Atlassian Document Format of API v3 is read
    too, so the scope note's `text` predicate sees the words either way. The document is
    walked with a stack, not by recursion: JSON may nest a thousand levels deep.
    """
    if isinstance(value, str):
        return value
    words: list[str] = []
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            words.append(node)
        elif isinstance(node, dict):
            text = node.get("text")
            content = node.get("content")
            if isinstance(text, str):
                words.append(text)
            elif isinstance(content, list):
                stack.extend(reversed(content))
    return " ".join(word for word in words if word)


def _time(value: Any, what: str) -> datetime | None:
    """Read an optional timestamp, refusing one that is present but unreadable."""
    return optional_time(value, f"jira: {what}")


def _required_time(value: Any, what: str) -> datetime:
    """Read a timestamp the item cannot do without, naming the field when it is missing."""
    return require_time(value, f"jira: {what}")


def _required_str(obj: dict[str, Any], field: str) -> str:
    """Return a required id-like field as a string, or say which one is missing."""
    value = obj.get(field)
    if value is None or value == "" or isinstance(value, dict | list | bool):
        raise PayloadError(f"jira: issue.{field} is missing")
    return str(value)


def _opt_str(obj: Any, field: str) -> str | None:
    """Return an optional string field of an object, or None."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(field)
    return str(value) if value not in (None, "") else None


adapter = InboundAdapter(source="jira", verify=verify, delivery_id=delivery_id, parse=parse)
