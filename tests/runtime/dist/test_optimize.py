"""`optimize`: optuna ask/tell over sweep jobs, reproducible with a fixed seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from distributed import Client

from runtime import ConfigError, OptimizeResult, Sim, optimize, walk_forward

SPACE = {"fast": (3, 30), "slow": (20, 120)}
MODE = Sim(bars=1_500, seed=7)


def test_twenty_trials_on_the_cluster_twice_give_the_same_best(
    dask_client: Client, tmp_path: Path
) -> None:
    runs = [
        optimize(
            "sma_cross",
            SPACE,
            objective="sharpe",
            n_trials=20,
            seed=42,
            mode=MODE,
            markets=["BTC/USDT"],
            client=dask_client,
            trace_root=tmp_path / name,
        )
        for name in ("first", "second")
    ]
    first, second = runs
    assert isinstance(first, OptimizeResult)
    assert len(first.trials) == 20
    assert list(first.trials["trial"]) == list(range(20))
    assert first.trials["error"].isna().all()
    assert first.best_params == second.best_params
    assert first.best_value == second.best_value
    # The whole search is the same, trial by trial, not only its winner.
    assert list(first.trials["fast"]) == list(second.trials["fast"])
    assert list(first.trials["value"]) == list(second.trials["value"])
    assert first.best_value == first.trials["value"].max()
    best = first.trials.loc[first.trials["value"].idxmax()]
    assert first.best_params == {"fast": best["fast"], "slow": best["slow"]}
    assert first.trials["fast"].between(3, 30).all()
    assert first.trials["slow"].between(20, 120).all()


def test_another_seed_searches_elsewhere(tmp_path: Path) -> None:
    a = optimize(
        "sma_cross", SPACE, n_trials=4, seed=1, mode=MODE, client="serial", trace_root=tmp_path
    )
    b = optimize(
        "sma_cross", SPACE, n_trials=4, seed=2, mode=MODE, client="serial", trace_root=tmp_path
    )
    assert list(a.trials["fast"]) != list(b.trials["fast"])


def test_walk_forward_fits_on_train_and_reports_test(tmp_path: Path) -> None:
    windows = walk_forward("2024-01-01", "2024-01-01 20:00", train="8h", test="4h")
    assert len(windows) == 3
    result = optimize(
        "sma_cross",
        {"fast": (3, 20)},
        params={"slow": 40},
        objective="total_return",
        n_trials=3,
        windows=windows[:2],
        mode=Sim(bars=1_200, seed=2),
        markets=["BTC/USDT"],
        client="serial",
        trace_root=tmp_path,
    )
    assert result.windows is not None
    assert list(result.windows["window"]) == [0, 1]
    assert list(result.windows["test_start"]) == [w.test.start for w in windows[:2]]
    assert len(result.trials) == 6
    assert set(result.trials["segment"]) == {"train"}
    for _, row in result.windows.iterrows():
        trials = result.trials[result.trials["window"] == row["window"]]
        assert row["train_value"] == trials["value"].max()
        assert row["fast"] == trials.loc[trials["value"].idxmax(), "fast"]
        assert row["slow"] == 40
        assert np.isfinite(row["test_value"])
        assert row["test_value"] == row["total_return"]
    assert result.best_params == {"slow": 40, "fast": result.windows["fast"].iloc[-1]}


def test_bad_space_and_objective(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a search range"):
        optimize("sma_cross", {"fast": (10, 5)}, client="serial", trace_root=tmp_path)
    with pytest.raises(ConfigError, match="no parameter fats"):
        optimize("sma_cross", {"fats": (1, 5)}, client="serial", trace_root=tmp_path)
    with pytest.raises(ConfigError, match=r"objective 'sharp' is not a statistic.*sharpe"):
        optimize(
            "sma_cross",
            {"fast": (3, 9)},
            objective="sharp",
            n_trials=1,
            mode=MODE,
            client="serial",
            trace_root=tmp_path,
        )
