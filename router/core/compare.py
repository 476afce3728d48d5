"""Compare two simulations of the same deliveries under two scope notes (`replay --compare`).

Pure: `compare()` takes the steps of both runs and returns every decision that differs
and each run's totals, which `firstline replay --compare` prints and the dashboard's
what-if renders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from router.core.model import OUTCOMES
from router.core.simulate import Step


@dataclass(frozen=True, slots=True)
class Summary:
    """What a decision comes to, for comparing: outcome, owner, triggers, pages."""

    outcome: str
    owner: str | None
    triggers: tuple[str, ...]
    pages: int

    def words(self) -> str:
        fired = f" [{','.join(self.triggers)}]" if self.triggers else ""
        return f"{self.outcome} {self.owner or '-'}{fired}"

    def as_dict(self) -> dict[str, object]:
        return {"outcome": self.outcome, "owner": self.owner, "triggers": list(self.triggers),
                "pages": self.pages}


@dataclass(frozen=True, slots=True)
class Change:
    """One delivery (or timer firing) decided differently; None: no such decision."""

    origin: str
    event_type: str
    key: str | None  # the item's key, when there is an item
    old: Summary | None
    new: Summary | None


@dataclass(frozen=True, slots=True)
class Totals:
    decisions: int
    by_outcome: dict[str, int]
    pages: int

    def line(self, label: str) -> str:
        parts = ", ".join(f"{o} {self.by_outcome.get(o, 0)}" for o in OUTCOMES)
        return f"{label}: {self.decisions} decisions: {parts}; CTO pages {self.pages}"


@dataclass(frozen=True, slots=True)
class Comparison:
    changes: list[Change] = field(default_factory=list)
    old: Totals = field(default_factory=lambda: totals(()))
    new: Totals = field(default_factory=lambda: totals(()))


def summary(step: Step | None) -> Summary | None:
    """Return the comparable part of a step's decision."""
    if step is None:
        return None
    d = step.decision
    return Summary(d.outcome, d.owner, tuple(t.id for t in d.triggers),
                   sum(1 for a in d.actions if a.type == "page"))


def totals(steps: Sequence[Step]) -> Totals:
    """Count decisions per outcome and the CTO pages they send."""
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.decision.outcome] = counts.get(step.decision.outcome, 0) + 1
    pages = sum(1 for s in steps for a in s.decision.actions if a.type == "page")
    return Totals(len(steps), counts, pages)


def compare(old: Sequence[Step], new: Sequence[Step]) -> Comparison:
    """Return every decision that differs between the runs (by delivery, or by timer and
    due time), in the order of their keys, and both runs' totals."""
    before, after = _keyed(old), _keyed(new)
    changes = []
    for key in sorted(before.keys() | after.keys()):
        was, now = before.get(key), after.get(key)
        if summary(was) == summary(now):
            continue
        step = now or was
        assert step is not None
        item = step.event.item
        changes.append(Change(key[0], key[1], item.key if item else None,
                              summary(was), summary(now)))
    return Comparison(changes, totals(old), totals(new))


def _keyed(steps: Sequence[Step]) -> dict[tuple[str, str], Step]:
    out: dict[tuple[str, str], Step] = {}
    for s in steps:
        item = s.event.item
        when = s.at.isoformat() if s.at else ""
        name = s.origin or f"timer:{item.key if item else '?'}:{when}"
        out[(name, s.event.event_type)] = s
    return out
