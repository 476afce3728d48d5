"""Jira Cloud: turn a full issue into the normalized WorkItem (SPEC §3).

This is the part of parsing that knows Jira's issue fields (priority names, status
categories, ADF descriptions, pre-GDPR user names); `inbound.parse()` decides which
events carry a full issue and hands it here, and `outbound` reads an assignee with the
same `account_id()`. Plain dict access, as in the rest of parsing: `parse()` runs about
a hundred thousand times a second in `replay`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.base import JIRA_SEVERITY, require_time
from router.core.model import PayloadError, Severity, Status, WorkItem

# SPEC §3: status category key -> normalized status. Jira's "undefined" category and a
# missing category read as open: the issue has not been started or finished.
_STATUS: dict[str, Status] = {"new": "open", "indeterminate": "in_progress", "done": "resolved"}


def work_item(issue: dict[str, Any], fields: dict[str, Any], deleted: bool) -> WorkItem:
    """Build the normalized item from a full issue (SPEC §3)."""
    key = required_str(issue, "key")
    priority = _name(fields.get("priority"))
    assignee = account_id(fields.get("assignee"))
    return WorkItem(
        source="jira",
        id=required_str(issue, "id"),
        key=key,
        url=_browse_url(issue.get("self"), key),
        kind="ticket",
        project=opt_str(fields.get("project"), "key"),
        title=opt_str(fields, "summary") or "",
        description=_text(fields.get("description")),
        labels=_labels(fields.get("labels")),
        priority=priority,
        default_severity=default_severity(priority),
        status="resolved" if deleted else _status(fields.get("status")),
        assignees=(assignee,) if assignee else (),
        reporter=account_id(fields.get("reporter")),
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


def account_id(user: Any) -> str | None:
    """Return a user's accountId, or the pre-GDPR `name`/`key` when it has none."""
    if not isinstance(user, dict):
        return None
    for field in ("accountId", "name", "key"):
        value = user.get(field)
        if isinstance(value, str) and value:
            return value
    return None


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


def _required_time(value: Any, what: str) -> datetime:
    """Read a timestamp the item cannot do without, naming the field when it is missing."""
    return require_time(value, f"jira: {what}")


def required_str(obj: dict[str, Any], field: str) -> str:
    """Return a required id-like field as a string, or say which one is missing."""
    value = obj.get(field)
    if value is None or value == "" or isinstance(value, dict | list | bool):
        raise PayloadError(f"jira: issue.{field} is missing")
    return str(value)


def opt_str(obj: Any, field: str) -> str | None:
    """Return an optional string field of an object, or None."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(field)
    return str(value) if value not in (None, "") else None
