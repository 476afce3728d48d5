"""Outbound: act on Linear issues (assign, unassign, comment, label, file a review issue).

Every action reads the issue first and writes only what is missing, so a retry after a
crash between performing and recording changes nothing twice. Sending an operation and
classifying Linear's answer live in `client`, so each action reads as the steps it takes.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import SecretStr

from adapters.base import (
    Created,
    OutboundAction,
    Result,
    Stop,
    marker,
    scrubbed,
)
from adapters.linear.client import (
    ADD_LABEL,
    CREATE_COMMENT,
    CREATE_ISSUE,
    CREATE_LABEL,
    FIND_COMMENT,
    FIND_ISSUE,
    ISSUE_STATE,
    SET_ASSIGNEE,
    TEAM_BY_KEY,
    TEAM_LABEL,
    LinearClient,
    get,
    nodes,
)
from router.settings import Settings

TIMEOUT = 10.0  # seconds, on every call


class LinearOutbound:
    """Perform outbox actions on Linear issues (assign, unassign, comment, label) and
    file review tickets."""

    def __init__(self, api_url: str, api_key: SecretStr | None,
                 transport: httpx.BaseTransport | None = None, timeout: float = TIMEOUT,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = api_key
        self._api = LinearClient(api_url, api_key, transport, timeout, clock)

    @property
    def actions(self) -> frozenset[str]:
        """Name the action types Linear performs here (the outbox routes only these)."""
        return frozenset(_STEPS)

    def perform(self, action: OutboundAction) -> Result:
        """Perform one action once; report vendor trouble as a Result, never raise it."""
        step = _STEPS.get(action.type)
        if step is None:
            return Result("permanent", f"linear: {action.type} on {action.target.key} "
                                       "is not a Linear action")
        if self._key is None:
            return Result("permanent", "linear: FIRSTLINE_LINEAR_API_KEY is not set")
        try:
            return step(self, action)
        except Stop as stop:
            return scrubbed(stop.result, [self._key.get_secret_value()])

    # -- actions --------------------------------------------------------------------

    def _assign(self, action: OutboundAction) -> Result:
        """Make `action.account` the assignee (Linear has one), replacing the CTO but no one
        a person chose since the decision: firstline never overrides that (SPEC §4)."""
        account = _required(action.account, action, "an account")
        current = _assignee(self._issue(action))
        if current == account:
            return Result("ok", f"linear: {action.target.key} is already assigned to {account}")
        if current is not None and current not in action.remove:
            return Result("ok", f"linear: {action.target.key} left alone, {current} was "
                                "assigned since")
        return self._set_assignee(action, account)

    def _unassign(self, action: OutboundAction) -> Result:
        """Clear the assignee, but only while it is one of the accounts to remove."""
        current = _assignee(self._issue(action))
        if current is None or current not in action.remove:
            return Result("ok", f"linear: {action.target.key} is not assigned to "
                                "an account to remove")
        return self._set_assignee(action, None)

    def _comment(self, action: OutboundAction) -> Result:
        """Post the comment unless a previous attempt already did.

        The marker is the comment's own id, derived from the action (see `comment_id`):
        it is invisible to readers and cannot be edited away, unlike text in the body.
        A first try has nothing to look for.
        """
        body = _required(action.text, action, "comment text")
        comment = comment_id(action)
        if not action.first_try and self._comment_exists(action, comment):
            return Result("ok", f"linear: the comment on {action.target.key} already exists")
        data = self._api.call(action, CREATE_COMMENT,
                              {"input": {"id": comment, "issueId": action.target.id, "body": body}})
        payload = get(data, "commentCreate")
        if get(payload, "success") is not True or get(payload, "comment", "id") != comment:
            raise Stop(Result("retryable", f"linear: comment {action.target.key}: "
                                            "Linear did not confirm the comment"))
        return Result("ok", f"linear: commented on {action.target.key}")

    def _label(self, action: OutboundAction) -> Result:
        """Add the team's label (created if the team lacks it) unless the issue has it."""
        name = _required(action.label, action, "a label name")
        issue = self._issue(action)
        if any(_same_name(label, name) for label in nodes(get(issue, "labels"))):
            return Result("ok", f"linear: {action.target.key} already has label {name}")
        team = get(issue, "team", "id")
        if not isinstance(team, str):
            raise Stop(Result("permanent", f"linear: label {action.target.key}: "
                                            "the issue has no team"))
        label = self._team_label(action, team, name) or self._create_label(action, team, name)
        data = self._api.call(action, ADD_LABEL, {"id": action.target.id, "labelId": label})
        labels = nodes(get(data, "issueUpdate", "issue", "labels"))
        if get(data, "issueUpdate", "success") is not True or not any(
                get(node, "id") == label for node in labels):
            raise Stop(Result("retryable", f"linear: label {action.target.key}: "
                                            "Linear did not confirm the label"))
        return Result("ok", f"linear: labelled {action.target.key} {name}")

    def _file_review(self, action: OutboundAction) -> Result:
        """Create the review issue in the team `target.project` (its key), assigned to
        `account`, with the team's labels (created if missing), unless an earlier attempt
        did: the issue's id is derived from the action (`issue_id`), so a retry asks for
        exactly that issue."""
        title = _required(action.title, action, "a title")
        team_key = _required(action.target.project, action, "a team")
        issue = issue_id(action)
        found = None if action.first_try else self._found_issue(action, issue)
        if found is None:
            team = self._team(action, team_key)
            labels = [self._team_label(action, team, name)
                      or self._create_label(action, team, name) for name in action.labels]
            fields: dict[str, Any] = {"id": issue, "teamId": team, "title": title,
                                      "description": action.text or "", "labelIds": labels}
            if action.account:
                fields["assigneeId"] = action.account
            data = self._api.call(action, CREATE_ISSUE, {"input": fields})
            found = get(data, "issueCreate", "issue")
            if get(data, "issueCreate", "success") is not True or get(found, "id") != issue:
                raise Stop(Result("retryable", f"linear: file_review in {team_key}: Linear "
                                               "did not confirm the issue"))
        created = Created(str(get(found, "identifier") or issue), get(found, "url"))
        return Result("ok", f"linear: filed {created.key}", created=created)

    def _found_issue(self, action: OutboundAction, issue: str) -> dict[str, Any] | None:
        """Return the issue with this id (archived too) if it exists."""
        found = nodes(get(self._api.call(action, FIND_ISSUE, {"id": issue}), "issues"))
        return found[0] if found else None

    def _team(self, action: OutboundAction, key: str) -> str:
        """Return the id of the team with this key."""
        teams = nodes(get(self._api.call(action, TEAM_BY_KEY, {"key": key}), "teams"))
        team = get(teams[0], "id") if teams else None
        if not isinstance(team, str):
            raise Stop(Result("permanent", f"linear: file_review: no team with key {key!r}"))
        return team

    # -- steps ----------------------------------------------------------------------

    def _comment_exists(self, action: OutboundAction, comment: str) -> bool:
        """Tell whether the issue already has the comment with this id (archived too)."""
        found = self._api.call(action, FIND_COMMENT, {"id": action.target.id, "commentId": comment})
        return bool(nodes(get(found, "issue", "comments")))

    def _issue(self, action: OutboundAction) -> dict[str, Any]:
        """Read the issue's assignee, team and labels."""
        issue = get(self._api.call(action, ISSUE_STATE, {"id": action.target.id}), "issue")
        if not isinstance(issue, dict):
            raise Stop(Result("permanent", f"linear: {action.type} {action.target.key}: "
                                            "the issue was not found"))
        return issue

    def _set_assignee(self, action: OutboundAction, account: str | None) -> Result:
        """Write the assignee and check that Linear reports it back."""
        data = self._api.call(action, SET_ASSIGNEE, {"id": action.target.id, "assigneeId": account})
        payload = get(data, "issueUpdate")
        if get(payload, "success") is not True or _assignee(get(payload, "issue")) != account:
            raise Stop(Result("retryable", f"linear: {action.type} {action.target.key}: "
                                            "Linear did not confirm the assignee"))
        done = f"assigned {action.target.key} to {account}" if account else \
            f"unassigned {action.target.key}"
        return Result("ok", f"linear: {done}")

    def _team_label(self, action: OutboundAction, team: str, name: str) -> str | None:
        """Return the id of the team's label with this name (any case), or None."""
        data = self._api.call(action, TEAM_LABEL, {"teamId": team, "name": name})
        for node in nodes(get(data, "team", "labels")):
            if _same_name(node, name) and isinstance(node.get("id"), str):
                return str(node["id"])
        return None

    def _create_label(self, action: OutboundAction, team: str, name: str) -> str:
        """Create the team's label; if Linear refuses, another writer may have just made it."""
        try:
            data = self._api.call(action, CREATE_LABEL, {"input": {"name": name, "teamId": team}})
        except Stop as stop:
            found = self._team_label(action, team, name) if stop.result.status == "permanent" \
                else None
            if found is None:
                raise
            return found
        label = get(data, "issueLabelCreate", "issueLabel", "id")
        if get(data, "issueLabelCreate", "success") is not True or not isinstance(label, str):
            raise Stop(Result("retryable", f"linear: label {action.target.key}: "
                                            f"Linear did not confirm creating label {name}"))
        return label


