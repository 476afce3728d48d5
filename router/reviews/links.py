"""Find the items linked to an escalation: those that name an escalated item, or that it
names, across the four tools.

People link work by writing its name: a Jira key or Linear identifier (`OPS-1`, `WEB-44`)
in a pull request's title, body or branch (`ops-1-fix-checkout`), a GitHub reference
(`acme/shop#7`, or its URL), a tracker URL in an incident's title or description (a Jira
`/browse/OPS-1` or Linear `/issue/WEB-44/...` URL holds the key; a PagerDuty URL ends in
`/incidents/<id>`). Only items firstline has stored are found, and a name counts only as a
whole word: `OPS-1` is not named by `OPS-10`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, select

from router.core.model import WorkItem
from router.db.item_json import item_from_json
from router.db.tables import items

_TRACKER_KEY = re.compile(r"(?<![A-Za-z0-9])([A-Za-z][A-Za-z0-9]{0,9}-[0-9]+)(?![0-9])")
_GITHUB_REF = re.compile(r"(?<![\w.-])([\w.-]+/[\w.-]+)#([0-9]+)(?![0-9])")
_GITHUB_URL = re.compile(r"github\.com/([\w.-]+/[\w.-]+)/(?:issues|pull)/([0-9]+)(?![0-9])")
_INCIDENT_URL = re.compile(r"/incidents/([A-Z0-9]{5,})(?![A-Za-z0-9])")


@dataclass(frozen=True, slots=True)
class Linked:
    """An item linked to an escalated one, and how: `names OPS-1` or `named by OPS-1`."""

    item: WorkItem
    via: str


def linked_items(conn: Connection, members: Sequence[WorkItem]) -> list[Linked]:
    """Return the stored items that name an escalated item or that one names, once each."""
    own = {(m.source, m.id) for m in members}
    found: dict[tuple[str, str], Linked] = {}
    for member in members:
        for other in _named_by(conn, member):
            if (other.source, other.id) not in own:
                found.setdefault((other.source, other.id), Linked(other, f"names {member.key}"))
        for other in _stored(conn, items.c.key.in_(sorted(references(member)))):
            if (other.source, other.id) not in own:
                found.setdefault((other.source, other.id),
                                 Linked(other, f"named by {member.key}"))
    return sorted(found.values(), key=lambda link: (link.item.source, link.item.key))


def references(item: WorkItem) -> set[str]:
    """Return the item keys an item's title, description or branch names."""
    keys: set[str] = set()
    for text in _texts(item):
        keys |= {m.upper() for m in _TRACKER_KEY.findall(text)}
        keys |= {f"{repo}#{n}" for repo, n in _GITHUB_REF.findall(text)}
        keys |= {f"{repo}#{n}" for repo, n in _GITHUB_URL.findall(text)}
        keys |= set(_INCIDENT_URL.findall(text))
    keys.discard(item.key)
    return keys


def names(text: str, item: WorkItem) -> bool:
    """Tell whether a text names the item (its key, or for GitHub its URL path)."""
    return any(_whole(needle).search(text) for needle in _needles(item))


def _named_by(conn: Connection, member: WorkItem) -> list[WorkItem]:
    """Return the stored items whose text names `member` (a LIKE narrows, a regex decides)."""
    out: dict[tuple[str, str], WorkItem] = {}
    for needle in _needles(member):
        for other in _stored(conn, items.c.state.ilike(f"%{_escaped(needle)}%", escape="\\")):
            if any(names(text, member) for text in _texts(other)):
                out[(other.source, other.id)] = other
    return list(out.values())


def _needles(item: WorkItem) -> list[str]:
    """Return the strings other items use to name `item`."""
    if item.source == "github" and "#" in item.key:
        repo, _, number = item.key.partition("#")
        return [item.key, f"{repo}/issues/{number}", f"{repo}/pull/{number}"]
    return [item.key]


def _whole(needle: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(needle)}(?![0-9])", re.IGNORECASE)


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _texts(item: WorkItem) -> Iterable[str]:
    return [t for t in (item.title, item.description, item.branch) if t]


def _stored(conn: Connection, where: ColumnElement[bool]) -> list[WorkItem]:
    rows = conn.execute(select(items.c.state).where(where))
    return [item_from_json(state) for (state,) in rows]
