"""The guarantees under trouble, against real processes: `kill -9` under load (the long
version is bench/soak.py), vendor outages, a database outage."""

from __future__ import annotations

import glob
import random
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from router.db.engine import upgrade
from router.db.tables import outbox
from router.work.outbox import Performer
from tests.outage import OWNER, VENDORS, Outage, queue_actions
from tests.soak import (
    Outcome,
    Service,
    check,
    deliveries,
    send_until_acknowledged,
    soak,
    standins,
    wait_until_settled,
)
from tests.support import ROOT, WAIT_S, eventually


def test_kill_9_under_load_loses_nothing_acknowledged_and_acts_once(
        tmp_path: Path, db_url: str) -> None:
    """240 signed deliveries (tests/soak.py), `serve` killed twice at random moments:
    every acknowledged delivery decided once, every action taken once."""
    out = soak(tmp_path, db_url, count=240, kills=2, seed=14)
    report = "\n".join(out.lines())
    print(f"\n{report}")
    assert out.acknowledged == 240 and out.resent_after_ack > 0, report
    assert out.decided == out.acknowledged and not out.undecided, report
    assert out.duplicates == 0 and not out.missing, report
    assert out.actions_seen == out.actions_expected == 240, report
    assert set(out.outbox) == {"done"}, report
    assert len(out.resumed_s) == 2, report


# -- vendor outage: rate limits, 5xx, hangs, refused connections ---------------------------


@pytest.mark.parametrize("name", list(VENDORS))
def test_after_a_vendor_outage_every_action_lands_once_and_retry_after_is_honoured(
        engine: Engine, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real client against the vendor's stand-in over HTTP (tests/outage.py), performed
    by the Performer; its clock jumps an hour per round so durable backoffs come due in
    seconds. Only what the vendor refused (4xx) is dead; everything else took effect once."""
    skew = [0.0]

    def clock() -> float:
        return time.time() + skew[0]

    with VENDORS[name](clock, tmp_path, monkeypatch) as vendor:
        jammed = vendor.standin
        jammed.clock = clock
        queue_actions(engine, vendor)
        performer = Performer(engine, lambda: {vendor.source: vendor.adapter},
                              lambda: datetime.fromtimestamp(clock(), UTC))

        def round_() -> None:
            performer.drain()
            skew[0] += 3600  # past any backoff of the attempts so far, short of 7200 s

        outage = jammed.trouble = Outage(vendor.fine[0].token, vendor.limit,
                                        hang=vendor.timeout + 0.5)
        for _ in range(3):
            round_()
        jammed.refuse()
        round_()
        refused = [r.last_error for r in outbox_rows(engine)
                   if f"could not reach {vendor.name}" in (r.last_error or "")]
        jammed.accept()
        jammed.trouble = None
        for _ in range(4):
            round_()
        performer.close()

    rows = {(r.item, r.type): r for r in outbox_rows(engine)}
    assert len(rows) == 2 * len(vendor.fine + vendor.refused), rows
    dead = sorted(item for (item, _), r in rows.items() if r.status == "dead")
    assert dead == sorted(f"{name}:{i.target['id']}" for i in vendor.refused for _ in "ab"), rows
    assert all(r.status == "done" for (item, _), r in rows.items()
               if item not in dead), rows
    for item in vendor.fine:  # each took effect once, whatever the outage did
        writes = [r for r in jammed.applied if vendor.about(r) == item]
        assert sorted(vendor.label(r, item) for r in writes) == vendor.writes, writes
        assert vendor.state(item) == ((OWNER,), 1)
    assert refused, "no action met the refused connections"
    kinds = {"limit" if wait else "hang" if isinstance(t, float) else t.status
             for _, t, wait in outage.answered}
    assert kinds == {"limit", 500, 503, "hang"}, kinds  # every kind of trouble was met
    waits = [(r, wait) for r, _, wait in outage.answered if wait is not None]
    assert {wait for _, wait in waits} == {1.0, 7200.0}, waits
    for request, wait in waits:  # the next request about the same item waited
        item = vendor.about(request)
        later = [r.at for r in jammed.requests if r.at > request.at and vendor.about(r) == item]
        assert later and later[0] - request.at >= wait, (request.path, wait, later[:1])


def outbox_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(outbox)))


# -- database outage: PostgreSQL stopped and started under load -----------------------------

PG_SERVER = ROOT / "scripts" / "pg-test-server"


def postgres_installed() -> bool:
    return bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb"))


@contextmanager
def own_postgres() -> Iterator[tuple[str, Callable[[str], None]]]:
    """Start a PostgreSQL of this test's own; yield its URL and `server("stop"|"start")`."""
    top = Path(tempfile.mkdtemp(prefix="firstline-pg-outage-"))
    top.chmod(0o755)  # the server runs as `postgres` when the tests run as root

    def server(command: str) -> None:
        subprocess.run([str(PG_SERVER), command, str(top / "pg"), "-c", "fsync=off"],
                       check=True, capture_output=True)

    try:
        url = subprocess.run([str(PG_SERVER), "start", str(top / "pg"), "-c", "fsync=off"],
                             check=True, capture_output=True, text=True).stdout.strip()
        yield url, server
    finally:
        subprocess.run([str(PG_SERVER), "stop", str(top / "pg")], check=False)
        shutil.rmtree(top, ignore_errors=True)


def ready(base: str) -> int:
    return httpx.get(f"{base}/readyz", timeout=10).status_code


@pytest.mark.skipif(not postgres_installed(),
                    reason="PostgreSQL's server binaries (initdb, pg_ctl) are not installed: "
                           "apt-get install postgresql")
def test_a_database_outage_answers_503_and_everything_recovers_without_a_restart(
        tmp_path: Path) -> None:
    """PostgreSQL stopped under load and started again: deliveries meanwhile get 503 (the
    sender retries), /readyz fails and recovers, the same process decides and acts on."""
    with own_postgres() as (url, server):
        upgrade(url)
        made = deliveries(160, "pg-outage")
        out = Outcome()
        with standins(made) as stands:
            service = Service(tmp_path, url, stands.env())
            service.start()
            sender = threading.Thread(target=send_until_acknowledged, args=(
                lambda: service.base, made, out, random.Random(3)))
            try:
                eventually(lambda: ready(service.base) == 200, "/readyz",
                           ignore=(httpx.TransportError,))
                sender.start()
                eventually(lambda: out.acknowledged >= 30, "30 deliveries acknowledged")
                server("stop")
                eventually(lambda: ready(service.base) == 503, "/readyz to fail")
                eventually(lambda: out.answers[503] >= 5, "deliveries refused with 503")
                eventually(lambda: all(f"{loop} failed" in service.log.read_text() for loop in (
                    "worker batch", "outbox claim")), "the worker and performer to meet it")
                server("start")
                eventually(lambda: ready(service.base) == 200, "/readyz to recover")
                sender.join(WAIT_S * 4)
                assert wait_until_settled(url, out.acknowledged, WAIT_S * 2)
                assert service.process is not None and service.process.poll() is None
            finally:
                service.stop()
            check(url, made, stands, out)
    report = "\n".join(out.lines())
    print(f"\n{report}")
    assert set(out.answers) <= {200, 202, 503}, report  # refused with 503, never dropped
    assert out.acknowledged == 160 and out.decided == 160 and not out.undecided, report
    assert out.duplicates == 0 and not out.missing and set(out.outbox) == {"done"}, report
