"""Present decisions to people and scripts: the JSON object of SPEC §5 and table rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from router.core.model import Decision, Event, WorkItem
from router.scope.load import Scope


def dumps(obj: Any) -> str:
    """Return one line of JSON; evidence `Check`s and datetimes serialise natively."""
    return orjson.dumps(obj).decode()


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def item_json(item: WorkItem, scope: Scope, decision: Decision, actor: str | None) \
        -> dict[str, Any]:
    """Return the normalized item (SPEC §3), accounts shown as person keys where known."""
    def person(account: str | None) -> str | None:
        return scope.person_for(item.source, account) or account

    return {
        "source": item.source, "id": item.id, "key": item.key, "url": item.url,
        "kind": item.kind, "project": item.project, "title": item.title,
        "description": item.description, "labels": sorted(item.labels),
        "priority": item.priority, "severity": decision.severity or item.default_severity,
        "status": item.status,
        "assignees": [person(a) or a for a in item.assignees],
        "reporter": person(item.reporter),
        "created_at": iso(item.created_at), "updated_at": iso(item.updated_at),
        "actor": person(actor),
    }


def decision_json(event: Event, decision: Decision, scope: Scope) -> dict[str, Any]:
    """Return the `explain --json` object for one decided event."""
    ignored = decision.outcome == "ignore"
    return {
        "outcome": decision.outcome,
        "severity": decision.severity,
        "owner": None if ignored else decision.owner,
        "scope": None if ignored else decision.scope,
        "triggers": [{"id": t.id, "name": t.name, "because": list(t.because)}
                     for t in decision.triggers],
        "pending": [{"id": t.id, "due": iso(t.due)} for t in decision.pending],
        "actions": [a.as_dict() for a in decision.actions],
        "item": item_json(event.item, scope, decision, event.actor) if event.item else None,
        "reason": decision.reason,
        "event": {"source": event.source, "type": event.event_type,
                  "at": iso(event.occurred_at), "summary": event.summary or None},
        "evidence": decision.evidence,
        "scope_hash": scope.hash,
    }


def table_row(at: datetime | None, event: Event, decision: Decision, origin: str) \
        -> list[str]:
    """Return one replay table row: when, what, outcome, to whom, why."""
    key = event.item.key if event.item else (event.ref.key or event.ref.id if event.ref else "-")
    fired = ",".join(t.id for t in decision.triggers) or "-"
    return [
        at.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ") if at else "-",
        event.event_type if event.event_type.startswith(event.source) else
        f"{event.source}:{event.event_type}",
        key,
        decision.outcome,
        decision.owner or "-" if decision.outcome != "ignore" else "-",
        fired,
        origin,
    ]


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = [" ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
           for r in [header, *rows]]
    return "\n".join(out)
