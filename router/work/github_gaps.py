"""Close GitHub's delivery gaps: GitHub never retries a failed delivery, so firstline asks.

Every few minutes the worker reads the recent deliveries of the hooks in
FIRSTLINE_GITHUB_HOOK_IDS (adapters.github.deliveries) and asks GitHub to redeliver each
event that no attempt delivered and the inbox does not hold (matched by `guid`, the
X-GitHub-Delivery). So an outage of firstline, or a wrong secret fixed later, loses no
GitHub event of the last three days.

Bounds: the first look after a start goes back `LOOKBACK` (GitHub keeps three days);
later ones go back to the previous look, less `OVERLAP`. An event is asked for at most
`MAX_REDELIVERIES` times, counted both from GitHub's list (redelivery attempts carry the
same guid) and in memory, so a delivery that keeps failing is not asked for forever. A
rate-limit answer stops the look until the time GitHub names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from adapters.github.deliveries import DeliveryLog, Hook, HookDelivery, LogUnavailable, hooks
from router.db.engine import try_session_lock
from router.db.tables import inbox
from router.settings import Settings

log = logging.getLogger("firstline.github_gaps")

CHECK_EVERY_S = 300.0
FIRST_AFTER_S = 30.0  # after start: GitHub redelivers at once, to an HTTP side listening
LOCK = 0x666C0102  # the advisory lock of the job (PostgreSQL: one worker looks at a time)
LOOKBACK = timedelta(days=3)
OVERLAP = timedelta(minutes=15)  # deliveries GitHub records late are still seen
MAX_REDELIVERIES = 3
MAX_PAGES = 50  # per hook and look: 5,000 deliveries
_LOOKUP_CHUNK = 500


def to_redeliver(attempts: Iterable[HookDelivery], stored: set[str],
                 asked: dict[str, int]) -> list[HookDelivery]:
    """Pick, per event, the newest failed attempt to redeliver: none when the event is
    stored, some attempt of it succeeded, or it was asked for `MAX_REDELIVERIES` times."""
    by_guid: dict[str, list[HookDelivery]] = {}
    for attempt in attempts:
        by_guid.setdefault(attempt.guid, []).append(attempt)
    chosen = []
    for guid, tries in by_guid.items():
        redeliveries = sum(1 for t in tries if t.redelivery)
        if guid in stored or any(t.ok for t in tries) \
                or max(redeliveries, asked.get(guid, 0)) >= MAX_REDELIVERIES:
            continue
        chosen.append(max(tries, key=lambda t: (t.delivered_at, t.id)))
    return sorted(chosen, key=lambda t: t.delivered_at)


@dataclass
class GapCheck:
    """What one look did, for the log line and tests."""

    seen: int = 0
    redelivered: list[str] = field(default_factory=list)  # guids
    problems: list[str] = field(default_factory=list)


class GapFinder:
    """Look for failed GitHub deliveries the inbox lacks and ask for them again."""

    def __init__(self, engine: Engine, delivery_log: DeliveryLog, hooks: Sequence[Hook],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self.log = delivery_log
        self.hooks = list(hooks)
        self.clock = clock
        self.asked: dict[str, int] = {}  # guid -> redeliveries asked for by this process
        self._asked_at: dict[str, datetime] = {}
        self._looked: dict[str, datetime] = {}  # hook name -> start of its last look
        self._not_before = 0.0  # monotonic time before which GitHub asked us to wait

    def run_once(self) -> GapCheck:
        """Look at every hook once (a rate limit ends the look early)."""
        check = GapCheck()
        if time.monotonic() < self._not_before:
            return check
        for hook in self.hooks:
            try:
                self._hook(hook, check)
            except LogUnavailable as exc:
                check.problems.append(f"{hook.name}: {exc}")
                log.warning("GitHub delivery gaps: %s: %s", hook.name, exc)
                if exc.wait is not None:
                    self._not_before = time.monotonic() + exc.wait
                    break
        if check.redelivered:
            log.info("asked GitHub to redeliver %d failed deliveries: %s",
                     len(check.redelivered), ", ".join(check.redelivered))
        return check

    def _hook(self, hook: Hook, check: GapCheck) -> None:
        now = self.clock()
        last = self._looked.get(hook.name)
        since = max(now - LOOKBACK, last - OVERLAP) if last else now - LOOKBACK
        attempts = list(self.log.recent(hook, since, MAX_PAGES))
        check.seen += len(attempts)
        stored = self._stored({a.guid for a in attempts if not a.ok})
        for attempt in to_redeliver(attempts, stored, self.asked):
            self.log.redeliver(hook, attempt)
            self.asked[attempt.guid] = self.asked.get(attempt.guid, 0) + 1
            self._asked_at[attempt.guid] = now
            check.redelivered.append(attempt.guid)
        self._looked[hook.name] = now
        self._forget_before(now - LOOKBACK)

    def _stored(self, guids: set[str]) -> set[str]:
        """Return the guids the inbox holds (GitHub's X-GitHub-Delivery is our delivery id)."""
        found: set[str] = set()
        ordered = sorted(guids)
        with self.engine.connect() as conn:
            for start in range(0, len(ordered), _LOOKUP_CHUNK):
                chunk = ordered[start:start + _LOOKUP_CHUNK]
                found.update(conn.execute(select(inbox.c.delivery_id).where(
                    inbox.c.source == "github", inbox.c.delivery_id.in_(chunk))).scalars())
        return found

    def _forget_before(self, horizon: datetime) -> None:
        """Forget what was asked before GitHub's log begins: nothing is asked for there."""
        for guid in [g for g, at in self._asked_at.items() if at < horizon]:
            del self._asked_at[guid], self.asked[guid]


class GitHubGaps:
    """The periodic job (router.work.periodic): builds its GapFinder on the first turn
    when FIRSTLINE_GITHUB_HOOK_IDS names hooks, and keeps it, with what it asked."""

    def __init__(self) -> None:
        self.finder: GapFinder | None = None
        self._started = time.monotonic()

    def __call__(self, engine: Engine, settings: Settings) -> GapCheck | None:
        if not settings.github_hook_ids or time.monotonic() - self._started < FIRST_AFTER_S:
            return None
        if self.finder is None:
            self.finder = GapFinder(engine, DeliveryLog(settings), hooks(settings))
        with try_session_lock(engine, LOCK) as held:
            return self.finder.run_once() if held else None
