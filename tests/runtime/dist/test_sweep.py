"""`sweep` on every engine: in this process, a LocalCluster of two worker processes, and a
scheduler with workers as separate processes; the rows are the same on all three."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import trio
from distributed import Client

from runtime import ConfigError, Sim, start, strategy, sweep
from runtime.dist import Span, walk_forward
from runtime.model import generate_bars
from tests.conftest import HERE
from tests.runtime.dist.clusters import local_cluster

FRAGILE = HERE / "fragile_strategy.py"
GRID = {"fast": [5, 10, 20], "slow": [30, 50]}
MARKETS = ["BTC/USDT", "ETH/USDT"]  # × GRID = 12 jobs
MODE = Sim(bars=2_000, seed=3)


def comparable(rows: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Rows without their timings, trace paths relative to the sweep's trace root."""
    out = rows.drop(columns="seconds").copy()
    out["trace"] = [None if t is None else str(Path(t).relative_to(root)) for t in out["trace"]]
    return out


def assert_same_stats(stats: dict[str, float], row: pd.Series) -> None:
    """A direct run's statistics equal a sweep row's, a NaN (no CAGR under a month) equal to a
    NaN."""
    pd.testing.assert_series_equal(
        pd.Series(stats, dtype=float),
        row[list(stats)].astype(float),
        check_names=False,
        check_exact=True,
    )


@pytest.fixture(scope="module")
def serial_rows(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("serial")
    rows = sweep("sma_cross", GRID, markets=MARKETS, mode=MODE, client="serial", trace_root=root)
    return comparable(rows, root)


def test_serial_sweep_has_one_row_per_job(serial_rows: pd.DataFrame) -> None:
    assert len(serial_rows) == 12
    assert list(serial_rows.columns[:4]) == ["job", "fast", "slow", "markets"]
    assert serial_rows["error"].isna().all()
    assert serial_rows["job"].is_unique
    # Each market set and each params combination, in job order.
    assert list(serial_rows["markets"]) == ["BTC/USDT"] * 6 + ["ETH/USDT"] * 6
    assert list(zip(serial_rows["fast"][:6], serial_rows["slow"][:6], strict=True)) == [
        (5, 30),
        (5, 50),
        (10, 30),
        (10, 50),
        (20, 30),
        (20, 50),
    ]
    assert serial_rows["sharpe"].nunique() == 12  # the params reach the runs
    for col in ("total_return", "max_drawdown", "trades", "fees"):
        assert serial_rows[col].notna().all()


def test_row_equals_a_direct_run(serial_rows: pd.DataFrame, tmp_path: Path) -> None:
    row = serial_rows.iloc[3]
    s = strategy(
        "sma_cross",
        mode=MODE,
        params={"fast": int(row["fast"]), "slow": int(row["slow"])},
        config={"markets": [row["markets"]], "trace": False},
    )
    trio.run(start, s)
    assert_same_stats(s.results.stats, row)


def test_local_cluster_gives_the_serial_rows(serial_rows: pd.DataFrame, tmp_path: Path) -> None:
    # client=None: a LocalCluster with one worker process per core (2 on this machine).
    rows = sweep("sma_cross", GRID, markets=MARKETS, mode=MODE, client=None, trace_root=tmp_path)
    pd.testing.assert_frame_equal(comparable(rows, tmp_path), serial_rows)


def test_separate_scheduler_and_workers_give_the_serial_rows(
    serial_rows: pd.DataFrame, scheduler_address: str, tmp_path: Path
) -> None:
    assert scheduler_address.startswith("tcp://127.0.0.1:")
    rows = sweep(
        "sma_cross",
        GRID,
        markets=MARKETS,
        mode=MODE,
        client=scheduler_address,
        trace_root=tmp_path,
    )
    pd.testing.assert_frame_equal(comparable(rows, tmp_path), serial_rows)


def test_scattered_dataframe_on_the_cluster(dask_client: Client, tmp_path: Path) -> None:
    frame = generate_bars(["BTC/USDT"], 1_500, seed=11)["BTC/USDT"]
    grid = {"fast": [5, 10], "slow": [30]}
    on_cluster = sweep(
        "sma_cross",
        grid,
        data=frame,
        markets=["BTC/USDT"],
        client=dask_client,
        trace_root=tmp_path / "a",
    )
    serial = sweep(
        "sma_cross",
        grid,
        data=frame,
        markets=["BTC/USDT"],
        client="serial",
        trace_root=tmp_path / "b",
    )
    pd.testing.assert_frame_equal(
        comparable(on_cluster, tmp_path / "a"), comparable(serial, tmp_path / "b")
    )
    assert on_cluster["error"].isna().all()


def test_killing_a_worker_mid_sweep_loses_no_job(serial_rows: pd.DataFrame, tmp_path: Path) -> None:
    cluster, client = local_cluster(tmp_path / "scratch")
    pids = client.run(os.getpid)
    killed: list[int] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            busy = [addr for addr, tasks in client.processing().items() if tasks and addr in pids]
            if busy:
                # Let the job get going (it writes its trace), then kill its worker if it is
                # still at work: the job dies with it.
                time.sleep(0.1)
                if client.processing().get(busy[0]):
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(pids[busy[0]])
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_busy_worker)
    try:
        killer.start()
        rows = sweep(
            "sma_cross",
            GRID,
            markets=MARKETS,
            mode=Sim(bars=2_000, seed=3),
            client=client,
            trace_root=tmp_path / "traces",
        )
        killer.join()
    finally:
        client.close()
        cluster.close()
    assert killed, "no worker was busy to kill"
    assert len(rows) == 12
    # dask ran the dead worker's jobs again elsewhere: every row is the serial one.
    pd.testing.assert_frame_equal(comparable(rows, tmp_path / "traces"), serial_rows)


