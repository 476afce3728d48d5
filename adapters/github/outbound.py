"""Outbound: act in github.

Pull requests use the issue endpoints for assignees, labels and comments, addressed by
the item's key (`owner/repo#number`), never by its id. Sending each request and reading
GitHub's refusals is `client`'s, shared by every action here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from adapters.base import Created, OutboundAction, Result, Stop, marker
from adapters.github.client import TIMEOUT, GitHubClient, what
from adapters.github.items import login_of
from router.settings import Settings

_KEY = re.compile(r"(?P<owner>[^/\s#]+)/(?P<repo>[^/\s#]+)#(?P<number>\d+)")
_REPO = re.compile(r"[^/\s#]+/[^/\s#]+")
_REVIEW_PAGES = 10  # 1,000 newest issues: where a retry looks for an earlier review
_MAX_COMMENT_PAGES = 100  # 10,000 comments: past that the marker is not looked for


class GitHubOutbound(GitHubClient):
    """Assign, unassign, comment on and label GitHub issues and pull requests.

    Reads come before writes (assignees, comment markers), and writes are checked
    against GitHub's answer: it drops assignees it cannot assign without saying so.
    """

    @property
    def actions(self) -> frozenset[str]:
        """Name the action types GitHub performs here (the outbox routes only these)."""
        return frozenset(_HANDLERS)

    def perform(self, action: OutboundAction) -> Result:
        """Perform one action; vendor trouble becomes a Result, never an exception."""
        handler = _HANDLERS.get(action.type)
        if handler is None:
            return Result("permanent", f"{what(action)}: not a GitHub action")
        try:
            path = _repo_path(action) if action.type == "file_review" else _issue_path(action)
            result = handler(self, action, path)
        except Stop as stop:
            result = stop.result
        return self._scrubbed(result)

    # -- actions ------------------------------------------------------------------

    def _assign(self, action: OutboundAction, path: str) -> Result:
        """Add `account` as an assignee after taking the CTO (`remove`) off."""
        login = _required(action, action.account, "account")
        assigned = _logins(self._object(action, self._call(action, "GET", path)).get("assignees"))
        stale = [r for r in action.remove if _has(assigned, r) and r.lower() != login.lower()]
        if _has(assigned, login) and not stale:
            return Result("ok", f"{what(action)}: {login} is already assigned")
        if stale:
            self._remove(action, path, stale)
        if _has(assigned, login):
            return Result("ok", f"{what(action)}: removed {', '.join(stale)}")
        body = {"assignees": [login]}
        answer = self._object(action, self._call(action, "POST", f"{path}/assignees", body))
        if not _has(_logins(answer.get("assignees")), login):
            return Result("permanent", f"{what(action)}: GitHub did not assign {login}: it "
                          "drops assignees without push access to the repository")
        return Result("ok", f"{what(action)}: assigned {login}")

    def _unassign(self, action: OutboundAction, path: str) -> Result:
        """Take `remove` off the assignees (removing someone not assigned is harmless)."""
        if not action.remove:
            return Result("ok", f"{what(action)}: nobody to remove")
        self._remove(action, path, list(action.remove))
        return Result("ok", f"{what(action)}: removed {', '.join(action.remove)}")

    def _comment(self, action: OutboundAction, path: str) -> Result:
        """Post the comment with its marker unless an earlier attempt already did (a
        first try has nothing to look for)."""
        text = _required(action, action.text, "text")
        tag = comment_marker(action.id)
        if not action.first_try and self._commented(action, path, tag):
            return Result("ok", f"{what(action)}: already commented")
        self._call(action, "POST", f"{path}/comments", {"body": f"{text}\n\n{tag}"})
        return Result("ok", f"{what(action)}: commented")

    def _label(self, action: OutboundAction, path: str) -> Result:
        """Add the label; GitHub keeps labels a set, so a repeat changes nothing."""
        label = _required(action, action.label, "label")
        body = {"labels": [label]}
        answer = self._json(action, self._call(action, "POST", f"{path}/labels", body))
        labels = answer if isinstance(answer, list) else []
        names = [str(x.get("name")) for x in labels if isinstance(x, dict)]
        if not _has(names, label):
            return Result("permanent", f"{what(action)}: GitHub did not add label {label}")
        return Result("ok", f"{what(action)}: labelled {label}")

    def _file_review(self, action: OutboundAction, path: str) -> Result:
        """Open the review issue, assigned to `account`, unless an earlier attempt did: its
        body carries the action's marker, looked for among the repository's newest issues
        (with the review's labels). GitHub drops an assignee it may not assign without
        saying so: that is a failure, naming the issue that was made."""
        title = _required(action, action.title, "title")
        tag = comment_marker(action.id)
        found = None if action.first_try else self._find_review(action, path, tag)
        if found is None:
            body: dict[str, Any] = {"title": title, "body": f"{action.text or ''}\n\n{tag}",
                                    "labels": list(action.labels)}
            if action.account:
                body["assignees"] = [action.account]
            found = self._object(action, self._call(action, "POST", f"{path}/issues", body))
        number = found.get("number")
        created = Created(f"{path.removeprefix('/repos/')}#{number}",
                          str(found.get("html_url") or "") or None)
        if action.account and not _has(_logins(found.get("assignees")), action.account):
            return Result("permanent", f"{what(action)}: opened {created.key}, but GitHub did "
                          f"not assign {action.account}: it drops assignees without push "
                          "access to the repository", created=created)
        return Result("ok", f"{what(action)}: filed {created.key}", created=created)

    def _find_review(self, action: OutboundAction, path: str, tag: str) -> dict[str, Any] | None:
        """Return the issue whose body carries `tag`, among the newest issues, or None."""
        query = "state=all&sort=created&direction=desc&per_page=100"
        if action.labels:
            query += "&labels=" + ",".join(action.labels)
        url: str | None = f"{path}/issues?{query}"
        for _ in range(_REVIEW_PAGES):
            if url is None:
                return None
            response = self._call(action, "GET", url)
            page = self._json(action, response)
            for issue in page if isinstance(page, list) else ():
                body = issue.get("body") if isinstance(issue, dict) else None
                if isinstance(body, str) and tag in body:
                    found: dict[str, Any] = issue
                    return found
            url = response.links.get("next", {}).get("url")
        return None

    # -- helpers ------------------------------------------------------------------

    def _remove(self, action: OutboundAction, path: str, logins: list[str]) -> None:
        """Remove assignees and check they are gone (GitHub ignores what it may not do)."""
        answer = self._object(action, self._call(
            action, "DELETE", f"{path}/assignees", {"assignees": logins}
        ))
        left = [x for x in logins if _has(_logins(answer.get("assignees")), x)]
        if left:
            raise Stop(Result("permanent", f"{what(action)}: GitHub did not remove "
                               f"{', '.join(left)}: it needs push access to the repository"))

    def _commented(self, action: OutboundAction, path: str, tag: str) -> bool:
        """Look for the marker in every comment, following the `Link: rel="next"` pages."""
        url: str | None = f"{path}/comments?per_page=100"
        for _ in range(_MAX_COMMENT_PAGES):
            if url is None:
                return False
            response = self._call(action, "GET", url)
            page = self._json(action, response)
            for comment in page if isinstance(page, list) else ():
                body = comment.get("body") if isinstance(comment, dict) else None
                if isinstance(body, str) and tag in body:
                    return True
            url = response.links.get("next", {}).get("url")
        raise Stop(Result("permanent", f"{what(action)}: too many comments to check for "
                           "an earlier attempt's marker"))


_Handler = Callable[[GitHubOutbound, OutboundAction, str], Result]
_HANDLERS: dict[str, _Handler] = {
    "assign": GitHubOutbound._assign,
    "unassign": GitHubOutbound._unassign,
    "comment": GitHubOutbound._comment,
    "label": GitHubOutbound._label,
    "file_review": GitHubOutbound._file_review,
}


def outbound(settings: Settings, timeout: float = TIMEOUT) -> GitHubOutbound:
    """Return the GitHub outbound adapter; it opens no connection until its first action."""
    return GitHubOutbound(settings, timeout=timeout)


def comment_marker(action_id: int) -> str:
    """Return the HTML comment that marks a comment as this action's (hidden when rendered)."""
    return f"<!-- {marker(action_id)} -->"


def _issue_path(action: OutboundAction) -> str:
    """Turn `owner/repo#12` into `/repos/owner/repo/issues/12`, or stop as permanent."""
    found = _KEY.fullmatch(action.target.key)
    if found is None:
        detail = f"{what(action)}: not a GitHub item key (owner/repo#number)"
        raise Stop(Result("permanent", detail))
    return f"/repos/{found['owner']}/{found['repo']}/issues/{found['number']}"


def _repo_path(action: OutboundAction) -> str:
    """Turn the review's `owner/repo` (target.project) into `/repos/owner/repo`."""
    repo = action.target.project or ""
    if not _REPO.fullmatch(repo):
        detail = f"{what(action)}: {repo!r} is not a GitHub repository (owner/repo)"
        raise Stop(Result("permanent", detail))
    return f"/repos/{repo}"


def _required(action: OutboundAction, value: str | None, field: str) -> str:
    """Return a field the action cannot do without, or stop it as permanent."""
    if not value:
        raise Stop(Result("permanent", f"{what(action)}: the action has no {field}"))
    return value


def _logins(users: Any) -> list[str]:
    """Read the logins of a list of user objects."""
    return [x for x in (login_of(u) for u in users) if x] if isinstance(users, list) else []


def _has(logins: list[str], login: str) -> bool:
    """Tell whether a login is among others; GitHub logins ignore case."""
    return login.lower() in (x.lower() for x in logins)
