"""Resident memory of firstline's processes during a soak, sampled from /proc, and the
verdict against the goal: flat and under 200 MB after warm-up.

Only firstline's processes are sampled (`serve`, every incarnation across kills, and any
child it starts), never the stand-ins or the load generator, which are not the product.
A process warms up after each start (imports, first queries, caches filling), so its
first `WARM_UP_S` seconds are left out of the verdict.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

WARM_UP_S = 60.0
GOAL_MB = 200.0
FLAT_GROWTH = 0.10  # flat: under 10 % from the first sample after warm-up to the last


@dataclass(frozen=True)
class Sample:
    at_s: float  # since the run began
    process: str  # e.g. "serve#2": the second incarnation of serve
    age_s: float  # since that process started
    rss_mb: float


def rss_mb(pid: int) -> float | None:
    """Return a process's resident memory (VmRSS), or None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kb = next((line.split()[1] for line in status.splitlines()
               if line.startswith("VmRSS:")), None)
    return int(kb) / 1024 if kb else None


def with_children(pid: int) -> list[int]:
    """Return `pid` and its descendants (serve runs as one process today; a child it
    started would be firstline's too)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
        except OSError:
            continue
        todo.extend(int(c) for c in children.split())
    return found


@dataclass
class RssSampler:
    """Sample, every `every` seconds, the processes `current()` names: (label, pid,
    monotonic start) of each running firstline process."""

    current: Callable[[], list[tuple[str, int, float]]]
    every: float = 5.0
    began: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        now = time.monotonic()
        for label, pid, started in self.current():
            for n, each in enumerate(with_children(pid)):
                if (mb := rss_mb(each)) is not None:
                    name = label if n == 0 else f"{label}/child{n}"
                    self.samples.append(Sample(now - self.began, name, now - started, mb))

    def __enter__(self) -> RssSampler:
        def loop() -> None:
            while not self._stop.wait(self.every):  # paced sampling, not a wait for a condition
                self.sample()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


# -- the report -------------------------------------------------------------------------


def table(samples: list[Sample]) -> list[str]:
    """Return one line per minute of the run: the largest RSS of each process sampled in
    that minute."""
    minutes: dict[int, dict[str, float]] = {}
    for s in samples:
        row = minutes.setdefault(int(s.at_s // 60), {})
        row[s.process] = max(row.get(s.process, 0.0), s.rss_mb)
    return [f"min {m:>3}  " + ", ".join(f"{p} {mb:.0f}" for p, mb in row.items())
            for m, row in sorted(minutes.items())]


def slope_mb_per_min(samples: list[Sample]) -> float:
    """Return the least-squares slope of RSS over time, in MB per minute."""
    n = len(samples)
    mean_t = sum(s.at_s for s in samples) / n
    mean_r = sum(s.rss_mb for s in samples) / n
    spread = sum((s.at_s - mean_t) ** 2 for s in samples)
    if spread == 0:
        return 0.0
    return 60 * sum((s.at_s - mean_t) * (s.rss_mb - mean_r) for s in samples) / spread


def per_process(samples: list[Sample]) -> list[tuple[str, list[Sample]]]:
    """Group the samples taken after warm-up by process, in the order they ran."""
    warm: dict[str, list[Sample]] = {}
    for s in samples:
        if s.age_s >= WARM_UP_S:
            warm.setdefault(s.process, []).append(s)
    return list(warm.items())


def verdict(samples: list[Sample]) -> list[str]:
    """Return the lines that judge the samples against the goal, each with its definition."""
    warm = [s for s in samples if s.age_s >= WARM_UP_S]
    if not warm:
        return [f"no process lived past its {WARM_UP_S:.0f} s warm-up: nothing to judge"]
    lines = [f"warm-up: each process's first {WARM_UP_S:.0f} s (left out); "
             f"flat: under {FLAT_GROWTH:.0%} from a process's first sample after warm-up "
             f"to its last"]
    growths = []
    for process, own in per_process(samples):
        first, last = own[0], own[-1]
        growth = (last.rss_mb - first.rss_mb) / first.rss_mb
        growths.append(growth)
        lines.append(f"{process}: {_clock(first.at_s)}..{_clock(last.at_s)} "
                     f"{first.rss_mb:.0f} -> {last.rss_mb:.0f} MB ({growth:+.0%}), "
                     f"slope {slope_mb_per_min(own):+.1f} MB/min over {len(own)} samples")
    peak = max(s.rss_mb for s in warm)
    lines.append(f"max RSS after warm-up {peak:.0f} MB (goal under {GOAL_MB:.0f} MB: "
                 f"{'met' if peak < GOAL_MB else 'NOT met'}); largest growth "
                 f"{max(growths):+.0%} ({'flat' if max(growths) < FLAT_GROWTH else 'GROWING'}); "
                 f"all processes together {slope_mb_per_min(warm):+.1f} MB/min")
    return lines


def goal_met(samples: list[Sample]) -> bool:
    """Tell whether RSS after warm-up stayed under the goal and flat in every process."""
    groups = per_process(samples)
    return bool(groups) and all(
        max(s.rss_mb for s in own) < GOAL_MB
        and (own[-1].rss_mb - own[0].rss_mb) / own[0].rss_mb < FLAT_GROWTH
        for _, own in groups)


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
