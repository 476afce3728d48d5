"""Read the issue or pull request object that GitHub's item events carry (SPEC §3).

Every event that carries an item holds the same object, so one reading serves them all
and a pull request keys one item whichever event names it (`item_id`). The outbound side
reads logins from GitHub's answers with the same `login_of`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.base import GITHUB_LABEL_SEVERITY, parse_time
from router.core.model import Kind, PayloadError, Severity, Status, WorkItem

JSON = dict[str, Any]

_STATUS: dict[str, Status] = {"open": "open", "closed": "resolved"}


def work_item(
    body: JSON,
    name: str,
    obj: JSON,
    what: str,
    kind: Kind,
    removed: bool,
    assigned: tuple[str, ...],
    unassigned: tuple[str, ...],
) -> WorkItem:
    """Read an issue or pull request object into a WorkItem (SPEC §3)."""
    repo = required_object(body, "repository", name)
    full_name = repo.get("full_name")
    if not isinstance(full_name, str) or not full_name:
        raise PayloadError("repository.full_name is missing")
    number = obj.get("number")
    if not isinstance(number, int) or isinstance(number, bool):
        raise PayloadError(f"{what}.number is missing")
    labels = _labels(obj.get("labels"))
    return WorkItem(
        source="github",
        id=item_id(_id(repo.get("id"), "repository"), number),
        key=f"{full_name}#{number}",
        url=_text(obj.get("html_url")) or None,
        kind=kind,
        project=full_name,
        title=_text(obj.get("title")),
        description=_text(obj.get("body")),
        labels=labels,
        priority=None,
        default_severity=_severity(labels),
        status="resolved" if removed else _status(obj.get("state"), what),
        assignees=_assignees(obj.get("assignees"), assigned, unassigned),
        reporter=login_of(obj.get("user")),
        created_at=_time(obj.get("created_at"), what, "created_at"),
        updated_at=_time(obj.get("updated_at"), what, "updated_at"),
        branch=_head_branch(obj),
    )


def item_id(repository_id: str, number: int) -> str:
    """Return a GitHub item's immutable id: `<repository id>#<number>`.

    A pull request reaches firstline as `pull_request` (with `pull_request.id`) and, for
    conversation comments, as `issue_comment` (with the different `issue.id`); both carry
    the repository and the number, which stay put when the repository is renamed.
    """
    return f"{repository_id}#{number}"


def _head_branch(obj: JSON) -> str | None:
    """Return a pull request's head branch (`head.ref`), or None for an issue."""
    head = obj.get("head")
    ref = head.get("ref") if isinstance(head, dict) else None
    return ref if isinstance(ref, str) and ref else None


def required_object(body: JSON, key: str, name: str) -> JSON:
    """Return body[key] as a dict, or a PayloadError naming what is missing."""
    value = body.get(key)
    if not isinstance(value, dict):
        raise PayloadError(f"GitHub {name} payload has no {key} object")
    return value


def _id(value: Any, what: str) -> str:
    """Read an immutable id (a number in GitHub's JSON) as the string WorkItem.id wants."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise PayloadError(f"{what}.id is missing")
    return str(value)


def _time(value: Any, what: str, field: str) -> datetime:
    """Parse a required timestamp; a missing or malformed one is a PayloadError.

    Like base.require_time, but the message is only built when it is needed: this runs
    twice per delivery on the hot path.
    """
    try:
        parsed = parse_time(value)
    except ValueError as exc:
        raise PayloadError(f"{what}.{field}: {exc}") from exc
    if parsed is None:
        raise PayloadError(f"{what}.{field} is missing")
    return parsed


def _text(value: Any) -> str:
    """Return a string field as sent, or "" for null (GitHub sends `body: null`)."""
    return value if isinstance(value, str) else ""


def login_of(user: Any) -> str | None:
    """Return a user object's login, the account id firstline keys GitHub people by."""
    if isinstance(user, dict):
        login = user.get("login")
        if isinstance(login, str) and login:
            return login
    return None


def _labels(raw: Any) -> frozenset[str]:
    """Lower-case the label names, since label predicates compare case-insensitively."""
    if not isinstance(raw, list):
        return frozenset()
    names = []
    for label in raw:
        name = label.get("name") if isinstance(label, dict) else label
        if isinstance(name, str):
            names.append(name.lower())
    return frozenset(names)


def _severity(labels: frozenset[str]) -> Severity:
    """Pick the most severe `sevN`/`pN` label's severity; sev4 without one (SPEC §3)."""
    fallback: Severity = "sev4"
    if labels.isdisjoint(GITHUB_LABEL_SEVERITY):
        return fallback
    return min(
        (GITHUB_LABEL_SEVERITY[label] for label in labels if label in GITHUB_LABEL_SEVERITY),
        default=fallback,
    )


def _status(state: Any, what: str) -> Status:
    """Map GitHub's open/closed state to the normalized status."""
    status = _STATUS.get(state) if isinstance(state, str) else None
    if status is None:
        raise PayloadError(f"{what}.state {state!r} is neither open nor closed")
    return status


def _assignees(raw: Any, assigned: tuple[str, ...], unassigned: tuple[str, ...]) -> tuple[str, ...]:
    """Read the `assignees` logins, made consistent with the change the event reports.

    GitHub's documented `issues.unassigned` example still lists the removed login; the
    event itself is the better witness of who was just added or taken off.
    """
    logins: list[str] = []
    for user in raw if isinstance(raw, list) else ():
        login = login_of(user)
        if login is not None and login not in unassigned and login not in logins:
            logins.append(login)
    logins.extend(login for login in assigned if login not in logins)
    return tuple(logins)

