"""SIGKILL a writer at random moments: no acknowledged event is ever lost, seq stays contiguous."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tracekit import iter_files

from traces._reader import read_trace

HELPER = Path(__file__).with_name("crash_child.py")
ROUNDS = 25
CHUNK = 256  # small, so kills land in commits and WAL rotations too


def test_sigkill_loses_no_acknowledged_event(trace_path: Path) -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), str(trace_path), str(CHUNK)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    watchdog = threading.Timer(120, proc.kill)  # a hang fails the test instead of CI
    watchdog.start()
    assert proc.stdin is not None
    assert proc.stdout is not None
    rng = random.Random(20240601)
    acked: dict[int, tuple[int, int]] = {}
    total = 0
    opened_at: list[int] = []
    try:
        for round_ in range(ROUNDS):
            proc.stdin.write(f"go {round_} {rng.randrange(1 << 30)}\n".encode())
            proc.stdin.flush()
            words = proc.stdout.readline().split()
            assert words[:1] == [b"child"], words
            pid = int(words[1])

            def handle(words: list[bytes], round_: int = round_, total: int = total) -> None:
                if words[0] == b"open":
                    # The new writer sees exactly what readers saw after the last kill.
                    assert int(words[2]) == total, (round_, words)
                    opened_at.append(total)
                elif words[0] == b"ack":
                    seq, r, k = (int(x) for x in words[1:])
                    acked[seq] = (r, k)

            if round_ % 2:  # odd rounds: kill while appending (and committing)
                while (words := proc.stdout.readline().split())[:1] != [b"open"]:
                    assert words, "helper died"
                handle(words)
                time.sleep(rng.uniform(0.0, 0.05))
            else:  # even rounds: anywhere, opening (creating, recovering) included
                time.sleep(rng.uniform(0.0, 0.1))
            os.kill(pid, signal.SIGKILL)
            while (words := proc.stdout.readline().split())[:1] != [b"reaped"]:
                assert words, "helper died"
                handle(words)

            if not trace_path.exists():  # killed while creating it: nothing may be acked
                assert not acked
                continue
            df = read_trace(trace_path)
            total = len(df)
            assert np.array_equal(df["seq"], np.arange(total)), f"gap after round {round_}"
            lost = [s for s in acked if s >= total]
            assert not lost, f"round {round_}: acknowledged seqs {lost[:5]} are missing"
            payloads = df["payload"]
            for seq, (r, k) in acked.items():
                if r == round_:
                    assert payloads.iloc[seq] == {"round": r, "k": k}, seq
        proc.stdin.write(b"quit\n")
        proc.stdin.flush()
        assert proc.wait(10) == 0
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()
    # The kills landed in different phases: some rounds acknowledged events, some chunks were
    # committed, and the last state still reads back in full.
    assert len(opened_at) >= ROUNDS // 2
    assert len(acked) > ROUNDS
    assert total > 4 * CHUNK
    assert any(p.parent.name == "c" for p in iter_files(trace_path))
