"""The what-if engine on stored deliveries: bounded in days, deliveries and time, one at
a time per process (router.work.whatif)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from router.db.engine import make_engine
from router.scope.load import load_scope, parse_scope
from router.work.whatif import WhatIfBusy, WhatIfRunner, WhatIfTooSlow, what_if
from tests.dashboard_seed import CLOCK, GITHUB_API, seed
from tests.standin_github import GitHubStandIn

LEGAL = "match: {labels: [legal, compliance]}"
LEGAL_CLOUD = "match: {labels: [legal, compliance, cloud-bill]}"


@pytest.fixture
def notes(db_url: str, tmp_path: Path, httpx_mock: HTTPXMock) -> tuple[object, object]:
    seeded = seed(db_url, tmp_path, GitHubStandIn(GITHUB_API).install(httpx_mock))
    text = seeded.enforce_rules.read_text()
    current = load_scope(seeded.enforce_rules)[0]
    return current, parse_scope(text.replace(LEGAL, LEGAL_CLOUD).encode(), "edited")[0]


def test_the_newest_deliveries_of_the_span_are_replayed_under_both_notes(
        db_url: str, notes: tuple[object, object]) -> None:
    current, edited = notes
    engine = make_engine(db_url)
    try:
        week = what_if(engine, current, edited, 7, CLOCK)  # type: ignore[arg-type]
        assert (week.deliveries, week.truncated) == (55, False)
        assert [c.key for c in week.comparison.changes] == ["OPS-3", "OPS-13"]
        assert (week.comparison.old.pages, week.comparison.new.pages) == (7, 8)
        day = what_if(engine, current, edited, 1, CLOCK)  # type: ignore[arg-type]
        assert day.deliveries == 55 - 7  # the 7 from linear arrived three days before
        newest = what_if(engine, current, edited, 7, CLOCK, limit=5)  # type: ignore[arg-type]
        assert (newest.deliveries, newest.truncated) == (5, True)
        with pytest.raises(ValueError, match="days: give 1 to 90"):
            what_if(engine, current, edited, 91, CLOCK)  # type: ignore[arg-type]
        with pytest.raises(WhatIfTooSlow,
                           match="stopped at the deadline, 0 decisions into the 55 deliveries"):
            what_if(engine, current, edited, 7, CLOCK, deadline_s=0)  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_a_second_what_if_while_one_runs_is_refused(db_url: str,
                                                     notes: tuple[object, object]) -> None:
    current, edited = notes
    engine = make_engine(db_url)
    runner = WhatIfRunner(engine)

    async def both() -> list[object]:
        return await asyncio.gather(runner.run(current, edited, 7, CLOCK),  # type: ignore[arg-type]
                                    runner.run(current, edited, 7, CLOCK),  # type: ignore[arg-type]
                                    return_exceptions=True)

    try:
        first, second = asyncio.run(both())
        assert not isinstance(first, BaseException) and isinstance(second, WhatIfBusy)
        again = asyncio.run(runner.run(current, edited, 7, CLOCK))  # type: ignore[arg-type]
        assert len(again.comparison.changes) == 2
    finally:
        runner.close()
        engine.dispose()
