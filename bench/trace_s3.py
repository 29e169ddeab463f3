"""Traces on object storage: the mirror's cost per commit, and remote against local reads.

    python bench/trace_s3.py [--events 200000]

An S3 server (moto's, in its own process on 127.0.0.1, dummy credentials) stands in for the
store. The same events are written to a local trace root and to an s3:// one; the mirror is
timed per commit (chunk files, array metadata, group metadata: PUTs per chunk set), then the
trace is read back from the URL (cold: empty read cache; warm: only metadata and WAL fetched
again) and locally, in rows per second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from traces import Kind, open_recorder, read_trace
from traces._mirror import Mirror

SERVER = (
    "import sys; from moto.server import ThreadedMotoServer; "
    "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False); s.start(); "
    "print(s.get_host_and_port()[1], flush=True); sys.stdin.read(); s.stop()"
)


def write(root: str, n: int) -> tuple[float, Path, Mirror | None]:
    rec = open_recorder(root, "binance", "live", "bench")
    payload = {"e": "executionReport", "s": "BTCUSDT", "p": "60000.10", "q": "0.0100"}
    rec.record(Kind.ORDER_INTENT, payload, ts_ns=0)  # opens the writer (and the mirror)
    mirror = rec._mirror
    t0 = time.perf_counter()
    for i in range(1, n):
        rec.record(Kind.ORDER_INTENT, {**payload, "i": i}, ts_ns=i)
    rec.close()
    return time.perf_counter() - t0, rec.path, mirror


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-s3-") as tmp:
        os.environ.update(
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
            VIGIL_HOME=str(Path(tmp) / "home"),
        )
        with subprocess.Popen(
            [sys.executable, "-c", SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as server:
            assert server.stdout is not None
            endpoint = f"http://127.0.0.1:{server.stdout.readline().strip()}"
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
            try:
                run(args.events, Path(tmp))
            finally:
                assert server.stdin is not None
                server.stdin.close()
                server.wait(10)


def run(n: int, tmp: Path) -> None:
    commit_s: list[float] = []
    original = Mirror.catch_up

    def timed(self: Mirror) -> int:
        t0 = time.perf_counter()
        try:
            return original(self)
        finally:
            commit_s.append(time.perf_counter() - t0)

    local_s, local_path, _ = write(str(tmp / "local"), n)
    Mirror.catch_up = timed  # type: ignore[method-assign]
    try:
        remote_s, _, mirror = write("s3://bench/team", n)
    finally:
        Mirror.catch_up = original  # type: ignore[method-assign]
    assert mirror is not None
    chunks = n // 8192
    url = "s3://bench/team/binance/live/bench.zarr"

    t0 = time.perf_counter()
    local = read_trace(local_path)
    local_read = time.perf_counter() - t0
    shutil.rmtree(tmp / "home" / "trace-cache" / "read", ignore_errors=True)
    t0 = time.perf_counter()
    cold = read_trace(url)
    cold_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = read_trace(url)
    warm_read = time.perf_counter() - t0
    assert len(cold) == len(warm) == len(local) == n

    # The first call is at open and the last at the seal; the writer batches full chunks, so
    # one commit can carry several chunk sets.
    per_commit = commit_s[1:-1] or commit_s
    print(f"{n:,} order-path events, {chunks} whole chunks of 8192 rows, moto S3 on 127.0.0.1")
    print(f"write+close, local:  {local_s:6.2f} s  ({n / local_s:,.0f} events/s)")
    print(
        f"write+close, s3://: {remote_s:6.2f} s  ({n / remote_s:,.0f} events/s, "
        f"{remote_s / local_s:.2f}x local: close waits for the last uploads and the seal)"
    )
    print(
        f"mirror:              {sum(per_commit) * 1e3 / chunks:.1f} ms per chunk set; "
        f"{len(per_commit)} commits, p50 {statistics.median(per_commit) * 1e3:.1f} ms each"
    )
    print(
        f"PUTs:                {mirror.puts} in all, {mirror.puts / chunks:.1f} per chunk set "
        "(8 arrays' chunk files, then 8 array metadata + the group's per commit; the seal "
        "adds the WAL)"
    )
    print(f"read, local:         {n / local_read:12,.0f} rows/s")
    print(
        f"read, s3:// cold:    {n / cold_read:12,.0f} rows/s  ({local_read / cold_read:.3f}x local)"
    )
    print(
        f"read, s3:// warm:    {n / warm_read:12,.0f} rows/s  ({local_read / warm_read:.3f}x local)"
    )
    print(f"loadavg {os.getloadavg()[0]:.2f}, nproc {os.cpu_count()}")


if __name__ == "__main__":
    main()
