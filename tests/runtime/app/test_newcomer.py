"""The newcomer's path (issue 18): each case a new user hit, as they hit it, on the command
line or in Python, with the message they now get instead of a traceback or silence."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import ConfigError, Sim, start, strategy
from runtime.app._cli_run import sandbox_for
from traces import default_trace_root, trace_tail

ROOT = Path(__file__).resolve().parents[3]


def vigil(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "runtime.app._cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_clean_error(out: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    text = out.stderr + out.stdout
    for fragment in fragments:
        assert fragment in text, text
    assert len(text.strip().splitlines()) <= 4, text


def test_a_strategy_file_with_a_syntax_error_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from runtime import Strategy\n"
        "class Bad(Strategy):\n"
        "    async def on_tick(self, ts)\n"
        "        pass\n"
    )
    out = vigil("run", str(bad), cwd=tmp_path)
    assert_clean_error(out, f"strategy file {bad}, line 3: expected ':'", "on_tick(self, ts)")
    broken = tmp_path / "broken.py"
    broken.write_text("from runtime import Strategy\nimport no_such_module_here\n")
    out = vigil("run", str(broken), cwd=tmp_path)
    assert_clean_error(out, "line 2 raised ModuleNotFoundError", "no_such_module_here")


def test_bad_since_is_a_message_and_since_without_data_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "btc.csv"
    csv.write_text("time,open,high,low,close\n2024-01-01,1,1,1,1\n")
    out = vigil(
        "run",
        "sma_cross",
        "--markets",
        "BTC/USDT",
        "--data",
        str(csv),
        "--since",
        "2025-13-45",
        cwd=tmp_path,
    )
    assert_clean_error(out, "--since '2025-13-45' is not a date or time", "2024-01-31")
    out = vigil("run", "sma_cross", "--since", "2024-01-02", cwd=tmp_path)
    assert_clean_error(out, "--since and --until select bars of --data files")


def test_one_data_file_for_two_markets_says_how_on_the_command_line(tmp_path: Path) -> None:
    csv = tmp_path / "btc.csv"
    csv.write_text("time,open,high,low,close\n2024-01-01,1,1,1,1\n")
    out = vigil("run", "sma_cross", "--data", str(csv), cwd=tmp_path)
    assert_clean_error(out, "--data BTC/USDT=btc.csv --data ETH/USDT=eth.csv", "--markets")


def test_exchange_serve_refuses_a_busy_port_and_a_malformed_key(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = vigil("exchange", "serve", "--port", str(port), "--manual", cwd=tmp_path)
    assert_clean_error(out, f"cannot listen on 127.0.0.1:{port}", "--port 0")
    out = vigil("exchange", "serve", "--api-key", "bars-key", "--secret", "s3cret", cwd=tmp_path)
    assert_clean_error(out, "--api-key must be letters and digits only", "-2014", "'-'")


def test_the_default_trace_root_is_never_a_package_folder(tmp_path: Path) -> None:
    assert default_trace_root(tmp_path) == tmp_path / "traces"
    # A working directory like a checkout of vigil: its `traces` folder is the package.
    (tmp_path / "traces").symlink_to(ROOT / "traces")
    assert default_trace_root(tmp_path) == tmp_path / "vigil-traces"
    before = sorted(p.name for p in (ROOT / "traces").iterdir())
    out = vigil("run", "sma_cross", "--bars", "600", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "vigil-traces" / "binance" / "sim" / "sma_cross.zarr").is_dir()
    assert sorted(p.name for p in (ROOT / "traces").iterdir()) == before
    assert re.search(r"^trace +\S*vigil-traces/binance/sim/sma_cross\.zarr$", out.stdout, re.M)


async def test_default_cash_fits_the_quote_currency_and_refusals_are_counted(
    tmp_path: Path,
) -> None:
    # The user's case: two BTC-quoted markets. 10,000 BTC made every LTC order too big.
    s = strategy(
        "sma_cross",
        mode=Sim(bars=3000),
        config={"trace": False},
        params={"markets": ["ETH/BTC", "LTC/BTC"]},
    )
    assert s.cash == 0.25
    await start(s)
    traded = set(s.results.trades["symbol"])
    assert traded == {"ETH/BTC", "LTC/BTC"}
    # Told to start with 10,000 BTC anyway, the refusals show in the summary, by rule.
    out = vigil(
        "run",
        "sma_cross",
        "--markets",
        "ETH/BTC,LTC/BTC",
        "--bars",
        "3000",
        "--cash",
        "10000",
        "--no-trace",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    refused = re.search(r"^refused orders +(\d+)$", out.stdout, re.M)
    assert refused is not None, out.stdout
    assert int(refused.group(1)) > 0
    assert re.search(r"^ +\d+ amount_max on (ETH|LTC)/BTC, e\.g\. ", out.stdout, re.M), out.stdout


def test_vigil_new_writes_a_template_that_runs(tmp_path: Path) -> None:
    out = vigil("new", "my_first", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "vigil run my_first.py" in out.stdout
    out = vigil(
        "run", "my_first.py", "--bars", "2000", "--param", "fast=10", "--no-trace", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert int(re.search(r"^trades +(\d+)$", out.stdout, re.M).group(1)) > 0  # type: ignore[union-attr]
    again = vigil("new", "my_first", cwd=tmp_path)
    assert_clean_error(again, "my_first.py exists", "--force")
    assert_clean_error(vigil("new", "3rd", cwd=tmp_path), "must be a Python identifier")


async def test_params_markets_and_timeframe_override_the_class() -> None:
    s = strategy(
        "sma_cross",
        mode=Sim(bars=300),
        config={"trace": False},
        params={"fast": "7", "markets": ["ETH/USDT"], "timeframe": "5m", "band": 0.01},
    )
    assert s.fast == 7
    assert s.band == 0.01
    assert list(s.universe.keys()) == ["ETH/USDT"]
    times = s.universe["ETH/USDT"].ohlcv.time
    assert int(times[1] - times[0]) == 300 * 10**9  # generated at the new timeframe
    with pytest.raises(
        ConfigError,
        match=r"has no parameter fsat; the parameters it declares "
        r"are allocation, band, exchange, fast, ",
    ):
        strategy("sma_cross", mode=Sim(bars=300), params={"fsat": 3})
    with pytest.raises(ConfigError, match=r"fast='x' is not of type int"):
        strategy("sma_cross", mode=Sim(bars=300), params={"fast": "x"})


def test_command_line_overrides(tmp_path: Path) -> None:
    out = vigil(
        "run",
        "sma_cross",
        "--markets",
        "SOL/USDT",
        "--timeframe",
        "5m",
        "--param",
        "fast=5",
        "--param",
        "slow=20",
        "--param",
        "warmup=20",
        "--bars",
        "500",
        "--no-trace",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "bars of SOL/USDT" in out.stdout
    assert_clean_error(
        vigil("run", "sma_cross", "--param", "nope=1", cwd=tmp_path), "has no parameter nope"
    )
    assert_clean_error(
        vigil("run", "sma_cross", "--timeframe", "7m", cwd=tmp_path),
        "--timeframe '7m' is not a timeframe",
    )


def test_paper_reads_production_data_unless_sandbox() -> None:
    assert sandbox_for("paper", None) is False
    assert sandbox_for("paper", True) is True
    assert sandbox_for("live", None) is True
    assert sandbox_for("live", False) is False


async def test_trace_tail_is_one_short_line_per_event(tmp_path: Path) -> None:
    out = vigil("run", "sma_cross", "--bars", "5000", "--trace-root", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    path = tmp_path / "binance" / "sim" / "sma_cross.zarr"
    out = vigil("trace", "tail", str(path), "-n", "12", cwd=tmp_path)
    lines = out.stdout.splitlines()
    assert len(lines) == 12
    assert max(map(len, lines)) < 260, max(lines, key=len)
    assert any(" BARS " in ln and "rows of time,open,high,low,close,volume" in ln for ln in lines)
    assert "RUN_STOPPED" in lines[-1]
    assert "state={snapshot}" in lines[-1]
    shown = repr(trace_tail(path, n=3))
    assert len(shown.splitlines()) == 3
    assert max(map(len, shown.splitlines())) < 260
    trades = [ln for ln in repr(trace_tail(path, n=400)).splitlines() if " TRADE " in ln]
    assert trades
    assert re.search(r"amount=[\d.]+ price=[\d.]+ fee=[\d.]+ fee_currency=USDT", trades[0])


def test_the_demo_is_sensible_and_labels_its_annualisation(tmp_path: Path) -> None:
    out = vigil("demo", "--no-trace", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    trades = int(re.search(r"^trades +(\d+)$", out.stdout, re.M).group(1))  # type: ignore[union-attr]
    fees = float(re.search(r"^fees +([\d.]+)$", out.stdout, re.M).group(1))  # type: ignore[union-attr]
    ret = float(re.search(r"^total return +([-+\d.]+)%$", out.stdout, re.M).group(1))  # type: ignore[union-attr]
    assert 10 <= trades <= 200
    assert fees < 0.05 * 10_000
    assert ret > -10
    assert "(annualised: x sqrt(525,600) 1m periods a year)" in out.stdout
    assert "buy and hold" in out.stdout
