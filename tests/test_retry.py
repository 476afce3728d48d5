"""The outbox's retry policy, one table row per case (router.work.retry: pure)."""

from __future__ import annotations

import pytest

from adapters.base import Result
from router.work.retry import (
    MAX_ATTEMPTS,
    Verdict,
    backoff,
    holds_lane,
    quick_stop,
    quick_wait,
    verdict,
)


def top(low: float, high: float) -> float:
    return high


def bottom(low: float, high: float) -> float:
    return low


OK = Result("ok")
BUSY = Result("retryable", "503")
SLOW_DOWN = Result("retryable", "429", retry_after=2.0)
COME_BACK_LATER = Result("retryable", "429", retry_after=600.0)
REFUSED = Result("permanent", "404")


@pytest.mark.parametrize(("result", "tries", "wait"), [
    (BUSY, 1, 0.2),  # full jitter up to 0.2 s, doubling
    (BUSY, 2, 0.4),
    (BUSY, 10, 5.0),  # capped
    (SLOW_DOWN, 1, 2.0),  # Retry-After, as named
    (COME_BACK_LATER, 1, 5.0),  # capped (and the tries stop: see below)
])
def test_quick_waits(result: Result, tries: int, wait: float) -> None:
    assert quick_wait(result, tries, top) == wait


@pytest.mark.parametrize(("result", "tries", "stop"), [
    (OK, 1, True),
    (REFUSED, 1, True),
    (BUSY, 1, False),
    (BUSY, 2, False),
    (BUSY, 3, True),  # three quick tries
    (SLOW_DOWN, 1, False),
    (COME_BACK_LATER, 1, True),  # waited out durably instead
])
def test_quick_tries_stop(result: Result, tries: int, stop: bool) -> None:
    assert quick_stop(result, tries) is stop


@pytest.mark.parametrize(("attempts", "retry_after", "uniform", "seconds"), [
    (1, None, top, 30.0),
    (1, None, bottom, 15.0),  # full jitter: half to all of the ceiling
    (2, None, top, 60.0),
    (8, None, top, 3600.0),  # capped at an hour
    (1, 600.0, top, 600.0),  # at least Retry-After
    (1, 5.0, top, 30.0),
])
def test_durable_backoff(attempts: int, retry_after: float | None, uniform: object,
                         seconds: float) -> None:
    assert backoff(attempts, retry_after, uniform) == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize(("result", "attempts", "fate", "holds"), [
    (OK, 1, Verdict("done"), False),
    (BUSY, 1, Verdict("wait", 30.0), True),
    (COME_BACK_LATER, 3, Verdict("wait", 600.0), True),
    (BUSY, MAX_ATTEMPTS - 1, Verdict("wait", 1920.0), True),  # 30 s doubled six times
    (BUSY, MAX_ATTEMPTS, Verdict("dead"), False),  # kept as dead, never dropped
    (REFUSED, 1, Verdict("dead"), False),
])
def test_what_becomes_of_an_action(result: Result, attempts: int, fate: Verdict,
                                   holds: bool) -> None:
    assert verdict(result, attempts, top) == fate
    assert holds_lane(result, attempts) is holds
