"""`vigil sweep`: the grid from --param flags, the rows to a file, errors as messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from runtime.app._cli import main
from runtime.app._cli_sweep import parse_params
from tests.conftest import HERE

ROOT = HERE.parent


def test_param_values_and_ranges() -> None:
    assert parse_params(["fast=5,10", "slow=30:50:10", "allocation=0.5", "name=x"]) == {
        "fast": [5, 10],
        "slow": [30, 40, 50],
        "allocation": [0.5],
        "name": ["x"],
    }


def test_sweep_writes_one_row_per_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.parquet"
    argv = [
        "sweep",
        "sma_cross",
        "--param",
        "fast=5,10",
        "--param",
        "slow=30,50",
        "--serial",
        "--bars",
        "600",
        "--market",
        "BTC/USDT",
        "--trace-root",
        str(tmp_path / "t"),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    rows = pd.read_parquet(out)
    assert len(rows) == 4
    assert list(rows[["fast", "slow"]].itertuples(index=False, name=None)) == [
        (5, 30),
        (5, 50),
        (10, 30),
        (10, 50),
    ]
    assert rows["error"].isna().all()
    assert all(Path(t).is_dir() for t in rows["trace"])
    printed = capsys.readouterr().out
    assert "4 jobs, 0 failed" in printed
    assert "sharpe" in printed


def test_bad_param_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.app._cli",
            "sweep",
            "sma_cross",
            "--param",
            "fats=5",
            "--serial",
            "--trace-root",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1
    assert "vigil: error: strategy SmaCross has no parameter fats" in result.stderr
    assert "Traceback" not in result.stderr