def test_a_job_whose_worker_dies_past_dask_retries_is_a_row_with_its_error(
    tmp_path: Path,
) -> None:
    # No retries: the job running on the killed worker fails at once, as KilledWorker.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster, client = local_cluster(tmp_path / "scratch")
    pids = client.run(os.getpid)
    killed: list[str] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            busy = [a for a, tasks in client.processing().items() if tasks and a in pids]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_busy_worker)
    try:
        killer.start()
        rows = sweep(
            "sma_cross",
            {"fast": [5, 10, 20, 30]},
            markets=["BTC/USDT"],
            mode=Sim(bars=4_000),
            client=client,
            trace_root=tmp_path / "traces",
        )
        killer.join()
    finally:
        client.close()
        cluster.close()
    assert killed
    assert len(rows) == 4
    errors = [e for e in rows["error"] if e is not None]
    assert errors, "the killed worker's job should carry its error"
    assert all("KilledWorker" in e for e in errors)
    assert rows.loc[rows["error"].isna(), "sharpe"].notna().all()


def test_a_failed_job_is_a_row_with_its_error(tmp_path: Path) -> None:
    rows = sweep(
        FRAGILE,
        {"explode_on_load": [False, True], "fast": [5]},
        mode=Sim(bars=500),
        client="serial",
        trace_root=tmp_path,
    )
    ok, failed = rows.iloc[0], rows.iloc[1]
    assert ok["error"] is None
    assert np.isfinite(ok["sharpe"])
    assert failed["error"] == "RuntimeError: exploded on load"
    assert np.isnan(failed["sharpe"])
    assert failed["trace"] is None


