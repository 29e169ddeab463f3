"""Sweep throughput: the same jobs serially, on dask with 1 and 2 workers, and on a bare
ProcessPoolExecutor(2), with the speedup, the efficiency and dask's per-job overhead.

    python bench/sweep.py [--jobs 16] [--bars 20000]

Every engine runs the same `Job`s (sma_cross on generated bars, each writing its trace) into
its own trace root, so none resumes another's work. Cluster and pool start-up is timed apart:
both are started and warmed (one job per worker, which imports vigil there) before the clock
runs. Target: 2 workers at 1.7x serial or better, and within 10% of the process pool.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from distributed import Client, LocalCluster

from runtime import Sim
from runtime.dist._engines import DaskEngine, SerialEngine
from runtime.dist._jobs import Job, run_job
from runtime.dist._sweep import plan, run_jobs


def jobs_for(root: Path, n: int, bars: int) -> list[Job]:
    p = plan(
        "sma_cross",
        data=None,
        mode=Sim(bars=bars, seed=1),
        initial_cash=None,
        trace_root=root,
        sweep_id="bench",
    )
    grid = [{"fast": 4 + i % 8, "slow": 30 + 10 * (i // 8)} for i in range(n)]
    return [p.job(params, markets=("BTC/USDT",)) for params in grid]


def noop() -> int:
    return 0


def cluster(n: int, scratch: str) -> tuple[LocalCluster, Client]:
    c = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        local_directory=scratch,
    )
    client = Client(c)
    client.wait_for_workers(n)
    return c, client


def timed_sweep(engine: object, jobs: list[Job]) -> float:
    t0 = time.perf_counter()
    rows = run_jobs(jobs, None, engine=engine, progress=False)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - t0
    failed = [r["error"] for r in rows if r.get("error")]
    if failed:
        raise SystemExit(f"a job failed: {failed[0]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--bars", type=int, default=20_000)
    args = ap.parse_args()
    nproc = os.cpu_count() or 1
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-sweep-") as tmp:
        base = Path(tmp)
        warm = jobs_for(base / "warm", 2, 500)

        serial = timed_sweep(SerialEngine(), jobs_for(base / "serial", args.jobs, args.bars))

        dask_times: dict[int, float] = {}
        startup: dict[int, float] = {}
        submit_ms: list[float] = []
        for n in (1, 2):
            t0 = time.perf_counter()
            c, client = cluster(n, str(base / f"scratch{n}"))
            startup[n] = time.perf_counter() - t0
            try:
                engine = DaskEngine(client, owned=False)
                timed_sweep(engine, jobs_for(base / f"warm-dask{n}", n, 500))
                dask_times[n] = timed_sweep(
                    engine, jobs_for(base / f"dask{n}", args.jobs, args.bars)
                )
                if n == 1:  # a round trip through the scheduler for a job that does nothing
                    for _ in range(50):
                        t1 = time.perf_counter()
                        client.submit(noop, pure=False).result()
                        submit_ms.append((time.perf_counter() - t1) * 1e3)
            finally:
                client.close()
                c.close()

        t0 = time.perf_counter()
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(run_job, warm))
            pool_start = time.perf_counter() - t0
            jobs = jobs_for(base / "pool", args.jobs, args.bars)
            t1 = time.perf_counter()
            rows = list(pool.map(run_job, jobs))
            pooled = time.perf_counter() - t1
        assert not any(r["error"] for r in rows)

        bare_ms = []
        for _ in range(10):
            t1 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            bare_ms.append((time.perf_counter() - t1) * 1e3)

    per_job = serial / args.jobs
    speedup = serial / dask_times[2]
    print(f"{args.jobs} sweep jobs: sma_cross on {args.bars:,} generated 1m bars, traced")
    print(
        f"nproc {nproc}; loadavg before {load_before[0]:.2f} {load_before[1]:.2f}, "
        f"after {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}"
    )
    print(f"serial (this process)     {serial:7.2f} s   ({per_job * 1e3:.0f} ms a job)")
    print(f"dask, 1 worker            {dask_times[1]:7.2f} s   (cluster start {startup[1]:.2f} s)")
    print(f"dask, 2 workers           {dask_times[2]:7.2f} s   (cluster start {startup[2]:.2f} s)")
    print(f"ProcessPoolExecutor(2)    {pooled:7.2f} s   (pool start + warm-up {pool_start:.2f} s)")
    print(
        f"speedup, 2 dask workers vs serial: {speedup:.2f}x (target >= 1.7x); "
        f"efficiency {speedup / 2 * 100:.0f}%"
    )
    print(
        f"2 dask workers vs ProcessPoolExecutor(2): {dask_times[2] / pooled:.3f}x the time "
        f"(target <= 1.10x)"
    )
    print(
        f"dask per-job overhead on these jobs, 1 worker vs serial: "
        f"{(dask_times[1] - serial) / args.jobs * 1e3:+.1f} ms a job"
    )
    print(
        f"dask round trip of an empty job: p50 {statistics.median(submit_ms):.2f} ms; "
        f"a bare subprocess (`python -c pass`): p50 {statistics.median(bare_ms):.1f} ms "
        f"({statistics.median(bare_ms) / statistics.median(submit_ms):.0f}x dask's)"
    )


if __name__ == "__main__":
    main()
