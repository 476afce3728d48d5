"""Build the outcome and actions once triggers and the owner line are known (SPEC §4).

Split from `decide` so each file holds one step: `decide` gathers the facts and
evaluates triggers; this module turns them into escalate / reassign / defer / keep.
"""

from __future__ import annotations

from datetime import datetime

from router.core.context import Context
from router.core.model import Action, Decision, TriggerHit, WorkItem
from router.scope.load import Scope

PAGE_PREFIX = "firstline/"
NEXT_CYCLE = "next-cycle"


def dedup_key(trigger_id: str, group: str | None, item: WorkItem) -> str:
    """Return the page key for a trigger and its group (or item): one page while open."""
    scope = group if group is not None else f"{item.source}:{item.id}"
    return f"{PAGE_PREFIX}{trigger_id}/{scope}"


def is_own_page(item: WorkItem, scope: Scope) -> bool:
    """Tell whether a PagerDuty incident is one of firstline's own pages (SPEC §4)."""
    return item.kind == "incident" and (
        (item.incident_key or "").startswith(PAGE_PREFIX)
        or (scope.paging_service_id is not None and item.service_id == scope.paging_service_id))


def storm_key(now: datetime) -> str:
    """Return the key of the hour's storm page, which extra escalations join."""
    return f"{PAGE_PREFIX}storm/{now.strftime('%Y-%m-%dT%H')}"


def escalation_actions(ctx: Context, fired: list[TriggerHit], now: datetime) \
        -> tuple[tuple[Action, ...], str]:
    """Return the actions of an escalation and a note for the reason.

    One page per decision, and none while a page covering this item or its group is open:
    later items join that escalation. An item already part of an open escalation gets no
    new page or comment, whichever trigger fires now.
    """
    item, history, scope = ctx.item, ctx.history, ctx.scope
    keys = [dedup_key(t.id, t.group_key, item) for t in fired]
    if history.member_of:  # the CTO is already engaged on this item: page once
        return (), f"; the item is already part of the open page {min(history.member_of)}"
    open_keys = [k for k in keys if k in history.open_pages]
    actions: list[Action] = []
    if open_keys:
        note = f"; joins the open page {open_keys[0]}"
    else:
        key, first = keys[0], fired[0]
        limit = scope.max_pages_per_hour
        if limit is not None and history.pages_last_hour >= limit:
            key, note = storm_key(now), f"; over {limit} pages this hour: joins the storm page"
        else:
            note = "; pages the CTO"
        actions.append(Action("page", to=scope.cto, dedup_key=key, trigger=first.id,
                              text=f"{first.name}: {item.key} {item.title}"))
    names = ", ".join(t.name for t in fired)
    actions.append(_remark(ctx, f"firstline: CTO trigger fired: {names}. "
                                f"{_owner_words(ctx)} keeps first response; the CTO joins.",
                           trigger=fired[0].id))
    if (not item.assignees or ctx.cto_assigned) and ctx.owner and ctx.owner != scope.cto:
        actions.extend(_hand_to_owner(ctx, with_comment=False))
    return tuple(actions), note


def route(ctx: Context) -> Decision:
    """Decide an item no trigger fires on: hand it to its owner, keep, or defer."""
    scope, item = ctx.scope, ctx.item
    if ctx.owner is None:
        return ctx.decision("keep", "No owner line matches and no trigger fires: left as it is.")
    if ctx.cto_assigned:
        if ctx.assigner == scope.cto:
            return _cto_work(ctx, "The CTO assigned it to themself: an exception, counted "
                             "against the weekly cap", exception=True)
        if ctx.history.handed_away:
            return _cto_work(ctx, f"{_who(ctx.assigner)} put it back to the CTO after "
                             "firstline handed it on: not overruled twice, counted against "
                             "the weekly cap")
        if ctx.owner == scope.cto:
            return _cto_owned(ctx)
        return ctx.decision("reassign", f"Assigned to the CTO by {_who(ctx.assigner)}; "
                            f"{_scope_words(ctx)}: handed to {ctx.owner}.",
                            actions=_hand_to_owner(ctx, with_comment=True), handed_back=True,
                            owned=True)
    if item.assignees:
        return ctx.decision("keep", f"Already with {', '.join(ctx.facts.assignees)}, not the "
                            "CTO: firstline never overrides that.", owned=True)
    if ctx.owner == scope.cto:
        return _cto_owned(ctx)
    return ctx.decision("reassign", f"Unassigned; {_scope_words(ctx)}: assigned to {ctx.owner}.",
                        actions=_hand_to_owner(ctx, with_comment=True), owned=True)


