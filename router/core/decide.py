"""Decide what to do with one event: escalate, reassign, defer, keep or ignore (SPEC §4).

`decide(event, scope, history, now)` is a pure function: the same inputs always give the
same decision, with its evidence and the actions it asks for. Performing the actions and
keeping the ledger happen elsewhere.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from router.core.context import Context
from router.core.durations import add_duration
from router.core.match import Facts
from router.core.model import (
    Action,
    Check,
    Decision,
    Event,
    History,
    Severity,
    TriggerHit,
    WorkItem,
)
from router.core.outcomes import escalation_actions, is_own_page, route
from router.scope.load import OwnerRule, Scope, local_day


def decide(event: Event, scope: Scope, history: History, now: datetime) -> Decision:
    """Return the one decision for `event`, as of `now`."""
    item = event.item
    if item is None:
        return Decision("ignore", event.ignore_reason or f"{event.event_type} carries no item")
    skip = _skip_reason(event, item, scope, history)
    if skip:
        return Decision("ignore", skip)
    ctx = _context(event, item, scope, history, now)
    fired, pending, trigger_evidence = _triggers(ctx, now)
    ctx.evidence["triggers"] = trigger_evidence
    if item.status == "resolved" or event.deleted:
        return _resolved(ctx)  # never paged, so no clock is pending either
    ctx.pending = tuple(pending)
    if fired:
        return _escalate(ctx, fired, now)
    return route(ctx)


def _skip_reason(event: Event, item: WorkItem, scope: Scope, history: History) -> str | None:
    if scope.is_firstline(item.source, event.actor):
        return f"caused by firstline's own {item.source} account: never acted on again"
    if is_own_page(item, scope):
        return "one of firstline's own pages: it updates the escalation, not routed"
    if (event.event_type != "timer" and history.newest_at and event.occurred_at
            and event.occurred_at < history.newest_at):
        return (f"stale delivery: {event.occurred_at.isoformat()} is older than the "
                f"newest state seen ({history.newest_at.isoformat()})")
    if scope.skip_label in item.labels:
        return f"carries the skip label {scope.skip_label!r}"
    return None


def _context(event: Event, item: WorkItem, scope: Scope, history: History,
             now: datetime) -> Context:
    severity, severity_evidence = _severity(item, scope)
    keys = tuple(scope.person_for(item.source, a) or a for a in item.assignees)
    reporter = scope.person_for(item.source, item.reporter) or item.reporter
    named = item.status in ("in_progress", "acknowledged") or any(
        not scope.is_firstline(item.source, _assigner_account(a, event, history))
        for a in item.assignees)
    facts = Facts(item, severity, keys, reporter, named)
    line, line_checks, skipped = _owner_line(scope, facts, now)
    owner, away_note = effective_owner(scope, line.owner if line else None, now)
    cto_account = scope.people[scope.cto].accounts.get(item.source)
    cto_assigned = cto_account is not None and cto_account.lower() in (
        a.lower() for a in item.assignees)
    assigner = None
    if cto_assigned and cto_account is not None:
        raw = _assigner_account(cto_account, event, history)
        assigner = scope.person_for(item.source, raw) or raw
    evidence: dict[str, Any] = {
        "severity": severity_evidence,
        "owner": {"line": line.name if line else None, "index": line.index if line else None,
                  "checks": line_checks, "owner": owner, **away_note, **skipped},
        "assignees": list(keys),
        "assigner": assigner,
    }
    return Context(event, item, scope, history, facts, line, owner, cto_account, cto_assigned,
                   assigner, evidence, now)


def _assigner_account(account: str, event: Event, history: History) -> str | None:
    """Return who put `account` on the item: known history, this event, else its actor."""
    low = account.lower()
    if low in history.assigned_by:
        return history.assigned_by[low]
    if history.newest_at is None or any(a.lower() == low for a in event.assigned):
        return event.actor
    return None


def _severity(item: WorkItem, scope: Scope) -> tuple[Severity, dict[str, Any]]:
    facts = Facts(item, item.default_severity, (), None, True)
    for rule in scope.severity_rules:
        result = rule.matcher(facts)
        if result.held:
            return rule.severity, {"value": rule.severity, "rule": f"severity[{rule.index}]",
                                   "because": result.because()}
    saw = f"priority {item.priority}" if item.priority else "no priority"
    return item.default_severity, {"value": item.default_severity, "rule": "default",
                                   "because": [f"{item.source} default for {saw}"]}


def _owner_line(scope: Scope, facts: Facts, now: datetime) \
        -> tuple[OwnerRule | None, tuple[Check, ...], dict[str, Any]]:
    """Return the first owner line that matches and is not past its `until`, its checks,
    and the evidence of matching lines skipped because their time-box ended."""
    skipped: list[dict[str, Any]] = []
    day = None
    for line in scope.owners:
        result = line.matcher(facts)
        if not result.held:
            continue
        if line.until is not None:
            day = day or local_day(scope, now)
            if line.expired_on(day):
                skipped.append({"line": line.name, "index": line.index,
                                "until": line.until.isoformat(), "mode": line.mode,
                                "why": f"expired: its last day was {line.until}"})
                continue
        return line, result.checks, ({"skipped": skipped} if skipped else {})
    return None, (), ({"skipped": skipped} if skipped else {})


def effective_owner(scope: Scope, owner: str | None, now: datetime) \
        -> tuple[str | None, dict[str, Any]]:
    """Return the owner, or the backup (and theirs) while the owner is away."""
    if owner is None or not scope.people[owner].away:
        return owner, {}
    day = local_day(scope, now)
    chain = [owner]
    person = scope.people[owner]
    while person.away_on(day) and person.backup and person.backup not in chain:
        chain.append(person.backup)
        person = scope.people[person.backup]
    if len(chain) == 1:
        return owner, {}
    return chain[-1], {"away": chain[:-1], "backup": chain[-1]}


def _triggers(ctx: Context, now: datetime) \
        -> tuple[list[TriggerHit], list[TriggerHit], list[dict[str, Any]]]:
    fired: list[TriggerHit] = []
    pending: list[TriggerHit] = []
    evidence: list[dict[str, Any]] = []
    for trigger in ctx.scope.triggers:
        result = trigger.matcher(ctx.facts)
        entry: dict[str, Any] = {"id": trigger.id, "held": result.held,
                                 "checks": result.checks}
        evidence.append(entry)
        if not result.held:
            continue
        because = tuple(result.because()) or ("always",)
        group = _group_key(trigger.group_by, ctx)
        if trigger.after is None:
            fired.append(TriggerHit(trigger.id, trigger.name, because, None, group))
            continue
        start = _clock_start(trigger.id, ctx)
        due = add_duration(start, trigger.after, ctx.scope.calendar)
        entry.update(clock_start=start, due=due, fired=now >= due)  # serialised by orjson
        hit = TriggerHit(trigger.id, trigger.name,
                         (*because, f"{trigger.after.text} since {start.isoformat()}"), due, group)
        (fired if now >= due else pending).append(hit)
    return fired, pending, evidence


def _clock_start(trigger_id: str, ctx: Context) -> datetime:
    """Return the later of the item's creation (or reopening) and the current stretch start."""
    item, history = ctx.item, ctx.history
    created = min(item.created_at, history.created_at) if history.created_at else item.created_at
    clock = item.reopened_at or created
    stretch = history.held_since.get(trigger_id)
    if stretch is None:
        stretch = clock if history.newest_at is None else (ctx.event.occurred_at or clock)
    return max(clock, stretch)


