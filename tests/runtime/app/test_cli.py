"""The `vigil` command: demo, run, trace, replay, and its errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.app._cli import main


def test_demo_prints_a_summary_with_trades(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "runtime.app._cli", "demo", "--bars", "3000"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    trades = int(re.search(r"^trades\s+(\d+)$", out, re.M).group(1))  # type: ignore[union-attr]
    assert trades > 0
    for stat in ("total return", "max drawdown", "sharpe", "win rate", "fees"):
        assert stat in out
    assert (tmp_path / "traces" / "binance" / "sim" / "sma_cross.zarr").is_dir()


def test_run_trace_and_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "t"
    assert main(["run", "margin_trend", "--bars", "2000", "--trace-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "margin_trend" in out
    assert "trades" in out
    path = root / "binance" / "sim" / "margin_trend.zarr"
    assert main(["trace", "tail", str(path), "-n", "5"]) == 0
    tail = capsys.readouterr().out
    assert "RUN_STOPPED" in tail
    assert main(["trace", "show", str(path), "--kind", "TRADE", "-n", "3"]) == 0
    shown = capsys.readouterr().out
    assert shown.count("TRADE") == 3
    assert main(["replay", str(path)]) == 0
    assert "state matches the trace" in capsys.readouterr().out


def test_run_with_a_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runtime.model._bars import generate_bars

    frame = generate_bars(["BTC/USDT"], 500, seed=4)["BTC/USDT"]
    csv = tmp_path / "btc.csv"
    frame.to_csv(csv, index=False)
    strat = tmp_path / "mine.py"
    strat.write_text(
        "from runtime import Strategy\n"
        "class Mine(Strategy):\n"
        "    markets = ['BTC/USDT']\n"
        "    async def on_tick(self, ts):\n"
        "        pass\n"
    )
    assert (
        main(["run", str(strat), "--data", str(csv), "--no-trace", "--since", "2024-01-01 01:00"])
        == 0
    )
    assert "mine: 440 bars" in capsys.readouterr().out  # 500 bars less the first hour


def test_a_bad_flag_exits_2_and_names_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "sma_cross", "--bogus"])
    assert exc.value.code == 2
    assert "--bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["run", "sma_cross", "--mode", "nope"])
    assert exc.value.code == 2
    assert "--mode" in capsys.readouterr().err


def test_a_bad_kind_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "t"
    assert main(["run", "sma_cross", "--bars", "300", "--trace-root", str(root)]) == 0
    path = root / "binance" / "sim" / "sma_cross.zarr"
    assert main(["trace", "show", str(path), "--kind", "nope"]) == 2
    assert "--kind 'nope'" in capsys.readouterr().err


def test_unknown_strategy_lists_the_available(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "nope", "--no-trace"]) == 1
    err = capsys.readouterr().err
    assert "unknown strategy 'nope'" in err
    assert "sma_cross" in err
    assert "margin_trend" in err


def test_run_then_report_writes_png_and_html(tmp_path: Path) -> None:
    import struct

    root = tmp_path / "t"
    strategy_file = Path(__file__).resolve().parents[3] / "strategies" / "sma_cross.py"
    assert (
        main(
            [
                "run",
                str(strategy_file),
                "--mode",
                "sim",
                "--bars",
                "1500",
                "--trace-root",
                str(root),
            ]
        )
        == 0
    )
    trace = root / "binance" / "sim" / "sma_cross.zarr"
    png, html = tmp_path / "out.png", tmp_path / "out.html"
    assert main(["report", str(trace), "--png", str(png), "--html", str(html)]) == 0
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert (width, height) == (1600, 1120)  # two markets: equity, drawdown, two price panels
    page = html.read_text()
    assert '<table class="stats"' in page
    for stat in ("total_return", "max_drawdown", "sharpe", "win_rate", "fees"):
        assert f'data-stat="{stat}"' in page


def test_long_sim_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    import os
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: vigil on a pseudo-terminal
        os.chdir(tmp_path)
        os.execv(
            sys.executable,
            [
                sys.executable,
                "-m",
                "runtime.app._cli",
                "run",
                "sma_cross",
                "--bars",
                "40000",
                "--no-trace",
            ],
        )
    out = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        out += data
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out[-2000:]
    text = out.decode()
    assert "\r[" in text
    assert "% " in text
    assert "bars/s" in text
    assert "100.0%" in text
    assert "trades" in text  # then the summary


def test_live_without_keys_names_the_variables(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("VIGIL_BINANCE_API_KEY", "VIGIL_BINANCE_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main(["run", "sma_cross", "--mode", "live", "--no-trace"]) == 1
    err = capsys.readouterr().err
    assert "VIGIL_BINANCE_API_KEY" in err
    assert "VIGIL_BINANCE_SECRET" in err