def _cto_owned(ctx: Context) -> Decision:
    """Keep CTO-owned work within the weekly cap; defer it once the cap is used up."""
    history, scope = ctx.history, ctx.scope
    cost = ctx.line.cost_hours if ctx.line else 1.0
    ctx.evidence["cap"] = {"used_hours": history.cap_used_hours, "cost_hours": cost,
                           "cap_hours": scope.cap_hours, "counted": history.charged_this_week}
    if history.charged_this_week:
        return ctx.decision("keep", f"{_scope_words(ctx)}: CTO-owned, already counted this "
                            "week; left for the CTO's scheduled block.")
    if history.cap_used_hours + cost > scope.cap_hours:
        return ctx.decision(
            "defer", f"{_scope_words(ctx)}: CTO-owned, but {history.cap_used_hours:g}h of the "
            f"{scope.cap_hours:g}h weekly cap are used and it costs {cost:g}h: waits for next "
            "week.", actions=_defer_actions(ctx))
    return ctx.decision("keep", f"{_scope_words(ctx)}: CTO-owned, within the weekly cap "
                        f"({history.cap_used_hours + cost:g}h of {scope.cap_hours:g}h); left "
                        "for the CTO's scheduled block.", cap_hours=cost)


def _cto_work(ctx: Context, reason: str, exception: bool = False) -> Decision:
    cost = 0.0 if ctx.history.charged_this_week else (ctx.line.cost_hours if ctx.line else 1.0)
    return ctx.decision("keep", reason + ".", cap_hours=cost, exception=exception)


def _defer_actions(ctx: Context) -> tuple[Action, ...]:
    text = ("firstline: this is CTO-owned work and the CTO's ad-hoc hours for this week are "
            f"used up; it waits for next week ({_scope_words(ctx)}).")
    if ctx.item.kind == "incident":  # an incident has no labels
        return (_remark(ctx, text),)
    return (_remark(ctx, text), Action("label", label=NEXT_CYCLE))


def _hand_to_owner(ctx: Context, with_comment: bool) -> tuple[Action, ...]:
    """Take the CTO off and give the item to its owner in the item's own tool."""
    assert ctx.owner is not None
    account = ctx.scope.people[ctx.owner].accounts.get(ctx.item.source)
    remove = (ctx.cto_account,) if ctx.cto_assigned and ctx.cto_account else ()
    already = account is not None and account.lower() in (a.lower() for a in ctx.item.assignees)
    actions: list[Action] = []
    if ctx.item.kind == "incident":
        if account and not already:
            actions.append(Action("reassign_incident", to=ctx.owner, account=account,
                                  remove=remove))
    elif account and not already:
        actions.append(Action("assign", to=ctx.owner, account=account, remove=remove))
    elif remove:
        actions.append(Action("unassign", remove=remove))
    if with_comment:
        gap = "" if account else f" ({ctx.owner} has no {ctx.item.source} account: please " \
            "pick it up)"
        actions.append(_remark(ctx, f"firstline: {_scope_words(ctx)}; first response is "
                                    f"{_owner_words(ctx)}{gap}.", to=ctx.owner))
    return tuple(actions)


def _remark(ctx: Context, text: str, to: str | None = None,
            trigger: str | None = None) -> Action:
    """Say something on the item in its own tool: a comment, or on a PagerDuty incident
    (which has no comments) a note. The one place that picks between the two."""
    return Action("note" if ctx.item.kind == "incident" else "comment", to=to, text=text,
                  trigger=trigger)


def _scope_words(ctx: Context) -> str:
    return f"scope line {ctx.line.name!r}" if ctx.line else "no scope line"


def _owner_words(ctx: Context) -> str:
    if ctx.owner is None:
        return "the team"
    person = ctx.scope.people[ctx.owner]
    return f"{person.name} ({ctx.owner})"


def _who(person: str | None) -> str:
    return person or "someone unknown"