def _group_key(fields: tuple[str, ...], ctx: Context) -> str | None:
    if not fields:
        return None
    parts = []
    for name in fields:
        value: Any = ctx.facts.severity if name == "severity" else getattr(ctx.item, name)
        parts.append(",".join(sorted(value)) if isinstance(value, frozenset) else str(value))
    return "/".join(parts)


def _resolved(ctx: Context) -> Decision:
    actions = tuple(Action("resolve_page", dedup_key=key)
                    for key, others in sorted(ctx.history.member_of.items()) if others == 0)
    what = "deleted" if ctx.event.deleted else "resolved"
    reason = f"The item is {what}: nothing to route"
    if actions:
        reason += ", and its page is resolved"
    return ctx.decision("keep", reason + ".", actions=actions)


def _escalate(ctx: Context, fired: list[TriggerHit], now: datetime) -> Decision:
    actions, note = escalation_actions(ctx, fired, now)
    names = ", ".join(f"{t.id} ({t.name})" for t in fired)
    # The team keeps first response: its owner, or whoever (not the CTO) already has it.
    owned = (ctx.owner is not None and ctx.owner != ctx.scope.cto) or (
        bool(ctx.item.assignees) and not ctx.cto_assigned)
    return ctx.decision("escalate", f"CTO trigger {names} fired{note}.", triggers=tuple(fired),
                        actions=actions, owned=owned)
