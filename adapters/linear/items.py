"""Linear: turn an Issue delivery's data into the normalized WorkItem (SPEC §3).

This is the part of parsing that knows Linear's issue fields (priority numbers, workflow
state types, identifiers that older deliveries leave out); `inbound.parse()` decides
which deliveries carry an issue's state and hands their `data` here. Plain dict access,
as in the rest of parsing: `parse()` runs about a hundred thousand times a second in
`replay`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from adapters.base import LINEAR_SEVERITY, optional_time, require_time
from router.core.model import PayloadError, Severity, Status, WorkItem

# SPEC §3: workflow state type -> normalized status. An unknown type or a missing state
# reads as open, so a new kind of state cannot hide an issue from the triggers.
_STATUS: dict[str, Status] = {
    "triage": "open",
    "backlog": "open",
    "unstarted": "open",
    "started": "in_progress",
    "completed": "resolved",
    "canceled": "resolved",
}

# An issue's identifier inside a linear.app URL: /issue/WEB-44/... or /issue/WEB-46#...
_URL_KEY = re.compile(r"/issue/([A-Za-z0-9]+-\d+)")


def work_item(data: dict[str, Any], url: Any, deleted: bool) -> WorkItem:
    """Build the normalized item from an Issue's data (SPEC §3)."""
    issue_id = data.get("id")
    if not isinstance(issue_id, str) or not issue_id:
        raise PayloadError("linear: data.id is missing")
    team = data.get("team")
    key = _key(data, team, url)
    number = data.get("priority")
    assignee = opt_str(data, "assigneeId") or id_of(data.get("assignee"))
    return WorkItem(
        source="linear",
        id=issue_id,
        key=key,
        url=url if isinstance(url, str) and url else None,
        kind="ticket",
        project=opt_str(team, "key") or key.rpartition("-")[0],
        title=opt_str(data, "title") or "",
        description=opt_str(data, "description") or "",
        labels=_labels(data.get("labels")),
        priority=priority_name(data.get("priorityLabel"), number),
        default_severity=default_severity(number),
        status="resolved" if deleted else _status(data.get("state")),
        assignees=(assignee,) if assignee else (),
        reporter=opt_str(data, "creatorId"),
        created_at=_required_time(data.get("createdAt"), "data.createdAt"),
        updated_at=_changed_at(data, deleted),
    )


def _changed_at(data: dict[str, Any], removed: bool) -> datetime:
    """Return when the issue last changed, which orders its deliveries (SPEC §6).

    A removal keeps the `updatedAt` of the last update before it and carries its own time
    in `archivedAt`: ordered by `updatedAt` it would tie with (or sort before) the update
    it follows, and that update, arriving late, would bring the removed issue back.
    """
    updated = _required_time(data.get("updatedAt"), "data.updatedAt")
    archived = opt_time(data.get("archivedAt"), "data.archivedAt") if removed else None
    return max(updated, archived) if archived is not None else updated


def default_severity(priority: Any) -> Severity:
    """Map Linear's priority number to SPEC §3's default severity.

    0 is "No priority" and maps to sev4 like 4 (Low); a missing or unknown value does
    too, so an unreadable priority never pages anyone by default.
    """
    if isinstance(priority, bool) or not isinstance(priority, int | float):
        return "sev4"
    return LINEAR_SEVERITY.get(int(priority), "sev4")


def priority_name(label: Any, number: Any) -> str | None:
    """Return the raw priority name: Linear's label, else the number as text."""
    if isinstance(label, str) and label:
        return label
    return None if number is None else str(number)


def _key(data: dict[str, Any], team: Any, url: Any) -> str:
    """Return the identifier people read: `identifier`, else team key + number.

    Older deliveries lack `identifier`; without a team object the URL still holds it.
    """
    identifier = data.get("identifier")
    if isinstance(identifier, str) and identifier:
        return identifier
    team_key, number = opt_str(team, "key"), data.get("number")
    if team_key and isinstance(number, int) and not isinstance(number, bool):
        return f"{team_key}-{number}"
    from_url = key_from_url(url)
    if from_url is None:
        raise PayloadError("linear: data.identifier (or data.team.key and data.number) is missing")
    return from_url


def _status(state: Any) -> Status:
    """Read the workflow state type; a missing state or unknown type counts as open."""
    kind = state.get("type") if isinstance(state, dict) else None
    return _STATUS.get(kind, "open") if isinstance(kind, str) else "open"


def _labels(labels: Any) -> frozenset[str]:
    """Return the label names lower-cased, since scope-note matching ignores case."""
    if not isinstance(labels, list):
        return frozenset()
    return frozenset(
        label["name"].lower()
        for label in labels
        if isinstance(label, dict) and isinstance(label.get("name"), str)
    )


def id_of(obj: Any) -> str | None:
    """Return an object's `id`, or None."""
    return opt_str(obj, "id")


def opt_str(obj: Any, field: str) -> str | None:
    """Return a non-empty string field of an object, or None."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(field)
    return value if isinstance(value, str) and value else None


def key_from_url(url: Any) -> str | None:
    """Read an issue identifier such as WEB-46 out of a linear.app URL."""
    if not isinstance(url, str):
        return None
    match = _URL_KEY.search(url)
    return match.group(1) if match else None


def opt_time(value: Any, what: str) -> datetime | None:
    """Read an optional timestamp, refusing one that is present but unreadable."""
    return optional_time(value, f"linear: {what}")


def _required_time(value: Any, what: str) -> datetime:
    """Read a timestamp the item cannot do without, naming the field when it is missing."""
    return require_time(value, f"linear: {what}")
