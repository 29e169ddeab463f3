"""A short soak (`bench/soak.py`): a Live strategy in its own process on the loopback, under
random orders, lost replies, 5xx and 429 bursts, websocket drops, paused user data and SIGKILLs
with restarts, ends equal to the exchange, replays to its own state, with no duplicate and no
lost fill. The reviewer's run is ``python bench/soak.py --minutes 10``."""

from __future__ import annotations

from pathlib import Path

from bench.soak import FAULTS, run_soak


def test_a_short_soak_converges(tmp_path: Path) -> None:
    report = run_soak(24.0, seed=5, root=tmp_path, kill_every_s=6.0, min_fills=11)
    assert report["problems"] == [], report
    assert report["counts"].get("sigkill", 0) >= 2
    assert sum(report["counts"].get(kind, 0) for kind in FAULTS) >= 20
    assert report["fills"] > 10
    assert report["starts"] == report["counts"].get("sigkill", 0) + 1 + report["counts"].get(
        "child_died", 0
    )
