"""Decide whether a scope-note `match` map holds for an item, and record why.

A match map is compiled once, at load, into a list of small predicate closures; each
returns a `Check` (did it hold, and what value it saw) so every decision can show its
evidence. Pure: no I/O, no framework imports.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

from router.core.model import SEVERITIES, Check, MatchResult, Severity, WorkItem
from router.scope.schema import MatchSpec, SeverityBound, SevName

_RANK = {name: i for i, name in enumerate(SEVERITIES)}  # sev1 = 0: most severe


@dataclass(slots=True)
class Facts:
    """An item as the scope note sees it: severity resolved, accounts mapped to people."""

    item: WorkItem
    severity: Severity
    assignees: tuple[str, ...]  # person keys where known, else raw account ids
    reporter: str | None
    owner_named: bool  # a person (not firstline) assigned it, or work has started
    _labels_text: str | None = None  # the item's labels as shown in evidence, made once

    def labels_text(self) -> str:
        if self._labels_text is None:
            self._labels_text = _list(self.item.labels)
        return self._labels_text


Predicate = Callable[[Facts], Check]


@dataclass(frozen=True, slots=True)
class Matcher:
    predicates: tuple[Predicate, ...]

    def __call__(self, facts: Facts) -> MatchResult:
        """Evaluate predicates in order up to the first that fails.

        The evidence then holds every predicate that held and the one that did not, which
        is the answer to "why did this not fire?" without paying for the rest.
        """
        if len(self.predicates) == 1:
            check = self.predicates[0](facts)
            return MatchResult(check.held, (check,))
        checks: list[Check] = []
        for predicate in self.predicates:
            check = predicate(facts)
            checks.append(check)
            if not check.held:
                return MatchResult(False, tuple(checks))
        return MatchResult(True, tuple(checks))


ALWAYS = Matcher(())


def compile_match(spec: MatchSpec | None, people: frozenset[str]) -> Matcher:
    """Compile a match map; an absent or empty map always holds."""
    if spec is None:
        return ALWAYS
    preds: list[Predicate] = []
    for key in ("source", "kind", "status"):
        wanted: list[str] = getattr(spec, key)
        if wanted:
            preds.append(_field_in(key, frozenset(wanted)))
    if spec.project:
        preds.append(_project(frozenset(v.lower() for v in spec.project)))
    if spec.labels:
        preds.append(_labels_any(frozenset(v.lower() for v in spec.labels)))
    if spec.labels_all:
        preds.append(_labels_all(frozenset(v.lower() for v in spec.labels_all)))
    if spec.priority:
        preds.append(_priority(frozenset(v.lower() for v in spec.priority)))
    if spec.severity:
        preds.append(_severity(spec.severity))
    if spec.assignee:
        preds.append(_assignee(frozenset(spec.assignee)))
    if spec.reporter:
        preds.append(_reporter(frozenset(spec.reporter)))
    if spec.text is not None:
        preds.append(_text(re.compile(spec.text, re.IGNORECASE)))
    if spec.any_ is not None:
        preds.append(_any([compile_match(s, people) for s in spec.any_]))
    if spec.all_ is not None:
        preds.append(_all([compile_match(s, people) for s in spec.all_]))
    if spec.not_ is not None:
        preds.append(_not(compile_match(spec.not_, people)))
    return Matcher(tuple(preds))


def _field_in(key: str, wanted: frozenset[str]) -> Predicate:
    read = attrgetter(key)

    def check(f: Facts) -> Check:
        value: str = read(f.item)
        return Check(key, value in wanted, f"{key} {value}")
    return check


def _project(wanted: frozenset[str]) -> Predicate:
    def check(f: Facts) -> Check:
        project = f.item.project or ""
        held = project.lower() in wanted or not wanted.isdisjoint(f.item.project_aliases)
        return Check("project", held, f"project {project or '(none)'}")
    return check


def _labels_any(wanted: frozenset[str]) -> Predicate:
    shown = f" (none of {_list(wanted)})"

    def check(f: Facts) -> Check:
        hits = f.item.labels & wanted
        if hits:
            return Check("labels", True, "label " + _list(hits))
        return Check("labels", False, f"labels {f.labels_text()}{shown}")
    return check


def _labels_all(wanted: frozenset[str]) -> Predicate:
    def check(f: Facts) -> Check:
        missing = wanted - f.item.labels
        if not missing:
            return Check("labels_all", True, "labels " + _list(wanted))
        saw = f"labels {f.labels_text()} (missing {_list(missing)})"
        return Check("labels_all", False, saw)
    return check


def _priority(wanted: frozenset[str]) -> Predicate:
    def check(f: Facts) -> Check:
        raw = f.item.priority
        return Check("priority", raw is not None and raw.lower() in wanted,
                     f"priority {raw or '(none)'}")
    return check


def _severity(spec: SeverityBound | list[SevName]) -> Predicate:
    if isinstance(spec, list):
        allowed = frozenset(spec)

        def listed(f: Facts) -> Check:
            return Check("severity", f.severity in allowed, f"severity {f.severity}")
        return listed
    low = _RANK[spec.at_least] if spec.at_least else len(SEVERITIES)
    high = _RANK[spec.at_most] if spec.at_most else -1
    words = " and ".join(
        w for w in (spec.at_least and f"at least {spec.at_least}",
                    spec.at_most and f"at most {spec.at_most}") if w)

    def bounded(f: Facts) -> Check:
        rank = _RANK[f.severity]
        return Check("severity", high <= rank <= low, f"severity {f.severity} {words}")
    return bounded


def _assignee(wanted: frozenset[str]) -> Predicate:
    keys = wanted - {"none", "any"}

    def check(f: Facts) -> Check:
        shown = _list(f.assignees) if f.assignees else "(none)"
        if "none" in wanted and not f.owner_named:
            why = "unassigned" if not f.assignees else f"only firstline assigned {shown}"
            return Check("assignee", True, f"no owner named ({why})")
        if "any" in wanted and f.assignees:
            return Check("assignee", True, f"assigned to {shown}")
        hits = keys.intersection(f.assignees)
        if hits:
            return Check("assignee", True, f"assigned to {_list(hits)}")
        return Check("assignee", False, f"assignees {shown}")
    return check


def _reporter(wanted: frozenset[str]) -> Predicate:
    def check(f: Facts) -> Check:
        return Check("reporter", f.reporter in wanted, f"reporter {f.reporter or '(none)'}")
    return check


def _text(pattern: re.Pattern[str]) -> Predicate:
    def check(f: Facts) -> Check:
        found = pattern.search(f.item.title) or pattern.search(f.item.description)
        if found:
            return Check("text", True, f"text {found.group(0)!r}")
        return Check("text", False, f"text /{pattern.pattern}/ not found")
    return check


def _any(matchers: list[Matcher]) -> Predicate:
    def check(f: Facts) -> Check:
        results = [m(f) for m in matchers]
        held = [r for r in results if r.held]
        saw = "; ".join(", ".join(r.because()) or "(empty match)" for r in held)
        return Check("any", bool(held), f"any of: {saw}" if held else "none of the alternatives")
    return check


def _all(matchers: list[Matcher]) -> Predicate:
    def check(f: Facts) -> Check:
        results = [m(f) for m in matchers]
        saw = "; ".join(c.saw for r in results for c in r.checks)
        return Check("all", all(r.held for r in results), f"all of: {saw}")
    return check


def _not(matcher: Matcher) -> Predicate:
    def check(f: Facts) -> Check:
        result = matcher(f)
        saw = ", ".join(c.saw for c in result.checks) or "(empty match)"
        return Check("not", not result.held, f"not ({saw})")
    return check


def _list(values: frozenset[str] | tuple[str, ...] | set[str]) -> str:
    if not values:
        return "(none)"
    return next(iter(values)) if len(values) == 1 else ", ".join(sorted(values))
