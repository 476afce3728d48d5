"""Benchmark webhook in -> action observed: signed GitHub deliveries to a comment at a stand-in.

    .venv/bin/python bench/e2e.py [--topology embedded|scale-out|both] [--seconds 30]
                                  [--ramp-seconds 10] [--no-ramp] [--warmup 3] [--drain 240]
                                  [--concurrency N] [--keep]
                                  [--profile DIR [--profile-mode gil|cpu|wall]]

One command that starts each topology itself, loopback only, and needs nothing outside
the project (PostgreSQL comes from scripts/pg-test-server). The topologies and their goals:

- embedded (the default deployment): one `firstline serve` process on SQLite, at a steady
  `--embedded-rate` (50) deliveries/s: goal p95 <= 100 ms; then a ramp (each step on a
  fresh topology, `--ramp-seconds` long, rates from `--ramp`) that finds the rate at which
  the p95 passes 100 ms;
- scale-out: on PostgreSQL (a throwaway server, durable defaults), `firstline serve
  --no-worker` and two `firstline worker` processes, woken by LISTEN/NOTIFY, at a steady
  `--scale-out-rate` (200) deliveries/s: goal p95 <= 100 ms.

Each run starts a GitHub REST stand-in (bench/e2e_standin.py, its own process) that
records when each `POST .../comments` arrives, and the topology with
`FIRSTLINE_GITHUB_API_URL` at the stand-in and a copy of examples/scope.yaml in
`mode: enforce`; it waits for /readyz. Then it drives an open loop (each send on its
schedule, never waiting for an earlier answer; a dispatcher thread and a pool of sender
threads with keep-alive connections) of the real
tests/fixtures/vendor/github/issues.assigned.json, each with its own issue number and id,
assigned to the CTO (`dreyes`) by someone else, correctly signed, with a unique
X-GitHub-Delivery; every issue is created in the stand-in first. firstline decides
`reassign` and performs `assign` (GET issue, DELETE + POST assignees) and `comment`
(POST comment: a first try has no marker to look for) against the stand-in.

Latency per delivery = stand-in's arrival time of the comment POST minus the time the
webhook POST was sent (both CLOCK_MONOTONIC, one machine). It prints per run: sent,
accepted, actions observed, p50/p95/p99/max latency, the achieved send rate and the
generator's lag behind its schedule, where the time goes (from the database's own
timestamps and the stand-in's), the CPU each process spent per delivery, the load
average, and checks that every accepted delivery got exactly one comment and the right
assignee. Deliveries sent during `--warmup` are checked but not measured. After the load
it waits for the backlog (up to `--drain` s, or until 15 s pass without a new comment),
then reports what the database still holds undone and firstline's warnings and errors.

`--profile DIR` also records firstline with py-spy (`.venv/bin/pip install py-spy`)
during the measured window, as collapsed stacks per thread (DIR/e2e-<run>.txt).
`--keep` keeps the temp dir (logs, SQLite file) for a look afterwards. Processes run in
their own sessions and are stopped, and the temp dir removed, on exit, on Ctrl-C and on
SIGTERM.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.vendors import signed_headers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_servers import free_port, process_cpu  # noqa: E402  (shared with bench/ingest.py)

BIN = Path(sys.executable).parent
FIXTURE = ROOT / "tests" / "fixtures" / "vendor" / "github" / "issues.assigned.json"
SCOPE = ROOT / "examples" / "scope.yaml"
REPO = "Codertocat/Hello-World"
CTO, OWNER, SENDER = "dreyes", "Codertocat", "ana-support"
SECRET = "bench-github-webhook-secret"
TOKEN = "bench-github-token"
GOAL_P95_MS = 100.0
EMBEDDED_RATE = 50.0
SCALE_OUT_RATE = 200.0
RAMP = (50, 75, 100, 150, 200, 300)
# 202 stored; 200 "duplicate" only answers a resend (see `drive`) of a delivery stored already.
ACCEPTED = (202, 200)
SENDERS = 64  # sender threads to start with, each with its own keep-alive connection;
MAX_SENDERS = 2000  # more are started whenever all are waiting, so slow answers (a stalled
# server) never hold back the schedule: the load stays open loop
ISSUE_ID_BASE = 900_000_000
STALL_S = 15.0  # stop waiting for the backlog after this long without a new comment


# -- processes -----------------------------------------------------------------------


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Stop a process started in its own session, and everything it started."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """Our environment without FIRSTLINE_* and proxies (loopback only), plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("FIRSTLINE_") and k.lower() not in
           ("http_proxy", "https_proxy", "all_proxy")}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env.update(extra)
    return env


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:g} s:\n{tail(log)}")


def tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def standin(work: Path) -> Iterator[tuple[str, int]]:
    """Run the GitHub stand-in; yield its base URL and pid."""
    log = work / "standin.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "e2e_standin.py"),
                                 "--token", TOKEN], stdout=subprocess.PIPE, stderr=err,
                                env=child_env({}), start_new_session=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline() or 0)
        if not port:
            raise RuntimeError(f"the GitHub stand-in did not start:\n{tail(log)}")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop_group(proc)


@contextmanager
def postgres(work: Path) -> Iterator[tuple[str, int]]:
    """Run a throwaway PostgreSQL with its durable defaults; yield its URL and pid."""
    script = ROOT / "scripts" / "pg-test-server"
    data = work / "pg"
    try:
        url = subprocess.run([str(script), "start", str(data)], check=True,
                             capture_output=True, text=True).stdout.strip()
        pid = int((data / "data" / "postmaster.pid").read_text().split()[0])
        yield url, pid
    finally:
        subprocess.run([str(script), "stop", str(data)], check=False, capture_output=True)


@contextmanager
def firstline(work: Path, db_url: str, github: str, topology: str,
              concurrency: int | None = None) -> Iterator[tuple[str, dict[str, int]]]:
    """Run the topology in enforce mode against the stand-in; yield the webhook base URL
    and the pid of each process by name."""
    rules = work / "scope.yaml"
    text = SCOPE.read_text()
    assert "mode: shadow" in text, "examples/scope.yaml no longer says `mode: shadow`"
    rules.write_text(text.replace("mode: shadow", "mode: enforce", 1))
    env = child_env({"FIRSTLINE_DATABASE_URL": db_url, "FIRSTLINE_RULES": str(rules),
                     "FIRSTLINE_GITHUB_API_URL": github, "FIRSTLINE_GITHUB_TOKEN": TOKEN,
                     "FIRSTLINE_GITHUB_WEBHOOK_SECRET": SECRET,
                     "FIRSTLINE_API_TOKEN": "bench-api-token",
                     **({"FIRSTLINE_OUTBOX_CONCURRENCY": str(concurrency)} if concurrency else {})})
    if db_url.startswith("postgresql"):
        done = subprocess.run([str(BIN / "firstline"), "db", "upgrade"], env=env, cwd=work,
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"firstline db upgrade failed:\n{done.stdout}{done.stderr}")
    port = free_port()
    serve = [str(BIN / "firstline"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    commands = {"serve": serve} if topology == "embedded" else {
        "serve --no-worker": [*serve, "--no-worker"],
        "worker 1": [str(BIN / "firstline"), "worker"],
        "worker 2": [str(BIN / "firstline"), "worker"]}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    log = work / "firstline.log"
    try:
        with open(log, "ab") as out:
            for name, command in commands.items():
                procs[name] = subprocess.Popen(command, env=env, cwd=work, stdout=out,
                                               stderr=subprocess.STDOUT,
                                               start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        first = next(iter(procs.values()))
        wait_http(f"{base}/readyz", first, log)
        yield base, {name: p.pid for name, p in procs.items()}
    finally:
        for proc in procs.values():
            stop_group(proc)


@contextmanager
def profiler(pid: int, out: Path | None, seconds: float, mode: str) -> Iterator[None]:
    """Record `pid` with py-spy for `seconds`, as collapsed stacks per thread: `gil` only
    the thread holding the GIL (what one process can do at most), `cpu` threads not
    sleeping, `wall` every thread (waits for locks, sockets and the GIL included)."""
    if out is None:
        yield
        return
    spy = BIN / "py-spy"
    if not spy.exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    proc = subprocess.Popen([str(spy), "record", "--pid", str(pid), "--rate", "200",
                             "--duration", str(math.ceil(seconds)), "--format", "raw",
                             "--threads", "--subprocesses", "--nonblocking",
                             *{"gil": ["--gil"], "cpu": [], "wall": ["--idle"]}[mode],
                             "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        yield
        proc.wait(timeout=seconds + 30)
    finally:
        stop_group(proc)


def log_problems(log: Path) -> list[str]:
    """Count firstline's WARNING/ERROR lines by message (numbers blanked), for the report."""
    counts: dict[str, int] = {}
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] in ("WARNING", "ERROR", "CRITICAL"):
            key = " ".join(parts[2:])
            key = "".join("#" if c.isdigit() else c for c in key)[:160]
            counts[key] = counts.get(key, 0) + 1
    return [f"{n:6} x {key}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1])]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def control(base: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


# -- load ----------------------------------------------------------------------------


class Deliveries:
    """Make delivery n: the real fixture, issue n assigned to the CTO by someone else."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.template = orjson.loads(FIXTURE.read_bytes())
        assert self.template["repository"]["full_name"] == REPO

    def make(self, n: int) -> tuple[bytes, dict[str, str]]:
        payload = dict(self.template)
        cto = {**payload["assignee"], "login": CTO}
        issue = dict(payload["issue"])
        old = f"/issues/{issue['number']}"
        for key in ("url", "html_url", "comments_url", "events_url", "labels_url"):
            if isinstance(issue.get(key), str):
                issue[key] = issue[key].replace(old, f"/issues/{n}")
        issue.update(id=ISSUE_ID_BASE + n, number=n, assignee=cto, assignees=[cto],
                     updated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        payload.update(issue=issue, assignee=cto,
                       sender={**payload["sender"], "login": SENDER})
        body = orjson.dumps(payload)
        headers = signed_headers("github", body, "issues", f"{self.run}-{n}", SECRET)
        return body, headers


@dataclass
class Load:
    """What the generator did, per delivery index (0-based; issue number = index + 1)."""

    count: int
    scheduled: list[float] = field(default_factory=list)  # monotonic
    sent: list[float] = field(default_factory=list)  # monotonic, just before the request
    sent_wall: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)  # HTTP status, -1 transport error

    def answered_last(self) -> float:
        return max((t for t in self.answered if not math.isnan(t)), default=float("nan"))

    def __post_init__(self) -> None:
        nan = float("nan")
        self.scheduled = [nan] * self.count
        self.sent = [nan] * self.count
        self.sent_wall = [nan] * self.count
        self.answered = [nan] * self.count
        self.status = [0] * self.count


def drive(url: str, deliveries: Deliveries, rate: float, count: int,
          stop: threading.Event) -> Load:
    """Send `count` deliveries at `rate`/s, open loop; return when all are answered."""
    load = Load(count)
    todo: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    host, port = url.removeprefix("http://").split(":")

    def post(conn: http.client.HTTPConnection, body: bytes, headers: dict[str, str]) -> int:
        conn.request("POST", "/webhooks/github", body, headers)
        answer = conn.getresponse()
        answer.read()
        return answer.status

    busy = [0]  # sender threads taken, under `lock`
    lock = threading.Lock()
    threads: list[threading.Thread] = []

    def sender() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        used = False
        while (i := todo.get()) is not None and not stop.is_set():
            body, headers = deliveries.make(i + 1)
            load.sent_wall[i] = time.time()
            load.sent[i] = time.monotonic()
            for retry in (used, False):
                try:
                    load.status[i] = post(conn, body, headers)
                    used = True
                    break
                except (OSError, http.client.HTTPException):
                    # The server closes keep-alive connections idle for 5 s: resend once
                    # on a fresh one (same delivery id, so it cannot be stored twice).
                    load.status[i] = -1
                    conn.close()
                    conn = http.client.HTTPConnection(host, int(port), timeout=30)
                    used = False
                    if not retry:
                        break
            load.answered[i] = time.monotonic()
            with lock:
                busy[0] -= 1
        conn.close()

    def spawn() -> None:
        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        threads.append(thread)

    for _ in range(SENDERS):
        spawn()
    start = time.monotonic() + 0.05
    for i in range(count):
        due = start + i / rate
        load.scheduled[i] = due
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if stop.is_set():
            break
        with lock:
            busy[0] += 1
            short = busy[0] > len(threads)
        if short and len(threads) < MAX_SENDERS:  # slow answers: open another connection
            spawn()
        todo.put(i)
    for _ in threads:
        todo.put(None)
    for thread in threads:
        thread.join()
    return load


# -- figures -------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def stages_from_db(db_url: str, run: str, issues: dict[str, Any], load: Load,
                   window: range) -> tuple[list[tuple[str, list[float]]], list[str]]:
    """Split each measured delivery's latency with the database's and stand-in's clocks;
    also say what the outbox still holds (actions not done, and why)."""
    from sqlalchemy import select

    from router.db.engine import make_engine
    from router.db.tables import decisions, inbox, outbox

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(inbox.c.delivery_id, inbox.c.received_at, inbox.c.processed_at,
                       decisions.c.id).join(decisions, decisions.c.inbox_id == inbox.c.id)
            ).all()
            acts = conn.execute(select(outbox.c.decision_id, outbox.c.type, outbox.c.created_at,
                                       outbox.c.done_at, outbox.c.attempts, outbox.c.status,
                                       outbox.c.next_at, outbox.c.last_error)).all()
            waiting = conn.execute(select(inbox.c.id).where(inbox.c.status != "done")).all()
    finally:
        engine.dispose()
    notes = [f"inbox: {len(waiting)} deliveries not decided"] if waiting else []
    now = datetime.now(UTC).timestamp()
    for status in ("pending", "dead"):
        left = [a for a in acts if a.status == status]
        if not left:
            continue
        note = f"outbox: {len(left)} actions {status}"
        claimed = [a.next_at.timestamp() - now for a in left if a.attempts > 0]
        if claimed and status == "pending":
            note += (f", {len(claimed)} of them claimed and never recorded: due again in "
                     f"{min(claimed):.0f}..{max(claimed):.0f} s, when their lease ends")
        errors = sorted({(a.last_error or "")[:100] for a in left} - {""})
        notes.append(note + (f"; errors: {errors[:3]}" if errors else ""))
    done: dict[tuple[int, str], Any] = {(a.decision_id, a.type): a for a in acts}
    names = ["sent -> stored (received_at)", "stored -> worker takes it (processed_at)",
             "worker takes it -> first GitHub call", "assign: first call -> recorded done",
             "assign done -> comment POST arrives", "total (wall clocks)"]
    out: dict[str, list[float]] = {name: [] for name in names}
    by_delivery = {r.delivery_id: r for r in rows}
    for i in window:
        row = by_delivery.get(f"{run}-{i + 1}")
        issue = issues.get(str(i + 1))
        if row is None or issue is None or not issue["comment_wall"] or row.processed_at is None:
            continue
        assign = done.get((row.id, "assign"))
        if assign is None or assign.done_at is None:
            continue
        sent = load.sent_wall[i]
        marks = [sent, row.received_at.timestamp(), row.processed_at.timestamp(),
                 issue["first_wall"], assign.done_at.timestamp(), issue["comment_wall"][0]]
        for name, a, b in zip(names, marks, marks[1:], strict=False):
            out[name].append(b - a)
        out[names[-1]].append(marks[-1] - marks[0])
    rates = []
    for what, times in (("sent", [load.sent_wall[i] for i in window]),
                        ("decided", [by_delivery[f"{run}-{i + 1}"].processed_at.timestamp()
                                     for i in window if f"{run}-{i + 1}" in by_delivery
                                     and by_delivery[f"{run}-{i + 1}"].processed_at]),
                        ("commented", [issues[str(i + 1)]["comment_wall"][0] for i in window
                                       if issues[str(i + 1)]["comment_wall"]])):
        times = [t for t in times if not math.isnan(t)]
        span = max(times) - min(times) if len(times) > 1 else 0.0
        rates.append(f"{what} {(len(times) - 1) / span:.1f}/s" if span else f"{what} -")
    notes.insert(0, "throughput over the measured deliveries (first to last): "
                 + ", ".join(rates) + " (a stage slower than the sending builds a backlog)")
    return list(out.items()), notes


@dataclass
class Outcome:
    db: str
    sent: int
    accepted: int
    observed: int
    latencies: list[float]
    rate: float
    lag_p99: float
    lag_max: float
    answer_p95: float
    missing: list[int]
    duplicates: list[int]
    wrong_assignee: list[int]
    refused: dict[int, int]
    stages: list[tuple[str, list[float]]]
    cpu_ms: dict[str, float]
    github_calls: dict[str, int]
    total: int  # deliveries sent, warm-up included
    standin_ms: float
    load_before: str
    load_after: str
    over_time: list[tuple[int, float, float]]
    drain_s: float  # from the last webhook answer to the last comment
    during: float  # comments per second that arrived while sending
    log_lines: list[str]  # firstline's warnings and errors, counted
    outbox_notes: list[str]  # what the database still holds undone at the end


def run_one(label: str, topology: str, rate: float, seconds: float,
            args: argparse.Namespace, work: Path, stop: threading.Event) -> Outcome:
    work.mkdir(parents=True)
    work.chmod(0o755)
    db = label
    run = f"e2e-{work.name}-{os.getpid()}"
    warm = int(rate * args.warmup)
    measured = int(rate * seconds)
    count = warm + measured
    with ExitStack() as stack:
        github, standin_pid = stack.enter_context(standin(work))
        pg_pid = None
        if topology == "scale-out":
            db_url, pg_pid = stack.enter_context(postgres(work))
        else:
            db_url = f"sqlite:///{work / 'firstline.db'}"
        print(f"[{label}] starting {topology} ...", file=sys.stderr)
        base, firstline_pids = stack.enter_context(
            firstline(work, db_url, github, topology, args.concurrency))
        server_pid = next(iter(firstline_pids.values()))
        control(github, "POST", "/_bench/issues",
                {"repo": REPO, "first": 1, "count": count, "assignees": [CTO]})
        deliveries = Deliveries(run)
        pids: dict[str, int | None] = {**firstline_pids, "stand-in": standin_pid,
                                       "postgres": pg_pid}
        cpu0 = {name: process_cpu(pid) for name, pid in pids.items()}
        gen0 = time.process_time()
        load_before = loadavg()
        print(f"[{db}] {args.warmup:g} s warm-up + {seconds:g} s at {rate:g}/s "
              f"({count} deliveries), load average {load_before}", file=sys.stderr)
        profile = (args.profile / f"e2e-{db}.txt") if args.profile else None
        result: list[Load] = []

        def go() -> None:
            result.append(drive(base, deliveries, rate, count, stop))

        driver = threading.Thread(target=go, daemon=True)
        driver.start()
        try:
            time.sleep(args.warmup)
            with profiler(server_pid, profile, seconds, args.profile_mode):
                driver.join()
        except BaseException:
            stop.set()  # the senders stop before the servers go away
            raise
        if not result:
            raise KeyboardInterrupt
        load = result[0]
        load_after = loadavg()
        accepted = sum(1 for s in load.status if s in ACCEPTED)
        # Wait for the backlog while it moves: up to --drain seconds, or 15 s without a
        # new comment (stuck), so late actions are told apart from lost ones.
        deadline = time.monotonic() + args.drain
        last, moved = -1, time.monotonic()
        while not stop.is_set() and time.monotonic() < deadline:
            commented = control(github, "GET", "/_bench/progress")["commented"]
            if commented >= accepted:
                break
            if commented != last:
                last, moved = commented, time.monotonic()
            elif time.monotonic() - moved > STALL_S:
                break
            time.sleep(0.25)
        time.sleep(0.5)  # a duplicate comment would come right after the first
        cpu = {name: process_cpu(pid) - cpu0[name] for name, pid in pids.items()}
        cpu["generator"] = time.process_time() - gen0
        results = control(github, "GET", "/_bench/results")
        log_lines = log_problems(work / "firstline.log")
        window = range(warm, count)
        stages, outbox_notes = stages_from_db(db_url, run, results["issues"], load, window)
    issues = results["issues"]
    latencies, missing, duplicates, wrong = [], [], [], []
    over_time: dict[int, list[float]] = {}
    for i in range(count):
        issue = issues[str(i + 1)]
        if load.status[i] in ACCEPTED and not issue["comment_mono"]:
            missing.append(i + 1)
        if len(issue["comment_mono"]) > 1:
            duplicates.append(i + 1)
        if load.status[i] in ACCEPTED and issue["assignees"] != [OWNER]:
            wrong.append(i + 1)
        if i in window and load.status[i] in ACCEPTED and issue["comment_mono"]:
            latency = issue["comment_mono"][0] - load.sent[i]
            latencies.append(latency)
            over_time.setdefault(int((load.sent[i] - load.sent[warm]) // 5) * 5, []).append(
                latency)
    sent_times = [load.sent[i] for i in window if not math.isnan(load.sent[i])]
    # Comments that arrived while deliveries were being sent, per second of sending: the
    # rate the whole pipeline kept up under load (a backlog only drains after it).
    began = load.sent[0]
    ended = max((t for t in load.sent if not math.isnan(t)), default=began)
    during = sum(1 for x in issues.values() for t in x["comment_mono"][:1]
                 if began <= t <= ended) / max(1e-9, ended - began)
    span = max(sent_times) - min(sent_times) if len(sent_times) > 1 else float("nan")
    lags = [load.sent[i] - load.scheduled[i] for i in window if not math.isnan(load.sent[i])]
    answers = [load.answered[i] - load.sent[i] for i in window if load.status[i] in ACCEPTED]
    refused: dict[int, int] = {}
    for i in window:
        if load.status[i] not in ACCEPTED:
            refused[load.status[i]] = refused.get(load.status[i], 0) + 1
    n = max(1, sum(1 for s in load.status if s))  # CPU and calls cover warm-up and drain too
    return Outcome(
        db=db, sent=len(sent_times), accepted=sum(1 for i in window if load.status[i] in ACCEPTED),
        observed=len(latencies), latencies=latencies,
        rate=(len(sent_times) - 1) / span if span == span and span > 0 else float("nan"),
        lag_p99=pct(lags, 99), lag_max=max(lags, default=float("nan")),
        answer_p95=pct(answers, 95), missing=missing, duplicates=duplicates,
        wrong_assignee=wrong, refused=refused, stages=stages,
        cpu_ms={k: v * 1000 / n for k, v in cpu.items() if pids.get(k, 1) is not None},
        github_calls=results["counts"], total=n,
        standin_ms=results["handling_s"] * 1000 / max(1, results["handled"]),
        load_before=load_before, load_after=load_after,
        over_time=[(t, pct(v, 50), pct(v, 95)) for t, v in sorted(over_time.items())],
        log_lines=log_lines, outbox_notes=outbox_notes,
        drain_s=max((t for x in issues.values() for t in x["comment_mono"]),
                    default=float("nan")) - load.answered_last(),
        during=during)


def report(o: Outcome, rate: float) -> None:
    lat = o.latencies
    print(f"\n== firstline on {o.db}: webhook in -> comment at the GitHub stand-in ==")
    print(f"load average before {o.load_before}, after {o.load_after} "
          f"({os.cpu_count()} CPUs)")
    print(f"deliveries sent {o.sent}, accepted {o.accepted}, actions observed {o.observed} "
          f"(comments; each after an assign)"
          + (f", refused {o.refused}" if o.refused else ""))
    print(f"send rate achieved {o.rate:.1f}/s (asked {rate:g}/s); generator lag behind "
          f"schedule p99 {ms(o.lag_p99)} ms, max {ms(o.lag_max)} ms; "
          f"202 answer p95 {ms(o.answer_p95)} ms")
    p95 = pct(lat, 95)
    verdict = "meets" if p95 <= GOAL_P95_MS / 1000 else "MISSES"
    print(f"latency ms: p50 {ms(pct(lat, 50))}  p95 {ms(p95)}  p99 {ms(pct(lat, 99))}  "
          f"max {ms(max(lat, default=float('nan')))}  -> {verdict} the goal p95 <= "
          f"{GOAL_P95_MS:g} ms")
    print(f"while sending, comments arrived at {o.during:.1f}/s; the last one came "
          f"{o.drain_s:.1f} s after the last send was answered")
    print("p50/p95 by 5 s of sending: " + ", ".join(
        f"{t}s {ms(a)}/{ms(b)}" for t, a, b in o.over_time))
    print("where the time goes (ms)            p50      p95      p99")
    for name, values in o.stages:
        print(f"  {name:<40} {ms(pct(values, 50)):>7}  {ms(pct(values, 95)):>7}  "
              f"{ms(pct(values, 99)):>7}")
    calls = sum(o.github_calls.values())
    print(f"GitHub calls: {calls} ({calls / o.total:.2f} per delivery) "
          + ", ".join(f"{k} {v}" for k, v in sorted(o.github_calls.items()))
          + f"; stand-in handling {o.standin_ms:.2f} ms per call")
    print(f"CPU ms per delivery (all {o.total}, warm-up and drain included): "
          + ", ".join(f"{k} {v:.2f}" for k, v in o.cpu_ms.items()))
    problems = [(what, ids) for what, ids in (("missing comment", o.missing),
                                             ("duplicate comment", o.duplicates),
                                             ("wrong assignee", o.wrong_assignee)) if ids]
    for what, ids in problems:
        print(f"CHECK FAILED: {len(ids)} deliveries with {what}: issues {ids[:20]}"
              + (" ..." if len(ids) > 20 else ""))
    if not problems:
        print("check: every accepted delivery got exactly one comment and the owner assigned")
    for note in o.outbox_notes:
        print(note)
    if o.log_lines:
        print("firstline logged:\n" + "\n".join(o.log_lines[:8]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", choices=("embedded", "scale-out", "both"), default="both")
    parser.add_argument("--embedded-rate", type=float, default=EMBEDDED_RATE,
                        help="deliveries/s for the embedded run")
    parser.add_argument("--scale-out-rate", type=float, default=SCALE_OUT_RATE,
                        help="deliveries/s for the scale-out run")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--ramp", type=lambda v: [float(x) for x in v.split(",")],
                        default=list(RAMP), help="embedded ramp rates, comma-separated")
    parser.add_argument("--ramp-seconds", type=float, default=10.0,
                        help="measured window of each ramp step")
    parser.add_argument("--no-ramp", action="store_true", help="skip the embedded ramp")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds sent at the same rate before the window, not measured")
    parser.add_argument("--drain", type=float, default=240.0,
                        help="most seconds to wait for the backlog after sending (it stops "
                             f"sooner once all are seen, or after {STALL_S:g} s without one)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (logs, SQLite database) and print its path")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="FIRSTLINE_OUTBOX_CONCURRENCY (default: firstline's own)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write py-spy collapsed stacks of firstline here")
    parser.add_argument("--profile-mode", choices=("gil", "cpu", "wall"), default="gil",
                        help="gil: samples of the thread holding the GIL; cpu: of threads "
                             "on CPU; wall: of every thread, waiting included")
    args = parser.parse_args()
    if args.profile:
        args.profile = args.profile.resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    work = Path(tempfile.mkdtemp(prefix="firstline-e2e-"))
    work.chmod(0o755)  # PostgreSQL runs as `postgres` (when we are root) and lives in here
    outcomes: list[Outcome] = []
    ramp: list[tuple[float, float]] = []
    plan: list[tuple[str, str, float, float]] = []
    if args.topology in ("embedded", "both"):
        plan.append(("embedded", "embedded", args.embedded_rate, args.seconds))
    if args.topology in ("scale-out", "both"):
        plan.append(("scale-out", "scale-out", args.scale_out_rate, args.seconds))
    try:
        for label, topology, rate, seconds in plan:
            outcome = run_one(label, topology, rate, seconds, args, work / label, stop)
            report(outcome, rate)
            outcomes.append(outcome)
        if args.topology in ("embedded", "both") and not args.no_ramp:
            for rate in args.ramp:
                outcome = run_one(f"ramp {rate:g}/s", "embedded", rate, args.ramp_seconds,
                                  args, work / f"ramp-{rate:g}", stop)
                report(outcome, rate)
                ramp.append((rate, pct(outcome.latencies, 95)))
                if not ramp[-1][1] <= GOAL_P95_MS / 1000:
                    break
    except KeyboardInterrupt:
        stop.set()
        print("\ninterrupted: stopping the servers", file=sys.stderr)
        return 130
    finally:
        stop.set()
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\nsummary            sent  accepted  observed   p50 ms   p95 ms   p99 ms   rate/s  goal")
    for o in outcomes:
        p95 = pct(o.latencies, 95)
        print(f"{o.db:<14} {o.sent:>7} {o.accepted:>9} {o.observed:>9} "
              f"{ms(pct(o.latencies, 50)):>8} {ms(p95):>8} "
              f"{ms(pct(o.latencies, 99)):>8} {o.rate:>8.1f}  "
              + ("p95 <= 100 ms: met" if p95 <= GOAL_P95_MS / 1000 else "p95 <= 100 ms: MISSED"))
    if ramp:
        under = [rate for rate, p95 in ramp if p95 <= GOAL_P95_MS / 1000]
        print("embedded ramp (rate/s: p95 ms): "
              + ", ".join(f"{rate:g}: {ms(p95)}" for rate, p95 in ramp))
        print(f"embedded: p95 stays <= 100 ms up to {max(under, default=0):g} deliveries/s"
              + ("" if len(under) < len(ramp) else " (the highest rate tried)"))
    failed = any(o.missing or o.duplicates or o.wrong_assignee for o in outcomes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
