"""Crash test: a busy Sim strategy process is SIGKILLed at random moments, 20 times.

Each time the trace must open, its seq must be contiguous from 0, every event the strategy
was told was durable (the seq after each `call` returned) must be there, and replay of the
crashed run must pass its per-event state checks.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from traces import list_runs, read_trace, replay_from_trace

HERE = Path(__file__).resolve().parents[1]  # tests/

KILLS = 20
CHILD = f"""
import sys, trio
from runtime import Sim, start, strategy
s = strategy({str(HERE / "busy_strategy.py")!r}, mode=Sim(bars=50_000, seed=int(sys.argv[2])),
             config={{"trace_root": sys.argv[1], "trace_market": True}})
trio.run(start, s)
"""


def acknowledged(path: Path) -> list[int]:
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    return [int(x) for x in lines[:-1] if x]  # the last piece may be torn


def test_sigkill_loses_no_acknowledged_event(tmp_path: Path) -> None:
    rng = random.Random(20261121)
    root = tmp_path / "traces"
    trace = root / "binance" / "sim" / "busy_strategy.zarr"
    acks = tmp_path / "acks"
    env = {**os.environ, "VIGIL_ACK_FILE": str(acks)}
    highest = -1
    for kill in range(KILLS):
        before = len(acknowledged(acks))
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), str(kill)],
            env=env,
            cwd=HERE.parent,
            stderr=subprocess.PIPE,
        )
        try:
            # Let it start trading, then kill it at a random moment.
            deadline = time.monotonic() + 60
            while len(acknowledged(acks)) <= before and child.poll() is None:
                assert time.monotonic() < deadline, "the child never acknowledged an order"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.25))
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            assert child.returncode == -signal.SIGKILL, child.stderr.read() if child.stderr else ""
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            if child.stderr is not None:
                child.stderr.close()

        df = read_trace(trace)
        seq = df["seq"].to_numpy()
        assert np.array_equal(seq, np.arange(len(seq))), f"kill {kill}: seq has a gap"
        acked = acknowledged(acks)
        assert acked, f"kill {kill}: nothing was acknowledged"
        assert max(acked) > highest, f"kill {kill}: the child acknowledged nothing new"
        assert max(acked) < len(seq), f"kill {kill}: acknowledged seq {max(acked)} was lost"
        highest = max(acked)
        assert len(list_runs(trace)) == kill + 1
        # Each crashed run still replays with every event's state check passing.
        replay_from_trace(trace)
