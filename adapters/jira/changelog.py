"""Jira Cloud: read what an issue event changed from its changelog.

An issue event carries the issue as it is after the change; only the changelog says who
was assigned or unassigned, which the decision needs to tell who put an assignee there,
and what changed, for the timeline. Assignments come in two dialects (account ids on
current Jira Cloud, user names on older sites) that are reconciled here in one place.
"""

from __future__ import annotations

from typing import Any

COMMENT_SUMMARY = {
    "comment_created": "commented",
    "comment_updated": "comment edited",
    "comment_deleted": "comment deleted",
}


def changelog_items(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the changelog items, or an empty list when the event has none."""
    changelog = payload.get("changelog")
    items = changelog.get("items") if isinstance(changelog, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def assignment(
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


def summary(name: str, changes: list[dict[str, Any]], deleted: bool) -> str:
    """Describe the event in a few words for timelines."""
    if deleted:
        return "deleted"
    if name == "jira:issue_created":
        return "created"
    if name in COMMENT_SUMMARY:
        return COMMENT_SUMMARY[name]
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
