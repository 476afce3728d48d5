"""Benchmark the decision path: parse + decide against plain json.loads, in one run.

    .venv/bin/python bench/decide.py [--items 100000] [--rules examples/scope.yaml]

Builds a corpus of distinct deliveries from the real vendor fixtures (each copy gets its
own item id, key and time, and some get trigger labels), then times on one core:

  baseline   json.loads of every payload (the floor any JSON webhook consumer pays)
  decoder    orjson.loads, which firstline uses
  explain    orjson.loads + adapter.parse + decide() with no history, and that minus the
             decoder (parse + decide alone)
  replay     the whole path plus the in-memory ledger, timers and all (what `replay` does)

and prints decisions/s and each path's time as a ratio of the baseline. The machine's
other load moves all figures together; the ratios are the comparable part.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters import ADAPTERS  # noqa: E402
from router.core.decide import decide  # noqa: E402
from router.core.model import History  # noqa: E402
from router.core.simulate import Delivery, simulate  # noqa: E402
from router.scope.load import load_scope  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "vendor"
LABELS = ["payments", "bug", "architecture", "cloud-bill", "vendor", "security", "outage"]
GITHUB_TYPES = {"issues", "issue_comment", "pull_request", "check_suite", "deployment_status",
                "ping"}


def _vary_jira(p: dict[str, Any], n: int, when: datetime, label: str | None) -> None:
    issue = p.get("issue") or {}
    issue["id"] = str(900000 + n)
    issue["key"] = f"BENCH-{n}"
    p["timestamp"] = int(when.timestamp() * 1000)
    fields = issue.get("fields") or {}
    if label and "labels" in fields:
        fields["labels"] = [*fields.get("labels", []), label]


def _vary_linear(p: dict[str, Any], n: int, when: datetime, label: str | None) -> None:
    data = p["data"]
    data["id"] = f"bench-{n}"
    data["number"] = n
    data.pop("identifier", None)
    data["updatedAt"] = when.isoformat().replace("+00:00", "Z")
    if label and "labels" in data:
        data["labels"] = [*data["labels"], {"id": label, "name": label, "color": "#fff"}]


def _vary_github(p: dict[str, Any], n: int, when: datetime, label: str | None) -> None:
    for key in ("issue", "pull_request"):
        obj = p.get(key)
        if obj:
            obj["id"] = 700000 + n
            obj["number"] = n
            obj["updated_at"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
            if label:
                obj["labels"] = [*obj.get("labels", []), {"name": label}]


def _vary_pagerduty(p: dict[str, Any], n: int, when: datetime, label: str | None) -> None:
    event = p["event"]
    event["occurred_at"] = when.isoformat().replace("+00:00", "Z")
    if event["data"].get("type") == "incident":
        event["data"]["id"] = f"PB{n:06d}"


VARY: dict[str, Callable[[dict[str, Any], int, datetime, str | None], None]] = {
    "jira": _vary_jira, "linear": _vary_linear, "github": _vary_github,
    "pagerduty": _vary_pagerduty,
}


def build_corpus(count: int, seed: int = 7, start: datetime | None = None,
                 step: timedelta = timedelta(seconds=20)) -> list[tuple[str, str | None, bytes]]:
    """Return `count` (source, github event type, body) triples made from the fixtures,
    the n-th dated `start + n * step` (default: from 2026-11-02 08:00 UTC, 20 s apart)."""
    rng = random.Random(seed)
    templates = []
    for source in VARY:
        for path in sorted((FIXTURES / source).glob("*.json")):
            event_type = path.name.split(".")[0] if source == "github" else None
            if event_type is not None and event_type not in GITHUB_TYPES:
                event_type = None
            templates.append((source, event_type, orjson.loads(path.read_bytes())))
    start = start or datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    corpus = []
    for n in range(count):
        source, event_type, template = templates[n % len(templates)]
        payload = copy.deepcopy(template)
        label = rng.choice(LABELS) if rng.random() < 0.3 else None
        VARY[source](payload, n, start + step * n, label)
        corpus.append((source, event_type, orjson.dumps(payload)))
    return corpus


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    began = time.perf_counter()
    done = fn()
    return time.perf_counter() - began, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rules", default=str(ROOT / "examples" / "scope.yaml"))
    args = parser.parse_args()
    scope, _ = load_scope(args.rules)
    print(f"building {args.items:,} deliveries from {FIXTURES} ...", file=sys.stderr)
    corpus = build_corpus(args.items)
    megabytes = sum(len(b) for _, _, b in corpus) / 1e6
    # The corpus is long-lived: keep the collector from re-scanning it in every path.
    gc.collect()
    gc.freeze()

    def baseline() -> int:
        for _, _, body in corpus:
            json.loads(body)
        return len(corpus)

    def decode() -> int:
        for _, _, body in corpus:
            orjson.loads(body)
        return len(corpus)

    def stateless() -> int:
        history = History()
        for source, event_type, body in corpus:
            event = ADAPTERS[source].parse(orjson.loads(body), event_type)  # type: ignore[index]
            decide(event, scope, history, event.occurred_at or datetime.now(UTC))
        return len(corpus)

    def replay() -> int:
        deliveries = [Delivery("", ADAPTERS[s].parse(orjson.loads(b), t))  # type: ignore[index]
                      for s, t, b in corpus]
        return sum(1 for _ in simulate(deliveries, scope))

    base_s, _ = timed(baseline)
    decode_s, _ = timed(decode)
    decide_s, decided = timed(stateless)
    replay_s, replayed = timed(replay)
    print(f"corpus: {len(corpus):,} deliveries, {megabytes:.1f} MB of JSON, rules {args.rules}")
    print(f"{'path':<34} {'seconds':>8} {'per second':>12} {'x json.loads':>13}")
    rows = (("json.loads (baseline)", base_s, len(corpus)),
            ("orjson.loads (our decoder)", decode_s, len(corpus)),
            ("bytes -> decision (explain)", decide_s, decided),
            ("  of which parse + decide", decide_s - decode_s, decided),
            ("bytes -> decision, replay ledger", replay_s, replayed))
    for name, seconds, count in rows:
        print(f"{name:<34} {seconds:8.2f} {count / seconds:12,.0f} {seconds / base_s:13.2f}")
    print(f"goal: >= 20,000 decisions/s on one core and <= 2.0x json.loads. parse + decide: "
          f"{decided / (decide_s - decode_s):,.0f}/s at {(decide_s - decode_s) / base_s:.2f}x; "
          f"whole path from bytes: {decided / decide_s:,.0f}/s at {decide_s / base_s:.2f}x "
          f"({replayed - len(corpus)} timer decisions in the replay)")


if __name__ == "__main__":
    main()
