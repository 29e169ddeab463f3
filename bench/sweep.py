"""Sweep throughput: the same jobs serially, on dask with 1 and 2 workers, and on a bare
ProcessPoolExecutor(2), with the speedup, the efficiency and dask's per-job overhead.

    python bench/sweep.py [--jobs 16] [--bars 50000] [--rounds 5]

Every engine runs the same `Job`s (sma_cross on generated bars, each writing its trace) into
its own trace root, so none resumes another's work. A job is 50,000 one-minute bars (five weeks),
about half a second: small for a real sweep, whose every job is a whole backtest, yet long
enough that the fixed cost of a task (dask's ~10 ms round trip, the pool's pickling) is measured
against work rather than against itself. Cluster and pool start-up is timed apart:
both are started and warmed (one job per worker, which imports vigil there) before the clock
runs. The engines take turns for `--rounds` rounds and the median time of each is kept, so load
from other processes on a shared machine hits them alike. Target: 2 workers at 1.7x serial or
better, and within 10% of the process pool.
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
from collections.abc import Callable
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


def serial_sweep(root: Path, n: int, bars: int) -> float:
    """The serial baseline, run in a process of its own: this one hosts the dask clients,
    whose threads would take the GIL from it, and its heap grows from round to round."""
    return timed_sweep(SerialEngine(), jobs_for(root, n, bars))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--bars", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is kept")
    args = ap.parse_args()
    nproc = os.cpu_count() or 1
    load_before = os.getloadavg()
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="vigil-bench-sweep-") as tmp:
        base = Path(tmp)
        startup: dict[str, float] = {}
        clusters: dict[int, tuple[LocalCluster, Client]] = {}
        for n in (1, 2):
            t0 = time.perf_counter()
            clusters[n] = cluster(n, str(base / f"scratch{n}"))
            startup[f"dask{n}"] = time.perf_counter() - t0
        solo = ProcessPoolExecutor(1, mp_context=spawn)  # where the serial sweeps run
        solo.submit(serial_sweep, base / "warm-serial", 1, 500).result()
        t0 = time.perf_counter()
        pool = ProcessPoolExecutor(2, mp_context=spawn)
        list(pool.map(run_job, jobs_for(base / "warm-pool", 2, 500)))
        startup["pool"] = time.perf_counter() - t0
        engines = {n: DaskEngine(clusters[n][1], owned=False) for n in (1, 2)}
        for n, engine in engines.items():  # one job per worker: imports vigil there
            timed_sweep(engine, jobs_for(base / f"warm-dask{n}", n, 500))

        def pooled(root: Path) -> float:
            jobs = jobs_for(root, args.jobs, args.bars)
            t1 = time.perf_counter()
            rows = list(pool.map(run_job, jobs))
            elapsed = time.perf_counter() - t1
            assert not any(r["error"] for r in rows)
            return elapsed

        runs: dict[str, Callable[[Path], float]] = {
            "serial": lambda root: solo.submit(serial_sweep, root, args.jobs, args.bars).result(),
            "dask1": lambda root: timed_sweep(engines[1], jobs_for(root, args.jobs, args.bars)),
            "dask2": lambda root: timed_sweep(engines[2], jobs_for(root, args.jobs, args.bars)),
            "pool": pooled,
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for r in range(args.rounds):  # interleaved, so a burst of load hits every engine
            for name, run in runs.items():
                times[name].append(run(base / f"{name}-{r}"))

        submit_ms = []
        for _ in range(50):  # a round trip through the scheduler for a job that does nothing
            t1 = time.perf_counter()
            clusters[1][1].submit(noop, pure=False).result()
            submit_ms.append((time.perf_counter() - t1) * 1e3)
        pool.shutdown()
        solo.shutdown()
        for c, client in clusters.values():
            client.close()
            c.close()

        bare_ms = []
        for _ in range(10):
            t1 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            bare_ms.append((time.perf_counter() - t1) * 1e3)

    # The median of the rounds: a burst of load from outside, or a lucky quiet moment, moves
    # one round of one engine, not the comparison.
    typical = {name: statistics.median(ts) for name, ts in times.items()}
    speedup = typical["serial"] / typical["dask2"]
    print(
        f"{args.jobs} sweep jobs: sma_cross on {args.bars:,} generated 1m bars, traced; "
        f"median of {args.rounds} interleaved rounds (all rounds in brackets)"
    )
    print(
        f"nproc {nproc}; loadavg before {load_before[0]:.2f} {load_before[1]:.2f}, "
        f"after {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}"
    )
    labels = {
        "serial": "serial (one process)",
        "dask1": "dask, 1 worker",
        "dask2": "dask, 2 workers",
        "pool": "ProcessPoolExecutor(2)",
    }
    for name, label in labels.items():
        extra = f"; start {startup[name]:.2f} s" if name in startup else ""
        every = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"{label:<24} {typical[name]:7.2f} s  ({every}{extra})")
    print(
        f"speedup, 2 dask workers vs serial: {speedup:.2f}x (target >= 1.7x); "
        f"efficiency {speedup / 2 * 100:.0f}%"
    )
    print(f"ProcessPoolExecutor(2) vs serial: {typical['serial'] / typical['pool']:.2f}x")
    print(
        "2 dask workers vs ProcessPoolExecutor(2): "
        f"{typical['dask2'] / typical['pool']:.3f}x the time (target <= 1.10x)"
    )
    print(
        f"dask per-job overhead on these jobs, 1 worker vs serial: "
        f"{(typical['dask1'] - typical['serial']) / args.jobs * 1e3:+.1f} ms a job"
    )
    print(
        f"dask round trip of an empty job: p50 {statistics.median(submit_ms):.2f} ms; "
        f"a bare subprocess (`python -c pass`): p50 {statistics.median(bare_ms):.1f} ms "
        f"({statistics.median(bare_ms) / statistics.median(submit_ms):.0f}x dask's)"
    )


if __name__ == "__main__":
    main()