_STEPS: dict[str, Callable[[LinearOutbound, OutboundAction], Result]] = {
    "assign": LinearOutbound._assign,
    "unassign": LinearOutbound._unassign,
    "comment": LinearOutbound._comment,
    "label": LinearOutbound._label,
    "file_review": LinearOutbound._file_review,
}


def outbound(settings: Settings, transport: httpx.BaseTransport | None = None) -> LinearOutbound:
    """Build the Linear outbound adapter from settings; no client is made yet."""
    return LinearOutbound(settings.linear_api_url, settings.linear_api_key, transport)


def comment_id(action: OutboundAction) -> str:
    """Return the id a comment for this action gets, so a retry can look it up.

    Linear's `commentCreate` accepts a client-chosen id in UUID v4 format; this one is
    the action's marker and the issue id hashed into that format. Nothing about it shows
    in the comment, and HTML comments in Linear's markdown are not documented as hidden.
    """
    digest = hashlib.sha256(f"{marker(action.id)}:{action.target.id}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def issue_id(action: OutboundAction) -> str:
    """Return the id a review issue for this action gets, so a retry can look it up:
    `issueCreate` takes a client-chosen UUID v4 id, as `commentCreate` does."""
    digest = hashlib.sha256(f"{marker(action.id)}:{action.target.id}:issue".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _required(value: str | None, action: OutboundAction, what: str) -> str:
    """Return a field the action needs, or stop with a permanent failure naming it."""
    if not value:
        raise Stop(Result("permanent", f"linear: {action.type} {action.target.key}: "
                                        f"the action carries no {what}"))
    return value


def _assignee(issue: Any) -> str | None:
    """Return the issue's assignee id, or None when unassigned."""
    value = get(issue, "assignee", "id")
    return value if isinstance(value, str) else None


def _same_name(label: Any, name: str) -> bool:
    """Tell whether a label node has this name, ignoring case as Linear's filter does."""
    value = get(label, "name")
    return isinstance(value, str) and value.casefold() == name.casefold()
