"""The guarantees under trouble, against real processes: `kill -9` under load (the long
version is bench/soak.py), vendor outages, a database outage."""

from __future__ import annotations

from pathlib import Path

from tests.soak import soak


def test_kill_9_under_load_loses_nothing_acknowledged_and_acts_once(
        tmp_path: Path, db_url: str) -> None:
    out = soak(tmp_path, db_url, count=240, kills=2, seed=14)
    report = "\n".join(out.lines())
    print(f"\n{report}")
    assert out.acknowledged == 240 and out.resent_after_ack > 0, report
    assert out.decided == out.acknowledged and not out.undecided, report
    assert out.duplicates == 0 and not out.missing, report
    assert out.actions_seen == out.actions_expected == 240, report
    assert set(out.outbox) == {"done"}, report
    assert len(out.resumed_s) == 2, report
