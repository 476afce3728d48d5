"""What /metrics shows: prometheus_client counters and histograms kept by this process,
and gauges read from the database at each scrape.

Each service builds one `Metrics` on a registry of its own (tests build many services in
one process). Counters and histograms count what this process did; the database gauges
(backlog, armed timers, actions by status, stored deliveries) are the same whichever
replica is scraped.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from router.db.inbox import count_inbox
from router.db.tables import OUTBOX_STATUSES, inbox, outbox, timers

# Seconds; the goal is 0.1 from webhook to action, and backoffs run to an hour.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   300.0, 3600.0)


class Metrics:
    """The service's metrics, on `registry` (exposed by router.http.app at /metrics)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.webhooks = Counter("firstline_webhook_deliveries",
                                "Webhook requests answered, by source and result",
                                ["source", "result"], registry=r)
        self.decisions = Counter("firstline_decisions", "Decisions made, by outcome",
                                 ["outcome"], registry=r)
        self.decision_latency = Histogram(
            "firstline_decision_latency_seconds",
            "Seconds from a delivery's receipt to its decision", buckets=LATENCY_BUCKETS,
            registry=r)
        self.action_latency = Histogram(
            "firstline_action_latency_seconds",
            "Seconds from a decision to its action confirmed done by the tracker",
            ["type"], buckets=LATENCY_BUCKETS, registry=r)
        self.actions = Counter("firstline_actions",
                               "Actions performed, by what became of them (done, dead)",
                               ["result"], registry=r)
        self.timers_fired = Counter("firstline_timers_fired",
                                    "Timers that came due and were decided", registry=r)
        self.deliveries_failed = Counter("firstline_deliveries_failed",
                                         "Deliveries parked as failed after repeated errors",
                                         registry=r)

    def read_database(self, engine: Engine) -> None:
        """Also report the database's gauges at each scrape."""
        self.registry.register(DatabaseCollector(engine))


class DatabaseCollector(Collector):
    """Report what the database holds, read per scrape; `firstline_database_up` 0 when it
    cannot be reached."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("firstline_database_up", "Whether the last scrape reached it")
        try:
            with self._engine.connect() as conn:
                stored = count_inbox(conn)
                backlog = conn.execute(select(func.count()).where(
                    inbox.c.status == "pending")).scalar_one()
                armed = conn.execute(select(func.count()).where(
                    timers.c.armed.is_(True))).scalar_one()
                actions = {str(status): int(n) for status, n in conn.execute(
                    select(outbox.c.status, func.count()).group_by(outbox.c.status))}
        except SQLAlchemyError:
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        deliveries = GaugeMetricFamily(
            "firstline_inbox_deliveries",
            "Stored deliveries by source and status (pending, done, failed)",
            labels=["source", "status"])
        for source, status, count in stored:
            deliveries.add_metric([source, status], count)
        pending = GaugeMetricFamily("firstline_backlog", "Stored deliveries not yet decided")
        pending.add_metric([], backlog)
        armed_timers = GaugeMetricFamily("firstline_timers_armed", "Timers waiting to come due")
        armed_timers.add_metric([], armed)
        by_status = GaugeMetricFamily(
            "firstline_outbox_actions",
            "Actions by status: pending, done, dead (kept, see `firstline outbox list`), shadow",
            labels=["status"])
        for status in OUTBOX_STATUSES:
            by_status.add_metric([status], int(actions.get(status, 0)))
        return [up, deliveries, pending, armed_timers, by_status]
