"""Soak firstline under crashes: many signed deliveries, `kill -9` at random moments.

    .venv/bin/python bench/soak.py [--deliveries 10000] [--kills 5] [--database both]
                                   [--seed 1] [--settle 600] [--keep]

One command, loopback only. For each database (`sqlite`, `postgresql` or `both`; the
PostgreSQL server is a throwaway one from scripts/pg-test-server, durable defaults) it
starts the GitHub and Jira stand-ins and a `firstline serve` in enforce mode, sends
`--deliveries` signed real deliveries (the four sources in turn, each varied from a
recorded one: tests/soak.py) from eight senders that redeliver whatever was not
acknowledged and send about one in twenty acknowledged ones again, kills the service
with SIGKILL `--kills` times at random points of the load and starts it again, waits
up to `--settle` seconds for every delivery to be decided and every action performed,
then prints:

    sent, acknowledged, re-sent after acknowledgement, decided (exactly one decision
    per acknowledged delivery), actions expected, seen, duplicates, missing, the
    outbox by status, the time from each restart to the first resumed action (goal:
    within 10 s) and, of that, to /readyz (the interpreter's start-up, which a loaded
    machine stretches), the service's RSS at each kill and at the end, the run's time.

It exits 1 if anything acknowledged is undecided, an action is missing or doubled.
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


def run(database: str, workdir: Path, args: argparse.Namespace) -> Outcome:
    """Soak one database in `workdir`; return what was found."""
    workdir.mkdir(parents=True)
    if database == "sqlite":
        return soak(workdir, f"sqlite:///{workdir / 'firstline.db'}", args.deliveries,
                    args.kills, args.seed, args.settle)
    server = workdir / "pg"
    url = subprocess.run([str(ROOT / "scripts" / "pg-test-server"), "start", str(server)],
                         check=True, capture_output=True, text=True).stdout.strip()
    try:
        subprocess.run([sys.executable, "-m", "router.cli", "db", "upgrade"], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "FIRSTLINE_DATABASE_URL": url})
        return soak(workdir, url, args.deliveries, args.kills, args.seed, args.settle)
    finally:
        subprocess.run([str(ROOT / "scripts" / "pg-test-server"), "stop", str(server)],
                       check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
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
            print(f"== {database}: {args.deliveries} deliveries, {args.kills} kills")
            for line in out.lines():
                print(f"   {line}")
            for problem in (out.undecided + out.missing)[:10]:
                print(f"   ! {problem}")
            failed |= bool(out.undecided or out.missing or out.duplicates)
            failed |= out.acknowledged != args.deliveries
    finally:
        if args.keep:
            print(f"logs and databases kept in {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
