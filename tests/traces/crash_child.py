"""Helper for test_crash_writer: a zygote that forks trace-writing children on request.

Importing vigil, zarr and pandas takes about a second; forking a child from a process that has
already imported them (and started no threads) takes milliseconds, so the test can SIGKILL many
writers quickly. Protocol, one line each way:

    stdin  "go <round> <seed>"   fork a child that appends to the trace until killed
    stdout "child <pid>"         the child to kill
    stdout "open <round> <seq>"  (from the child) the writer opened; its next seq
    stdout "ack <seq> <round> <k>"  (from the child) record() returned for a durable record
    stdout "reaped <round>"      the child is gone
    stdin  "quit"

Every line is one ``os.write`` of a few bytes to a pipe, so it is atomic and unbuffered: a line
that was written is a line the test sees, even if the child is killed right after.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time

import numpy as np

from traces._schema import Kind
from traces._writer import TraceWriter

LIFETIME_S = 10.0  # a child nobody killed (the test died) exits on its own


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def child(path: str, chunk_rows: int, round_: int, seed: int) -> None:
    rng = random.Random(seed)
    w = TraceWriter(path, chunk_rows=chunk_rows)
    say(f"open {round_} {w.next_seq}")
    k = 0
    deadline = time.monotonic() + LIFETIME_S
    while time.monotonic() < deadline:
        durable = rng.random() < 0.5
        if rng.random() < 0.6:
            seq = w.record(
                Kind.TRADE,
                {"round": round_, "k": k},
                ts_ns=k,
                asset="BTC/USDT" if k % 2 else None,
                durable=durable,
            )
            if durable:
                say(f"ack {seq} {round_} {k}")
            k += 1
        else:
            n = rng.randint(1, 50)
            seqs = w.record_many(
                Kind.TICKER,
                [{"round": round_, "k": k + j} for j in range(n)],
                np.arange(k, k + n),
                asset=f"S{round_ % 3}/USDT",
                durable=durable,
            )
            if durable:
                say(f"ack {seqs[-1]} {round_} {k + n - 1}")
            k += n
        time.sleep(0.0005)  # ~20 events/ms: chunks fill and commit, the trace stays small


def main() -> None:
    path, chunk_rows = sys.argv[1], int(sys.argv[2])
    assert threading.active_count() == 1, "fork needs a single-threaded zygote"
    for line in sys.stdin:
        words = line.split()
        if words[0] == "quit":
            return
        round_, seed = int(words[1]), int(words[2])
        pid = os.fork()
        if pid == 0:
            try:
                child(path, chunk_rows, round_, seed)
            finally:
                os._exit(0)
        say(f"child {pid}")
        os.waitpid(pid, 0)
        say(f"reaped {round_}")


if __name__ == "__main__":
    main()
