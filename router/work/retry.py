"""The outbox's retry policy, as pure functions (table-tested in tests/test_retry.py).

An action gets a few quick tries in the performer (`quick_wait`, `quick_stop`: Retry-After
honoured up to QUICK_WAIT_MAX), then durable attempts with exponential backoff and full
jitter across restarts (`backoff`), then it is dead: kept, counted on /metrics, listed by
/readyz and `firstline outbox list`, never dropped (`verdict`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from adapters.base import Result

QUICK_TRIES = 3
QUICK_WAIT_MAX = 5.0  # seconds: a longer Retry-After is waited out durably instead
QUICK_WAIT_BASE = 0.2  # seconds, doubled per quick try, with full jitter
MAX_ATTEMPTS = 8  # durable attempts before an action is dead (about 2 hours of backoff)
BACKOFF_BASE = 30.0  # seconds, doubled per durable attempt, with full jitter
BACKOFF_MAX = 3600.0

Uniform = Callable[[float, float], float]  # random.uniform, or a fixed one in tests


def quick_wait(result: Result, tries: int, uniform: Uniform = random.uniform) -> float:
    """Return seconds to wait before quick try `tries + 1`: the Retry-After if the vendor
    named one, else exponential with full jitter, at most QUICK_WAIT_MAX."""
    if result.retry_after is not None:
        return min(result.retry_after, QUICK_WAIT_MAX)
    return uniform(0.0, min(QUICK_WAIT_MAX, QUICK_WAIT_BASE * 2 ** max(0, tries - 1)))


def quick_stop(result: Result, tries: int) -> bool:
    """Tell whether the quick tries are over after `tries` of them ended in `result`."""
    if result.status != "retryable":
        return True
    too_long = result.retry_after is not None and result.retry_after > QUICK_WAIT_MAX
    return too_long or tries >= QUICK_TRIES


def backoff(attempts: int, retry_after: float | None, uniform: Uniform = random.uniform
            ) -> float:
    """Return seconds until the next durable attempt: full jitter, at least Retry-After."""
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return max(retry_after or 0.0, uniform(ceiling / 2, ceiling))


@dataclass(frozen=True, slots=True)
class Verdict:
    """What becomes of an action after a durable attempt: done, wait `seconds`, or dead."""

    kind: Literal["done", "wait", "dead"]
    seconds: float = 0.0


def verdict(result: Result, attempts: int, uniform: Uniform = random.uniform) -> Verdict:
    """Decide an action's fate after its `attempts`-th durable attempt ended in `result`."""
    if result.ok:
        return Verdict("done")
    if result.status == "retryable" and attempts < MAX_ATTEMPTS:
        return Verdict("wait", backoff(attempts, result.retry_after, uniform))
    return Verdict("dead")


def holds_lane(result: Result, attempts: int) -> bool:
    """Tell whether an action's result stops its lane: it will be tried again, so the
    later actions of its item must wait behind it."""
    return result.status == "retryable" and attempts < MAX_ATTEMPTS
