"""Downloads through real ccxt (``ccxt.binance``) from the loopback exchange on 127.0.0.1 into
real Zarr on disk: paging, equality with the exchange's own klines, idempotence, a SIGKILL
in the middle, a 429 burst, funding, and the ``vigil data`` commands."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

from runtime import ConfigError
from runtime._progress import Progress
from runtime.app._cli import main
from runtime.data import MarketStore, download_ohlcv, download_ohlcv_async, load_ohlcv
from runtime.data._load import load_funding
from runtime.testing.loopback import LoopbackExchange
from runtime.testing.loopback._funding import funding_history

MIN = 60_000
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def market() -> Iterator[LoopbackExchange]:
    """A loopback with 6,000 closed one-minute bars; its market does not move."""
    with LoopbackExchange(history=6_000, record=True) as ex:
        yield ex


@pytest.fixture
def loopback(market: LoopbackExchange, monkeypatch: pytest.MonkeyPatch) -> LoopbackExchange:
    market.faults.reset()
    for name, value in market.env().items():
        monkeypatch.setenv(name, value)
    return market


def span(ex: LoopbackExchange, n: int) -> tuple[int, int]:
    """The last ``n`` closed bars: [since, until)."""
    end = ex.clock.forming_open_ms
    return end - n * MIN, end


def klines(ex: LoopbackExchange, since: int, until: int, symbol: str = "BTCUSDT") -> np.ndarray:
    """The exchange's own klines over [since, until), as floats."""
    data = ex.spot_data if ":" not in symbol else ex.futures_data
    m = data.markets[symbol.replace(":USDT", "")]
    rows = ex.call(lambda: data.klines(m, "1m", since, until - 1, 100_000))
    return np.array([[float(v) for v in r[:6]] for r in rows])


def kline_requests(ex: LoopbackExchange) -> int:
    return sum(1 for p in ex.payloads() if p.route == "GET /api/v3/klines" and p.status == 200)


