"""Crash under load, shared by tests/test_reliability.py (bounded) and bench/soak.py (long).

Signed real deliveries of all four sources, each varied from a recorded one, go into a
live `firstline serve` that is killed (`kill -9`) at random moments and started again.
The sender redelivers what was not acknowledged, as the vendors do, and sends some that
were acknowledged a second time. GitHub and Jira deliveries hand work to the CTO, so
firstline assigns it to its owner and comments (at the stand-ins: bench/e2e_standin.py
in its own process, tests/standin_jira.py in this one); the Linear and PagerDuty ones
are decided without actions. Afterwards `Outcome` holds what the checks need: every
acknowledged delivery has exactly one decision, every expected action took effect at
a stand-in exactly once. Given a rate, the deliveries are spread over time (the long
run's minutes) and the kills over that time; `serve`'s memory is sampled throughout
(tests/soak_rss.py).
"""

from __future__ import annotations

import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from router.db.engine import make_engine
from router.db.tables import decisions, inbox, outbox
from tests.soak_rss import RssSampler, Sample
from tests.standin_jira import JiraStandin
from tests.support import EXAMPLE_SCOPE, FIXTURES, ROOT, eventually, github_assigned_to_cto
from tests.vendors import SECRETS, signed_headers

JIRA_EMAIL, JIRA_TOKEN, GITHUB_TOKEN = "bot@example.com", "jira-token", "gh-token"
REPO = "Codertocat/Hello-World"  # the repository of the recorded GitHub deliveries
CTO_JIRA = "5cedcb4355a88a0fc86388ba"  # the example scope note's CTO in Jira


@dataclass
class Delivery:
    """One delivery to make until acknowledged; `body` is built at each send (Linear's
    signed timestamp must be fresh)."""

    source: str
    event: str
    delivery_id: str
    body: Callable[[], bytes]
    item: int | None = None  # the GitHub issue number or Jira issue id acted on, if any
    acked: bool = False


def _fixture(source: str, name: str) -> Any:
    return orjson.loads((FIXTURES / source / f"{name}.json").read_bytes())


def deliveries(count: int, run: str) -> list[Delivery]:
    """Make `count` deliveries, the four sources in turn, each about an item of its own."""
    made = []
    for n in range(count):
        source = ("github", "jira", "linear", "pagerduty")[n % 4]
        made.append(_VARIANTS[source](n, f"{run}-{n}"))
    return made


