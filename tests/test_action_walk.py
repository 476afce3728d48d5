"""Every decision asks only for actions its tool can perform: a walk of every outcome on
every source.

Each source's real fixtures are varied to reach each outcome (unassigned, handed back,
someone else's, the CTO's own choice, a trigger and its resolution, CTO-owned work past
the cap, firstline's own deliveries, events without an item) and replayed
through `simulate`, so timers fire and escalations resolve as in the service. For every
action of every decision the walk asks the outbox's routing (`adapters.base.performer`)
which tool performs it and asks that tool's adapter whether it knows the action type:
a new action type, or a new kind of decision, is checked without changing this file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import get_args

from adapters import outbound_adapters
from adapters.base import performer
from router.core.model import Event, Outcome, Source, WorkItem
from router.core.simulate import Delivery, Step, simulate
from router.scope.load import Scope
from router.settings import Settings
from tests.support import example_scope, fixture_event, scope_with

SCOPE = example_scope()
# The CTO owns everything: CTO-owned work is kept within the weekly cap, then deferred.
CTO_OWNS = scope_with(owners=[{"name": "Everything to the CTO", "owner": "cto"}])
OTHER = "eng-lead"  # a person with an account in every tool, not the CTO

# A real delivery per source that carries an item, and one that carries none.
ITEMS: dict[Source, tuple[str, ...]] = {
    "jira": ("issue_created",),
    "linear": ("Issue.create.unassigned", "Issue.create"),
    "github": ("issues.opened", "pull_request.opened"),
    "pagerduty": ("incident.triggered", "incident.priority_updated"),
}
NO_ITEM: dict[Source, tuple[str, str | None]] = {
    "jira": ("comment_created", None),
    "linear": ("Comment.create", None),
    "github": ("ping", "ping"),
    "pagerduty": ("incident.annotated", None),
}

Variant = Callable[[Event], list[Event]]


def _account(person: str, source: Source) -> str:
    return SCOPE.people[person].accounts[source]


def _at(event: Event, item: WorkItem, minutes: float = 0, *, actor: str | None = None,
        assigned: tuple[str, ...] = ()) -> Event:
    """Return the event with this item state, `minutes` after the real event."""
    assert event.occurred_at is not None
    when = event.occurred_at + timedelta(minutes=minutes)
    return replace(event, item=replace(item, updated_at=when), occurred_at=when, actor=actor,
                   assigned=assigned, unassigned=(), deleted=False)


def _item(event: Event) -> WorkItem:
    assert event.item is not None
    return event.item


def _triggering(item: WorkItem) -> WorkItem:
    """Make the item meet an instant trigger the way its tool would say so."""
    if item.kind == "incident":  # a P1 incident is sev1: `many-users`
        return replace(item, priority="P1")
    return replace(item, labels=item.labels | {"legal"})


def unassigned(event: Event) -> list[Event]:
    return [_at(event, replace(_item(event), assignees=()))]


def handed_back_twice(event: Event) -> list[Event]:
    """Someone gives it to the CTO; firstline hands it on; they give it back again."""
    cto, other = _account(SCOPE.cto, event.source), _account(OTHER, event.source)
    item = replace(_item(event), assignees=(cto,))
    return [_at(event, item, actor=other, assigned=(cto,)),
            _at(event, item, 1, actor=other, assigned=(cto,))]


def someone_elses(event: Event) -> list[Event]:
    other = _account(OTHER, event.source)
    return [_at(event, replace(_item(event), assignees=(other,)), actor=other,
                assigned=(other,))]


def the_ctos_choice(event: Event) -> list[Event]:
    cto = _account(SCOPE.cto, event.source)
    return [_at(event, replace(_item(event), assignees=(cto,)), actor=cto, assigned=(cto,))]


def triggered_then_resolved(event: Event) -> list[Event]:
    """A trigger fires on an item given to the CTO; later the item is resolved."""
    cto, other = _account(SCOPE.cto, event.source), _account(OTHER, event.source)
    item = replace(_triggering(_item(event)), assignees=(cto,))
    return [_at(event, item, actor=other, assigned=(cto,)),
            _at(event, replace(item, status="resolved"), 60, actor=other)]


def firstlines_own(event: Event) -> list[Event]:
    return [_at(event, _item(event), actor=sorted(SCOPE.firstline[event.source])[0])]


def past_the_cap(event: Event) -> list[Event]:
    """Seven unassigned items of an hour each against a six-hour weekly cap."""
    base = replace(_item(event), assignees=())
    return [_at(event, replace(base, id=f"{base.id}-{n}", key=f"{base.key}-{n}"), n / 10)
            for n in range(7)]


VARIANTS: dict[str, tuple[Variant, Scope]] = {
    "unassigned": (unassigned, SCOPE),
    "handed back twice": (handed_back_twice, SCOPE),
    "someone else's": (someone_elses, SCOPE),
    "the CTO's own choice": (the_ctos_choice, SCOPE),
    "triggered then resolved": (triggered_then_resolved, SCOPE),
    "firstline's own": (firstlines_own, SCOPE),
    "CTO-owned past the cap": (past_the_cap, CTO_OWNS),
}


def walk() -> Iterator[tuple[Source, str, Step]]:
    """Yield every decision of every variant of every source's fixtures, timers included."""
    for source, names in ITEMS.items():
        for name in names:
            real = fixture_event(source, name)
            for label, (variant, scope) in VARIANTS.items():
                deliveries = [Delivery(f"{name} {label} {n}", e)
                              for n, e in enumerate(variant(real))]
                for step in simulate(deliveries, scope):
                    yield source, f"{name}, {label}", step
        itemless, event_type = NO_ITEM[source]
        for step in simulate([Delivery(itemless, fixture_event(source, itemless, event_type))],
                             SCOPE):
            yield source, itemless, step


def test_every_decision_asks_only_for_actions_its_tool_performs() -> None:
    adapters = outbound_adapters(Settings())
    seen: set[tuple[str, str]] = set()
    refused: list[str] = []
    for source, variant, step in walk():
        seen.add((source, step.decision.outcome))
        for action in step.decision.actions:
            tool = performer(action.type, source)
            adapter = adapters.get(tool)
            if adapter is None or action.type not in adapter.actions:
                refused.append(f"{variant}: {step.decision.outcome} asks {tool} for "
                               f"{action.type}")
    assert refused == []
    every = {(source, outcome) for source in get_args(Source) for outcome in get_args(Outcome)}
    assert every - seen == set()