def stored(root: Path, symbol: str = "BTC/USDT") -> np.ndarray:
    df = load_ohlcv("binance", symbol, "1m", store=root)
    return np.column_stack([df.index.asi8 // 1_000_000, df.to_numpy()])


def test_5000_bars_take_5_pages_and_equal_the_exchange_klines(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    since, until = span(loopback, 5_000)
    before = kline_requests(loopback)
    [r] = download_ohlcv("binance", ["BTC/USDT"], "1m", since, until, store=tmp_path)
    assert kline_requests(loopback) - before == r.requests >= 5
    assert (r.added, r.rows, r.first, r.last) == (5_000, 5_000, since, until - MIN)
    assert (r.gaps, r.complete_until) == (0, until)
    np.testing.assert_array_equal(stored(tmp_path), klines(loopback, since, until))


def test_running_again_asks_nothing_and_adds_nothing(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    since, until = span(loopback, 2_500)
    download_ohlcv("binance", "BTC/USDT", "1m", since, until, store=tmp_path)
    group = tmp_path / "binance" / "BTC_USDT" / "1m"
    doc = (group / "zarr.json").read_bytes()
    before = kline_requests(loopback)
    [r] = download_ohlcv("binance", "BTC/USDT", "1m", since, until, store=tmp_path)
    assert (r.added, r.requests, r.rows) == (0, 0, 2_500)
    assert kline_requests(loopback) == before
    assert (group / "zarr.json").read_bytes() == doc


def test_only_what_is_missing_is_fetched_after_and_before(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    since, until = span(loopback, 4_000)
    mid = since + 2_000 * MIN
    download_ohlcv("binance", "BTC/USDT", "1m", mid, mid + 1_000 * MIN, store=tmp_path)
    [r] = download_ohlcv("binance", "BTC/USDT", "1m", mid, until, store=tmp_path)
    assert (r.added, r.requests) == (1_000, 1)  # from complete_until on, one page
    [r] = download_ohlcv("binance", "BTC/USDT", "1m", since, until, store=tmp_path)
    assert (r.added, r.requests, r.rows) == (2_000, 2, 4_000)  # the head, then nothing after
    np.testing.assert_array_equal(stored(tmp_path), klines(loopback, since, until))
    series = MarketStore(tmp_path).open("binance", "BTC/USDT", "1m")
    assert series is not None
    assert (series.start, series.complete_until) == (since, until)


@pytest.mark.parametrize(
    ("sig", "returncode"), [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGINT, 130)]
)
def test_killed_or_interrupted_mid_download_then_again_equals_one_uninterrupted_run(
    loopback: LoopbackExchange, tmp_path: Path, sig: signal.Signals, returncode: int
) -> None:
    since, until = span(loopback, 5_000)
    reference = tmp_path / "reference"
    download_ohlcv("binance", "BTC/USDT", "1m", since, until, store=reference)
    killed = tmp_path / "killed"
    doc = killed / "binance" / "BTC_USDT" / "1m" / "zarr.json"
    loopback.faults.latency_ms = 250  # pages slow enough to die between them
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "runtime.app._cli", "data", "download", "binance", "BTC/USDT"]
    cmd += ["--since", str(since), "--until", str(until), "--store", str(killed)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rows = 0
    try:
        deadline = time.monotonic() + 60
        while rows == 0 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)  # polling another process's files: there is no event to wait on
            if doc.is_file():
                rows = int(json.loads(doc.read_text())["attributes"].get("rows", 0))
        proc.send_signal(sig)  # SIGINT: Ctrl-C
    finally:
        proc.wait(30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == returncode
    # What it had committed when it died (it may have committed again since the poll).
    rows = int(json.loads(doc.read_text())["attributes"]["rows"])
    assert 0 < rows < 5_000, rows  # killed mid-download, with part of it committed
    loopback.faults.latency_ms = 0
    [r] = download_ohlcv("binance", "BTC/USDT", "1m", since, until, store=killed)
    assert r.added == 5_000 - rows
    np.testing.assert_array_equal(stored(killed), stored(reference))
    a = MarketStore(killed).open("binance", "BTC/USDT", "1m")
    b = MarketStore(reference).open("binance", "BTC/USDT", "1m")
    assert a is not None
    assert b is not None
    assert a.coverage == b.coverage


class BurstAfterFirstPage(Progress):
    """A progress sink that makes the exchange answer the next requests with 429."""

    def __init__(self, ex: LoopbackExchange) -> None:
        super().__init__(1, stream=open(os.devnull, "w"))  # noqa: SIM115 - closed in finish
        self.ex = ex
        self.fired = False

    def update(self, done: int, *, force: bool = False) -> None:
        if not self.fired:
            self.fired = True
            self.ex.faults.rate_limit_next(3, retry_after_s=1)

    def finish(self, done: int) -> None:
        self.stream.close()


def test_a_429_burst_is_waited_out_and_the_download_completes(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    since, until = span(loopback, 3_000)
    progress = BurstAfterFirstPage(loopback)
    t0 = time.monotonic()
    [r] = trio.run(
        lambda: download_ohlcv_async(
            "binance", ["BTC/USDT"], "1m", since, until, tmp_path, progress=progress
        )
    )
    assert progress.fired
    assert loopback.faults.queued_request_faults == 0
    assert time.monotonic() - t0 >= 1.0  # Retry-After was honoured
    assert r.rows == 3_000
    assert r.requests >= 3 + 3
    np.testing.assert_array_equal(stored(tmp_path), klines(loopback, since, until))


def test_funding_rates_of_a_perpetual_are_stored_like_bars(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    since, until = span(loopback, 5_000)
    out = download_ohlcv(
        "binance", ["BTC/USDT:USDT", "BTC/USDT"], "1m", since, until, tmp_path, funding=True
    )
    by = {(r.symbol, r.series): r for r in out}
    perp = by[("BTC/USDT:USDT", "funding")]
    assert perp.rows >= 10
    assert perp.added == perp.rows
    assert "not a perpetual" in by[("BTC/USDT", "funding")].note
    m = loopback.futures_data.markets["BTCUSDT"]
    want = loopback.call(
        lambda: funding_history(
            loopback.clock, m, {"startTime": str(since), "endTime": str(until - 1), "limit": "1000"}
        )
    )
    got = load_funding("binance", "BTC/USDT:USDT", store=tmp_path)
    assert list(got.index.asi8 // 1_000_000) == [w["fundingTime"] for w in want]
    assert list(got["rate"]) == [float(w["fundingRate"]) for w in want]
    assert list(got["mark_price"]) == [float(w["markPrice"]) for w in want]
    again = download_ohlcv("binance", ["BTC/USDT:USDT"], "1m", since, until, tmp_path, funding=True)
    assert [r.added for r in again] == [0, 0]


def test_unknown_market_and_bad_range_are_clear_errors(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"binance has no market 'BTC/USDX'.*BTC/USDT"):
        download_ohlcv("binance", ["BTC/USDX"], "1m", "2024-01-01", store=tmp_path)
    with pytest.raises(ConfigError, match="until='2023-01-01' must be after since"):
        download_ohlcv("binance", ["BTC/USDT"], "1m", "2024-01-01", "2023-01-01", tmp_path)


def test_cli_download_prints_one_line_and_list_shows_the_store(
    loopback: LoopbackExchange, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_HOME", str(tmp_path))
    since, until = span(loopback, 1_500)
    code = main(["data", "download", "binance", "BTC/USDT", "--since", str(since),
                 "--until", str(until)])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0
    lines = out.out.strip().splitlines()
    assert len(lines) == 1, lines
    assert "downloaded 1,500 rows in 2 requests" in lines[0]
    assert str(tmp_path / "data") in lines[0]
    assert main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    for word in ("exchange", "market", "timeframe", "first", "last", "count", "gaps"):
        assert word in listing
    assert "binance" in listing
    assert "BTC/USDT" in listing
    assert "1500" in listing


def test_the_exchange_gaps_are_recorded_not_filled(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    since, until = span(loopback, 3_000)
    # An outage of 1,200 minutes: longer than a page, so one page comes back empty-handed
    # for its window and is filled from after the outage, as Binance does.
    outage = (since + 900 * MIN, since + 2_100 * MIN)
    loopback.call(lambda: loopback.spot_data.outages.append(outage))
    try:
        [r] = download_ohlcv("binance", "BTC/USDT", "1m", since, until, store=tmp_path)
        want = klines(loopback, since, until)
    finally:
        loopback.call(loopback.spot_data.outages.clear)
    assert (r.rows, r.gaps, r.complete_until) == (1_800, 1, until)
    np.testing.assert_array_equal(stored(tmp_path), want)  # nothing invented
    series = MarketStore(tmp_path).open("binance", "BTC/USDT", "1m")
    assert series is not None
    assert series.gaps == [list(outage)]
    listing = MarketStore(tmp_path).catalog().iloc[0]
    assert (listing["gaps"], listing["missing"]) == (1, 1_200)
    # The gap is the exchange's: running again does not ask for it.
    [again] = download_ohlcv("binance", "BTC/USDT", "1m", since, until, store=tmp_path)
    assert (again.requests, again.added) == (0, 0)


def test_a_terminal_gets_a_progress_bar_and_a_pipe_one_line(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    since, until = span(loopback, 2_000)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "runtime.app._cli", "data", "download", "binance", "BTC/USDT"]
    cmd += ["--since", str(since), "--until", str(until), "--store", str(tmp_path)]
    main_fd, term_fd = pty.openpty()
    try:
        try:
            done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=term_fd, timeout=120)
        finally:
            os.close(term_fd)
        seen = b""
        with contextlib.suppress(OSError):  # EIO once the terminal has nothing more
            while chunk := os.read(main_fd, 65536):
                seen += chunk
    finally:
        os.close(main_fd)
    assert done.returncode == 0
    assert "[##############################] 100.0%  2,000/2,000 bars" in seen.decode()
    lines = done.stdout.decode().strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("downloaded 2,000 rows in 2 requests")