def _github(n: int, delivery_id: str) -> Delivery:
    payload = github_assigned_to_cto()
    payload["issue"].update(number=n, id=900_000_000 + n,
                            updated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    body = orjson.dumps(payload)
    return Delivery("github", "issues", delivery_id, lambda: body, item=n)


def _jira(n: int, delivery_id: str) -> Delivery:
    payload = _fixture("jira", "issue_created")
    issue = payload["issue"]
    issue.update(id=str(500_000 + n), key=f"TES-{n}",
                 self=issue["self"].replace("10040", str(500_000 + n)))
    issue["fields"]["assignee"] = {**payload["user"], "accountId": CTO_JIRA}  # to the CTO
    payload["timestamp"] = int(time.time() * 1000)
    body = orjson.dumps(payload)
    return Delivery("jira", "jira:issue_created", delivery_id, lambda: body, item=500_000 + n)


def _linear(n: int, delivery_id: str) -> Delivery:
    payload = _fixture("linear", "Issue.remove")  # decided (keep), nothing to do
    payload["data"]["id"] = str(uuid.UUID(int=n))

    def body() -> bytes:
        return orjson.dumps({**payload, "webhookTimestamp": int(time.time() * 1000)})

    return Delivery("linear", "Issue", delivery_id, body)


def _pagerduty(n: int, delivery_id: str) -> Delivery:
    payload = _fixture("pagerduty", "incident.resolved")  # decided (keep), nothing to do
    payload["event"]["id"] = f"01SOAK{n:020d}"
    payload["event"]["data"]["id"] = f"PSOAK{n}"
    body = orjson.dumps(payload)
    return Delivery("pagerduty", "incident.resolved", delivery_id, lambda: body)


_VARIANTS = {"github": _github, "jira": _jira, "linear": _linear, "pagerduty": _pagerduty}


# -- the stand-ins --------------------------------------------------------------------------


@dataclass
class Standins:
    github: str  # URL of bench/e2e_standin.py
    jira: JiraStandin

    def writes(self) -> int:
        """Count the writes both stand-ins have received so far."""
        progress = httpx.get(f"{self.github}/_bench/progress", timeout=10).json()
        return int(progress["writes"]) + len(self.jira.writes())

    def env(self) -> dict[str, str]:
        return {"FIRSTLINE_GITHUB_API_URL": self.github, "FIRSTLINE_GITHUB_TOKEN": GITHUB_TOKEN,
                "FIRSTLINE_JIRA_URL": self.jira.url, "FIRSTLINE_JIRA_EMAIL": JIRA_EMAIL,
                "FIRSTLINE_JIRA_API_TOKEN": JIRA_TOKEN}


@contextmanager
def standins(made: list[Delivery]) -> Iterator[Standins]:
    """Run both stand-ins holding the items of `made`, each assigned to the CTO."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "e2e_standin.py"),
                             "--token", GITHUB_TOKEN], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        github = f"http://127.0.0.1:{proc.stdout.readline().split()[-1]}"
        httpx.post(f"{github}/_bench/issues", json={  # one call: numbers 0..N, some unused
            "repo": REPO, "first": 0, "count": len(made), "assignees": ["dreyes"]},
                   timeout=60).raise_for_status()
        with JiraStandin(email=JIRA_EMAIL, token=JIRA_TOKEN) as jira:
            for d in made:
                if d.source == "jira":
                    jira.add_issue(f"TES-{d.item - 500_000}", str(d.item),  # type: ignore[operator]
                                   assignee=CTO_JIRA)
            yield Standins(github, jira)
    finally:
        proc.kill()
        proc.wait()


# -- the service, killed and started again ------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """`firstline serve` on one port, started again after each kill; logs appended."""

    def __init__(self, workdir: Path, db_url: str, env: dict[str, str]) -> None:
        self.rules = workdir / "scope.yaml"
        self.rules.write_text(EXAMPLE_SCOPE.read_text().replace("mode: shadow", "mode: enforce", 1))
        self.log = workdir / "serve.log"
        self.db_url = db_url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        secrets = {f"FIRSTLINE_{s.upper()}_WEBHOOK_SECRET": v for s, v in SECRETS.items()}
        self.env = {**os.environ, "FIRSTLINE_DATABASE_URL": db_url, **secrets, **env}
        self.process: subprocess.Popen[bytes] | None = None
        self.incarnation = 0  # how many times it was started
        self.started = 0.0  # when the running one was (monotonic)

    def start(self) -> float:
        """Start the process; return when (monotonic)."""
        # Count the incarnation before the new process is visible: the memory sampler
        # reads from another thread, and must not file the new one under the old name.
        self.incarnation += 1
        self.started = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "router.cli", "serve", "--rules", str(self.rules),
                 "--port", str(self.port)], cwd=ROOT, env=self.env, stdout=log,
                stderr=subprocess.STDOUT)
        return self.started

    def running(self) -> list[tuple[str, int, float]]:
        """Name the running process for the memory sampler: label, pid, start."""
        process = self.process
        if process is None or process.poll() is not None:
            return []
        return [(f"serve#{self.incarnation}", process.pid, self.started)]

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- the run ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a run did and what the database and the stand-ins show afterwards."""

    sent: int = 0
    answers: Counter[int] = field(default_factory=Counter)  # status (-1: no answer)
    acknowledged: int = 0
    resent_after_ack: int = 0
    decided: int = 0  # acknowledged deliveries with exactly one decision
    undecided: list[str] = field(default_factory=list)
    actions_expected: int = 0
    actions_seen: int = 0
    duplicates: int = 0
    missing: list[str] = field(default_factory=list)
    outbox: Counter[str] = field(default_factory=Counter)  # rows by status
    resumed_s: list[float] = field(default_factory=list)  # restart -> first action
    ready_s: list[float] = field(default_factory=list)  # restart -> /readyz 200 (start-up)
    rss: list[Sample] = field(default_factory=list)  # serve's memory over the run
    seconds: float = 0.0

    def lines(self) -> list[str]:
        mbs = [s.rss_mb for s in self.rss]
        rss = f"{min(mbs):.0f}..{max(mbs):.0f} MB" if mbs else "-"
        resumed = ", ".join(f"{s:.1f}" for s in self.resumed_s) or "-"
        ready = ", ".join(f"{s:.1f}" for s in self.ready_s) or "-"
        return [f"sent {self.sent} (answers {dict(sorted(self.answers.items()))}), "
                f"acknowledged {self.acknowledged}, re-sent after ack {self.resent_after_ack}",
                f"decided {self.decided} (one decision each), undecided {len(self.undecided)}",
                f"actions expected {self.actions_expected}, seen {self.actions_seen}, "
                f"duplicates {self.duplicates}, missing {len(self.missing)}, "
                f"outbox {dict(self.outbox)}",
                f"restart -> first resumed action (s): {resumed} (of which start-up to "
                f"/readyz: {ready}); serve RSS {rss}; {self.seconds:.0f} s"]


def feed(todo: queue.SimpleQueue[tuple[int, bool]], count: int,
         rate: float | None) -> None:
    """Queue deliveries 0..count-1 for their first send: all at once, or `rate` a second
    (a steady load, as vendors send through a working day)."""
    began = time.monotonic()
    for i in range(count):
        if rate is not None and (ahead := began + i / rate - time.monotonic()) > 0:
            time.sleep(ahead)  # pacing the load, not waiting for a condition
        todo.put((i, False))


def send_until_acknowledged(base: Callable[[], str], made: list[Delivery], out: Outcome,
                            rng: random.Random, resend: float = 0.05,
                            senders: int = 8, rate: float | None = None) -> None:
    """Send every delivery until acknowledged, from `senders` threads, first sends all at
    once or `rate` a second; after an acknowledgement send it once more with probability
    `resend` (the vendors do)."""
    todo: queue.SimpleQueue[tuple[int, bool]] = queue.SimpleQueue()
    feeder = threading.Thread(target=feed, args=(todo, len(made), rate), daemon=True)
    feeder.start()
    lock = threading.Lock()
    left = [len(made) + 0]  # deliveries (and planned re-sends) not yet acknowledged
    plan = [rng.random() < resend for _ in made]
    left[0] += sum(plan)

    def sender() -> None:
        with httpx.Client(timeout=10) as client:
            while True:
                with lock:
                    if left[0] == 0:
                        return
                try:
                    i, again = todo.get(timeout=0.1)
                except queue.Empty:
                    continue
                d = made[i]
                body = d.body()
                try:
                    status = client.post(f"{base()}/webhooks/{d.source}", content=body,
                                         headers=signed_headers(d.source, body, d.event,
                                                                d.delivery_id)).status_code
                except httpx.TransportError:
                    status = -1
                with lock:
                    out.sent += 1
                    out.answers[status] += 1
                    refused = not 200 <= status < 300
                    if refused:
                        todo.put((i, again))
                if refused:  # down, or storage unavailable: the vendors wait too
                    time.sleep(0.05)
                    continue
                with lock:
                    left[0] -= 1
                    if again:
                        out.resent_after_ack += 1
                    elif not d.acked:
                        d.acked = True
                        out.acknowledged += 1
                        if plan[i]:
                            todo.put((i, True))

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    feeder.join()


def kill_and_restart(service: Service, stands: Standins, out: Outcome,
                     progress: Callable[[], float], marks: list[float], rng: random.Random,
                     stop: threading.Event) -> None:
    """Kill the service when `progress()` reaches each of `marks`, each time starting it
    again and timing how long until the next action reaches a stand-in."""
    for mark in marks:
        eventually(lambda mark=mark: progress() >= mark or stop.is_set(),
                   "the next kill's moment", timeout=24 * 3600)
        if stop.is_set():
            return
        service.kill()
        time.sleep(rng.uniform(0.2, 1))  # down a while: deliveries are refused meanwhile
        before = stands.writes()  # the killed process's last requests have landed by now
        started = service.start()
        try:
            eventually(lambda: httpx.get(f"{service.base}/readyz", timeout=10).status_code
                       == 200, "/readyz after the restart", timeout=120,
                       ignore=(httpx.TransportError,))
            out.ready_s.append(time.monotonic() - started)
            eventually(lambda before=before: stands.writes() != before,
                       "an action after the restart", timeout=120)
        except AssertionError:  # nothing was left to do: no time to report
            continue
        out.resumed_s.append(time.monotonic() - started)


def wait_until_settled(db_url: str, acknowledged: int, timeout: float) -> bool:
    """Wait until every stored delivery is decided and no action is pending; tell
    whether that happened within `timeout` seconds."""
    engine = make_engine(db_url)

    def settled() -> bool:
        with engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(inbox)).scalar_one()
            decided = conn.execute(select(func.count()).select_from(decisions).where(
                decisions.c.inbox_id.is_not(None))).scalar_one()
            pending = conn.execute(select(func.count()).select_from(outbox).where(
                outbox.c.status == "pending")).scalar_one()
        return bool(stored >= acknowledged and decided == stored and pending == 0)

    try:
        eventually(settled, "every delivery decided and every action performed",
                   timeout=timeout)
        return True
    except AssertionError:
        return False
    finally:
        engine.dispose()