def test_resume_skips_completed_jobs_and_reruns_the_rest(tmp_path: Path) -> None:
    grid = {"fast": [5, 10], "slow": [30, 40]}
    first = sweep("sma_cross", grid, mode=Sim(bars=800), client="serial", trace_root=tmp_path)
    row_files = [Path(t).parents[2] / "row.json" for t in first["trace"]]
    stamps = [f.stat().st_mtime_ns for f in row_files]
    # One job died midway: its trace is partial and it never wrote its row.
    row_files[2].unlink()
    (row_files[2].parent / "binance" / "sim" / "leftover").write_text("partial")
    # Another lost its trace: its row alone does not make it complete.
    shutil.rmtree(Path(first["trace"][3]))

    again = sweep("sma_cross", grid, mode=Sim(bars=800), client="serial", trace_root=tmp_path)
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), first.drop(columns="seconds"))
    assert [again["seconds"][i] == first["seconds"][i] for i in range(4)] == [
        True,
        True,
        False,
        False,
    ]
    assert [f.stat().st_mtime_ns for f in row_files[:2]] == stamps[:2]
    assert not (row_files[2].parent / "binance" / "sim" / "leftover").exists()
    assert json.loads(row_files[2].read_text())["job"] == first["job"][2]


def test_windows_run_train_and_test_spans(tmp_path: Path) -> None:
    windows = walk_forward("2024-01-01", "2024-01-02", train="8h", test="4h")
    assert len(windows) == 4
    assert windows[0].train == Span("2024-01-01", "2024-01-01 08:00")
    assert windows[0].test == Span("2024-01-01 08:00", "2024-01-01 12:00")
    assert windows[-1].test.end == pd.Timestamp("2024-01-02", tz="UTC")

    mode = Sim(bars=1_440, seed=5)  # one day of 1m bars from 2024-01-01
    rows = sweep(
        "sma_cross",
        {"fast": [5]},
        markets=["BTC/USDT"],
        windows=windows[:2],
        mode=mode,
        client="serial",
        trace_root=tmp_path,
    )
    assert list(rows["segment"]) == ["train", "test", "train", "test"]
    assert list(rows["window"]) == [0, 0, 1, 1]
    assert rows["start"][1] == pd.Timestamp("2024-01-01 08:00", tz="UTC")
    assert rows["error"].isna().all()

    # The test span of window 0, by hand: its bars with the 30 warmup bars before them.
    frame = generate_bars(["BTC/USDT"], 1_440, seed=5)["BTC/USDT"]
    frame = frame.iloc[8 * 60 - 30 : 12 * 60]
    s = strategy(
        "sma_cross",
        mode=mode,
        data=frame,
        params={"fast": 5},
        config={"markets": ["BTC/USDT"], "trace": False},
    )
    trio.run(start, s)
    assert s.results.equity.index[0] == pd.Timestamp("2024-01-01 08:00", tz="UTC")
    assert_same_stats(s.results.stats, rows.iloc[1])


def test_bad_input_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no parameter fats.*fast"):
        sweep("sma_cross", {"fats": [1]}, client="serial", trace_root=tmp_path)
    with pytest.raises(ConfigError, match="params\\['fast'\\] is empty"):
        sweep("sma_cross", {"fast": []}, client="serial", trace_root=tmp_path)
    with pytest.raises(ConfigError, match="sweep jobs write their traces to a directory"):
        sweep("sma_cross", {"fast": [5]}, client="serial", trace_root="s3://bucket/x")
    with pytest.raises(ConfigError, match="not an engine"):
        sweep("sma_cross", {"fast": [5]}, client=42, trace_root=tmp_path)
    with pytest.raises(ConfigError, match="no window"):
        walk_forward("2024-01-01", "2024-01-02", train="20h", test="8h")
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(
            ConfigError, match=r"cannot reach the dask scheduler at tcp://127\.0\.0\.1:9"
        ),
    ):
        sweep("sma_cross", {"fast": [5]}, client="tcp://127.0.0.1:9", trace_root=tmp_path)


def test_progress_counts_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep(
        "sma_cross",
        {"fast": [5, 10, 20]},
        mode=Sim(bars=300),
        client="serial",
        trace_root=tmp_path,
        progress=True,
    )
    err = capsys.readouterr().err
    assert "3/3 jobs" in err
    assert "100.0%" in err
