"""Expose the worker on /metrics: decisions by outcome, backlog, latency, timers, failures.

When the worker runs in another process (`firstline serve` runs it beside the HTTP
process), it publishes its counters to a small JSON file once a second; the HTTP process
reads them back for /metrics and /readyz.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from router.db.tables import OUTBOX_STATUSES, inbox, outbox, timers
from router.work.worker import WorkerStats

StatsSource = Callable[[], WorkerStats | None]  # None: the worker has not reported yet


def publish_stats(stats: WorkerStats, path: Path) -> None:
    """Write the counters for the HTTP process to read (atomically: write, then rename)."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_bytes(orjson.dumps(asdict(stats)))
    os.replace(scratch, path)


def read_stats(path: Path) -> WorkerStats | None:
    """Read what `publish_stats` wrote; None before the worker first reported."""
    with contextlib.suppress(FileNotFoundError, ValueError, TypeError):
        return WorkerStats(**orjson.loads(path.read_bytes()))
    return None


class WorkerCollector(Collector):
    """Report the worker's counters and the database's backlog per scrape."""

    def __init__(self, stats: StatsSource, engine: Engine) -> None:
        self._stats = stats
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        stats = self._stats() or WorkerStats()
        decided = CounterMetricFamily("firstline_decisions", "Decisions made by the worker",
                                      labels=["outcome"])
        for outcome, n in sorted((stats.by_outcome or {}).items()):
            decided.add_metric([outcome], n)
        latency = CounterMetricFamily(
            "firstline_decision_latency_seconds",
            "Seconds from a delivery's receipt to its decision, summed (divide by _count)")
        latency.add_metric([], stats.latency_sum)
        count = CounterMetricFamily("firstline_decision_latency_count",
                                    "Deliveries whose latency is summed above")
        count.add_metric([], stats.decided)
        fired = CounterMetricFamily("firstline_timers_fired", "Timers that came due and decided")
        fired.add_metric([], stats.timers_fired)
        failed = CounterMetricFamily("firstline_deliveries_failed",
                                     "Deliveries parked as failed after repeated errors")
        failed.add_metric([], stats.failed)
        out: list[Metric] = [decided, latency, count, fired, failed]
        try:
            with self._engine.connect() as conn:
                backlog = conn.execute(select(func.count()).where(
                    inbox.c.status == "pending")).scalar_one()
                armed = conn.execute(select(func.count()).where(
                    timers.c.armed.is_(True))).scalar_one()
                actions = conn.execute(select(outbox.c.status, func.count())
                                       .group_by(outbox.c.status)).all()
        except SQLAlchemyError:
            return out
        pending = GaugeMetricFamily("firstline_backlog", "Stored deliveries not yet decided")
        pending.add_metric([], backlog)
        armed_timers = GaugeMetricFamily("firstline_timers_armed", "Timers waiting to come due")
        armed_timers.add_metric([], armed)
        by_status = GaugeMetricFamily(
            "firstline_outbox_actions",
            "Actions by status: pending, done, dead (kept, see `firstline outbox list`), shadow",
            labels=["status"])
        counts: dict[str, int] = {status: int(n) for status, n in actions}
        for status in OUTBOX_STATUSES:
            by_status.add_metric([status], counts.get(status, 0))
        return [*out, pending, armed_timers, by_status]