def check(db_url: str, made: list[Delivery], stands: Standins, out: Outcome) -> None:
    """Fill in what the database and the stand-ins show."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            counts = Counter((r.source, r.delivery_id) for r in conn.execute(
                select(inbox.c.source, inbox.c.delivery_id).join(
                    decisions, decisions.c.inbox_id == inbox.c.id)))
            out.outbox = Counter(r.status for r in conn.execute(select(outbox.c.status)))
    finally:
        engine.dispose()
    for d in made:
        if d.acked and counts[(d.source, d.delivery_id)] == 1:
            out.decided += 1
        elif d.acked:
            out.undecided.append(f"{d.source} {d.delivery_id}: "
                                 f"{counts[(d.source, d.delivery_id)]} decisions")
    github = httpx.get(f"{stands.github}/_bench/results", timeout=60).json()["issues"]
    jira = Counter((r.method, r.path) for r in stands.jira.writes())
    for d in made:
        if d.item is None or not d.acked:
            continue
        if d.source == "github":
            issue = github[str(d.item)]
            seen = {"assign": issue["assigns"], "comment": len(issue["comments"])}
        else:
            path = f"/rest/api/2/issue/{d.item}"
            seen = {"assign": jira[("PUT", f"{path}/assignee")],
                    "comment": jira[("POST", f"{path}/comment")]}
        for action, times in seen.items():
            out.actions_expected += 1
            out.actions_seen += min(times, 1)
            out.duplicates += max(0, times - 1)
            if times == 0:
                out.missing.append(f"{action} {d.source} {d.item}")


def kill_marks(out: Outcome, count: int, kills: int, rng: random.Random,
               rate: float | None) -> tuple[Callable[[], float], list[float]]:
    """Choose the kills' moments at random: over the sends made (all at once), or over
    the seconds the load lasts (`rate` a second), leaving its start and end alone."""
    if rate is None:
        return (lambda: out.sent), sorted(rng.uniform(0.1, 0.8) * count for _ in range(kills))
    began, duration = time.monotonic(), count / rate
    return ((lambda: time.monotonic() - began),
            sorted(rng.uniform(0.05, 0.95) * duration for _ in range(kills)))


def soak(workdir: Path, db_url: str, count: int, kills: int, seed: int = 1,
         settle: float = 120.0, rate: float | None = None, rss_every: float = 5.0) -> Outcome:
    """Run the whole thing once against `db_url` (migrated): `count` deliveries, all at
    once or `rate` a second; return what it found."""
    rng = random.Random(seed)
    made = deliveries(count, f"soak{seed}-{uuid.uuid4().hex[:6]}")
    out = Outcome()
    began = time.monotonic()
    with standins(made) as stands:
        service = Service(workdir, db_url, stands.env())
        stop = threading.Event()
        with RssSampler(service.running, every=rss_every) as sampler:
            service.start()
            progress, marks = kill_marks(out, count, kills, rng, rate)
            killer = threading.Thread(target=kill_and_restart, args=(
                service, stands, out, progress, marks, rng, stop))
            try:
                killer.start()
                send_until_acknowledged(lambda: service.base, made, out, rng, rate=rate)
                stop.set()
                killer.join()
                wait_until_settled(db_url, out.acknowledged, settle)
                sampler.sample()  # the settled process, before it is stopped
            finally:
                stop.set()
                service.stop()
        out.rss = sampler.samples
        check(db_url, made, stands, out)
    out.seconds = time.monotonic() - began
    return out
