"""The facts one decision is made from, shared by decide() and the outcome builders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from router.core.match import Facts
from router.core.model import (
    Action,
    Decision,
    Event,
    History,
    Outcome,
    TriggerHit,
    WorkItem,
)
from router.scope.load import OwnerRule, Scope


@dataclass(slots=True)
class Context:
    """Everything derived once per decision and shared by the outcome builders.

    Built by `router.core.decide`; read by `router.core.outcomes`, which turns it into
    escalate / reassign / defer / keep.
    """

    event: Event
    item: WorkItem
    scope: Scope
    history: History
    facts: Facts
    line: OwnerRule | None
    owner: str | None
    cto_account: str | None
    cto_assigned: bool
    assigner: str | None  # person key, else raw account, of whoever put the CTO there
    evidence: dict[str, Any]
    now: datetime
    pending: tuple[TriggerHit, ...] = ()

    def decision(self, outcome: Outcome, reason: str, *, actions: tuple[Action, ...] = (),
                 triggers: tuple[TriggerHit, ...] = (), cap_hours: float = 0.0,
                 exception: bool = False, handed_back: bool = False,
                 owned: bool = False) -> Decision:
        """Return the decision; `owned` says it leaves the item with a first-response
        owner other than the CTO (the first such decision records the time to owner)."""
        return Decision(outcome=outcome, reason=reason, severity=self.facts.severity,
                        owner=self.owner, scope=self.line.name if self.line else None,
                        triggers=triggers, pending=self.pending, actions=actions,
                        evidence=self.evidence, cap_hours=cap_hours, exception=exception,
                        handed_back=handed_back, assigner=self.assigner,
                        owner_minutes=self._minutes_to_owner() if owned else None)

    def _minutes_to_owner(self) -> float | None:
        """Return minutes from the item's creation to now, unless it was owned before."""
        if self.history.owned:
            return None
        created = self.item.created_at
        if self.history.created_at is not None:
            created = min(created, self.history.created_at)
        return max(0.0, (self.now - created).total_seconds() / 60.0)
