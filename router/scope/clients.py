"""Say, per tracker, which vendor clients are configured, and warn where enforce mode
needs one that is not: without it every action there dies on its first try."""

from __future__ import annotations

import logging

from router.core.model import SOURCES, Source
from router.scope.load import Scope
from router.settings import Client, Settings, clients

ITEM_CLIENTS: dict[Source, str] = {"jira": "REST API", "linear": "GraphQL API",
                                   "github": "REST API", "pagerduty": "REST API"}
PAGES: tuple[Source, str] = ("pagerduty", "Events API")


def needed(scope: Scope) -> frozenset[tuple[Source, str]]:
    """Return the (tracker, client) pairs the note acts through: the item client of each
    tracker where a person or firstline has an account, and PagerDuty's Events API when
    the note has triggers (pages)."""
    used = {s for s in SOURCES
            if scope.firstline[s] or any(s in p.accounts for p in scope.people.values())}
    pairs: set[tuple[Source, str]] = {(s, ITEM_CLIENTS[s]) for s in used}
    if scope.triggers:
        pairs.add(PAGES)
    return frozenset(pairs)


def client_lines(scope: Scope, settings: Settings) -> list[tuple[int, str]]:
    """Return one (log level, message) per tracker; WARNING where the note is in enforce
    mode and acts through a client that is not configured."""
    needs = needed(scope)
    lines = []
    for tracker in SOURCES:
        own = [c for c in clients(settings) if c.tracker == tracker]
        lacking = [c for c in own if not c.configured and (tracker, c.name) in needs]
        text = f"clients: {tracker}: " + "; ".join(_state(c) for c in own)
        if lacking and scope.mode == "enforce":
            text += (f"; enforce mode acts in {tracker} through "
                     f"{' and '.join(c.name for c in lacking)}: those actions will fail")
            lines.append((logging.WARNING, text))
        else:
            lines.append((logging.INFO, text))
    return lines


def _state(client: Client) -> str:
    if client.configured:
        return f"{client.name} configured"
    return f"{client.name} not configured (set {', '.join(client.missing)})"
