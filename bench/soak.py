"""Soak firstline under crashes: many signed deliveries, `kill -9` at random moments.

    .venv/bin/python bench/soak.py [--deliveries 10000 | --minutes N [--rate 20]]
                                   [--kills 5] [--database both] [--seed 1]
                                   [--settle 600] [--rss-every 5] [--keep]

One command, loopback only. For each database (`sqlite`, `postgresql` or `both`; the
PostgreSQL server is a throwaway one from scripts/pg-test-server, durable defaults) it
starts the GitHub and Jira stand-ins and a `firstline serve` in enforce mode, sends
signed real deliveries (the four sources in turn, each varied from a recorded one:
tests/soak.py) from eight senders that redeliver whatever was not acknowledged and send
about one in twenty acknowledged ones again, kills the service with SIGKILL `--kills`
times at random moments and starts it again, waits up to `--settle` seconds for every
delivery to be decided and every action performed, then prints:

    sent, acknowledged, re-sent after acknowledgement, decided (exactly one decision
    per acknowledged delivery), actions expected, seen, duplicates, missing, the
    outbox by status, the time from each restart to the first resumed action (goal:
    within 10 s) and, of that, to /readyz (the interpreter's start-up, which a loaded
    machine stretches), the range of serve's RSS, the run's time.

The load is `--deliveries` sent as fast as serve takes them, with the kills spread over
the sends; or, with `--minutes N`, a steady `--rate` a second for N minutes (N x 60 x
rate deliveries), with the kills spread over those minutes. Either way the resident
memory (VmRSS) of every firstline process (each incarnation of `serve` across the
kills; the stand-ins and the sender are not sampled) is read every `--rss-every`
seconds, and a table per minute of the run (the largest RSS of each process in that
minute) is printed with the verdict against the goal, flat and under 200 MB after
warm-up: warm-up is each process's first 60 s; flat means under 10 % growth from a
process's first sample after warm-up to its last; each process's growth and slope
(MB per minute) are printed beside it.

It exits 1 if anything acknowledged is undecided, an action is missing or doubled.
The memory goal is reported, not enforced: it needs a quiet machine and a long run.
The machine may be shared: times depend on its load, the counts do not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.soak import Outcome, soak  # noqa: E402
from tests.soak_rss import table, verdict  # noqa: E402


def run(database: str, workdir: Path, args: argparse.Namespace) -> Outcome:
    """Soak one database in `workdir`; return what was found."""
    workdir.mkdir(parents=True)
    if database == "sqlite":
        return soak_with(f"sqlite:///{workdir / 'firstline.db'}", workdir, args)
    server = workdir / "pg"
    url = subprocess.run([str(ROOT / "scripts" / "pg-test-server"), "start", str(server)],
                         check=True, capture_output=True, text=True).stdout.strip()
    try:
        subprocess.run([sys.executable, "-m", "router.cli", "db", "upgrade"], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "FIRSTLINE_DATABASE_URL": url})
        return soak_with(url, workdir, args)
    finally:
        subprocess.run([str(ROOT / "scripts" / "pg-test-server"), "stop", str(server)],
                       check=False)


def soak_with(db_url: str, workdir: Path, args: argparse.Namespace) -> Outcome:
    """Soak `db_url` as the command line asks: a count at once, or minutes at a rate."""
    rate = args.rate if args.minutes else None
    return soak(workdir, db_url, planned(args), args.kills, args.seed, args.settle,
                rate=rate, rss_every=args.rss_every)


def planned(args: argparse.Namespace) -> int:
    """Return how many deliveries the command line asks for."""
    return round(args.minutes * 60 * args.rate) if args.minutes else int(args.deliveries)


def load(args: argparse.Namespace) -> str:
    """Describe the load the command line asks for."""
    if args.minutes:
        return f"{args.minutes:g} min at {args.rate:g}/s ({planned(args)} deliveries)"
    return f"{args.deliveries} deliveries"


def report(database: str, out: Outcome, args: argparse.Namespace) -> None:
    """Print what one database's run found, memory last."""
    print(f"== {database}: {load(args)}, {args.kills} kills")
    for line in out.lines():
        print(f"   {line}")
    for problem in (out.undecided + out.missing)[:10]:
        print(f"   ! {problem}")
    print(f"   RSS of firstline's processes (MB, largest per minute; sampled every "
          f"{args.rss_every:g} s; goal: flat and under 200 MB after warm-up):")
    for line in table(out.rss) + verdict(out.rss):
        print(f"     {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    count = parser.add_mutually_exclusive_group()
    count.add_argument("--deliveries", type=int, default=10_000)
    count.add_argument("--minutes", type=float,
                       help="send at a steady --rate for this long instead of --deliveries")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="deliveries a second with --minutes")
    parser.add_argument("--rss-every", type=float, default=5.0,
                        help="seconds between samples of each process's RSS")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settle", type=float, default=600.0,
                        help="seconds to wait for the backlog after the last delivery")
    parser.add_argument("--keep", action="store_true", help="keep the logs and databases")
    args = parser.parse_args()
    top = Path(tempfile.mkdtemp(prefix="firstline-soak-"))
    top.chmod(0o755)  # the PostgreSQL server runs as `postgres` when we are root
    failed = False
    try:
        for database in (["sqlite", "postgresql"] if args.database == "both"
                         else [args.database]):
            out = run(database, top / database, args)
            report(database, out, args)
            failed |= bool(out.undecided or out.missing or out.duplicates)
            failed |= out.acknowledged != planned(args)
    finally:
        if args.keep:
            print(f"logs and databases kept in {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
