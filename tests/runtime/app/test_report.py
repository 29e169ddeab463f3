"""Reports: built from a trace alone, they equal the Sim run's own results; PNG and HTML output
have the promised size, content and self-containment."""

from __future__ import annotations

import argparse
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runtime import ConfigError, Sim, Strategy, TraceError, start, strategy
from runtime.app._report import (
    STATS,
    Report,
    render,
    report_from_strategy,
    report_from_trace,
    report_main,
)
from traces import Kind, TraceWriter, iter_events, list_runs

BARS = 600  # past margin_trend's 60-bar warmup with a few dozen fills, still fast
STRATEGIES = ["sma_cross", "margin_trend"]  # spot over two markets; isolated margin, long/short
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, which the format puts first."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    _, tag = struct.unpack(">I4s", data[8:16])
    assert tag == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


async def run_sim(
    name: str, root: Path, *, seed: int = 3, trace_market: bool = True, bars: int = BARS
) -> Strategy:
    s = strategy(
        name,
        mode=Sim(bars=bars, seed=seed),
        config={"trace_root": str(root), "trace_market": trace_market},
    )
    await start(s)
    return s


def trace_of(s: Strategy) -> Path:
    path = s.trace_path
    assert path is not None
    return path


def assert_same_run(report: Report, s: Strategy) -> None:
    """The report equals the run's own `s.results`: statistics, equity curve and fills."""
    results = s.results
    assert results.stats["trades"] > 0, "the run must trade for the comparison to mean anything"
    for key in results.stats:
        expected = pytest.approx(results.stats[key], rel=1e-12, abs=1e-12, nan_ok=True)
        assert report.stats[key] == expected, key
    assert len(report.equity) == len(results.equity)
    pd.testing.assert_index_equal(report.equity.index, results.equity.index)
    np.testing.assert_allclose(
        report.equity.to_numpy(), results.equity.to_numpy(), rtol=1e-12, atol=0
    )
    assert report.equity.attrs["start"] == pytest.approx(results.equity.attrs["start"])
    pd.testing.assert_frame_equal(report.trades.drop(columns="action"), results.trades)


@pytest.mark.parametrize("name", STRATEGIES)
async def test_report_from_trace_equals_sim_results(name: str, tmp_path: Path) -> None:
    s = await run_sim(name, tmp_path)
    report = report_from_trace(trace_of(s))
    assert_same_run(report, s)
    assert report.strategy == name
    assert report.mode == "sim"
    assert report.run_id == s._rt.run_id
    assert report.markets == list(s.universe.keys())
    assert report.margin == s._rt.margin


@pytest.mark.parametrize("name", STRATEGIES)
async def test_report_from_strategy_matches_the_trace(name: str, tmp_path: Path) -> None:
    s = await run_sim(name, tmp_path)
    live = report_from_strategy(s)
    traced = report_from_trace(trace_of(s))
    assert_same_run(live, s)
    assert live.markets == traced.markets
    for sym in live.markets:
        pd.testing.assert_frame_equal(live.prices[sym], traced.prices[sym])
    pd.testing.assert_series_equal(live.drawdown, traced.drawdown)


@pytest.mark.parametrize("name", STRATEGIES)
async def test_prices_drawdown_and_actions(name: str, tmp_path: Path) -> None:
    s = await run_sim(name, tmp_path)
    report = report_from_trace(trace_of(s))
    driver = s._rt.driver
    first = driver.start_index - 1
    for sym, frame in report.prices.items():
        pd.testing.assert_index_equal(frame.index, report.equity.index)
        bars = driver.bars.columns[sym]
        np.testing.assert_array_equal(frame["close"].to_numpy(), bars["close"][first:])
    dd = report.drawdown.to_numpy()
    assert (dd >= 0).all()
    assert dd.max() == pytest.approx(report.stats["max_drawdown"])
    actions = report.trades["action"]
    assert set(actions) <= {"entry", "exit", "reverse"}
    if s._rt.margin is None:  # spot, long only: every buy opens, every sell closes
        sides = report.trades["side"]
        assert (actions[sides == "buy"] == "entry").all()
        assert (actions[sides == "sell"] == "exit").all()
    else:  # reversals close first (PositionClose), so both sides enter and exit
        assert {"entry", "exit"} <= set(actions)
        opened = report.trades[actions == "entry"]
        assert set(opened["side"]) == {"buy", "sell"}


@pytest.mark.parametrize("name", STRATEGIES)
async def test_png_has_the_requested_size(name: str, tmp_path: Path) -> None:
    s = await run_sim(name, tmp_path)
    report = report_from_trace(trace_of(s))
    out = report.to_png(tmp_path / "report.png")
    # 560 px for the equity and drawdown panels, 280 px per market's price panel.
    expected = {"sma_cross": 1120, "margin_trend": 840}[name]
    assert png_size(out.read_bytes()) == (1600, expected)
    assert report.default_height == expected
    # Sizes whose width × dpi lands a float tick under a whole pixel come out whole too.
    for width, height in [(1001, 777), (1917, 1079), (640, 480)]:
        out = report.to_png(tmp_path / f"{width}x{height}.png", width=width, height=height)
        assert png_size(out.read_bytes()) == (width, height)


async def test_png_rejects_sizes_it_cannot_draw(tmp_path: Path) -> None:
    report = report_from_trace(trace_of(await run_sim("sma_cross", tmp_path)))
    with pytest.raises(ConfigError, match=r"PNG width=10 must be .* from 200"):
        report.png_bytes(width=10)
    with pytest.raises(ConfigError, match=r"height=1\.5"):
        report.png_bytes(height=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="directory exists"):
        report.to_png(tmp_path / "missing" / "out.png")


class PageParser(HTMLParser):
    """Collects what the tests check: stats rows, image sources, links, trade rows."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, str]] = []
        self.stats: dict[str, str] = {}  # data-stat -> row text
        self.sources: list[str] = []  # every src and href value
        self.trade_rows: list[str] = []  # class of each body row of the trades table
        self._table: str | None = None
        self._row: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.sources += [a[k] for k in ("src", "href") if k in a]
        if tag == "table":
            self.tables.append(a)
            self._table = a.get("class")
        elif tag == "tr" and self._table == "stats":
            self._row, self._text = a.get("data-stat", ""), []
        elif tag == "tr" and self._table == "trades" and "class" in a:
            self.trade_rows.append(a["class"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "tr" and self._row is not None:
            self.stats[self._row] = " ".join(self._text)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and data.strip():
            self._text.append(data.strip())


@pytest.mark.parametrize("name", STRATEGIES)
async def test_html_is_one_self_contained_page(name: str, tmp_path: Path) -> None:
    s = await run_sim(name, tmp_path)
    report = report_from_trace(trace_of(s))
    page = report.to_html(tmp_path / "report.html", width=1200).read_text("utf-8")
    parser = PageParser()
    parser.feed(page)
    assert {"class": "stats", "id": "stats"} in parser.tables
    assert {"class": "trades", "id": "trades"} in parser.tables
    assert list(parser.stats) == [key for key, _, _ in STATS]
    for key, label, fmt in STATS:
        assert parser.stats[key] == f"{label} {fmt(report.stats[key])}"
    # Nothing is loaded from elsewhere: plotly.js is inlined, no src or href leaves the page.
    assert all(src.startswith(("data:", "#")) for src in parser.sources), parser.sources
    # (plotly.js's own code holds URLs of map tiles and its logo, never loaded here: the
    # browser test shows no request leaves the page; the markup itself links nowhere.)
    markup = re.sub(r"(?s)<script[^>]*>.*?</script>", "<script></script>", page)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", markup, re.IGNORECASE)
    assert not re.search(r"<script[^>]*\bsrc=", page, re.IGNORECASE)
    assert '<div id="charts"' in page
    assert "Plotly.newPlot" in page
    assert {"class": "dataframe markets", "id": "markets"} in parser.tables
    assert "annualised: x sqrt(525,600) 1m periods a year" in page
    assert parser.trade_rows == report.trades["side"].tolist()


async def test_html_shows_the_first_and_last_trades_of_many(tmp_path: Path) -> None:
    report = report_from_trace(trace_of(await run_sim("sma_cross", tmp_path)))
    n = len(report.trades)
    assert n > 10
    parser = PageParser()
    parser.feed(report.html(max_trades=10))
    sides = report.trades["side"].tolist()
    assert parser.trade_rows == [*sides[:5], "omitted", *sides[-5:]]
    assert f"{n - 10:,} fills not shown" in report.html(max_trades=10)


def copy_without_bars(src: Path, dst: Path) -> None:
    """A trace of the same run with every BAR and BARS event left out."""
    bar_kinds = {k for k in Kind if k.name in ("BAR", "BARS")}
    with TraceWriter(dst) as writer:
        for e in iter_events(src):
            if e.kind not in bar_kinds:
                writer.record(
                    e.kind, e.payload, ts_ns=e.ts_ns, asset=e.asset, ts_exchange_ns=e.ts_exchange_ns
                )


async def test_trace_without_bars_says_how_to_record_them(tmp_path: Path) -> None:
    s = await run_sim("sma_cross", tmp_path / "traces")
    bare = tmp_path / "bare.zarr"
    copy_without_bars(trace_of(s), bare)
    assert len(list_runs(bare)) == 1
    with pytest.raises(TraceError, match=r"recorded no bars.*prices are missing.*MARK"):
        report_from_trace(bare)


@pytest.mark.skipif("BARS" not in Kind.__members__, reason="this vigil records no BARS blocks")
async def test_bar_blocks_alone_price_the_run(tmp_path: Path) -> None:
    # Without trace_market a Sim run records its bars in BARS blocks, warmup bars included.
    s = await run_sim("margin_trend", tmp_path, trace_market=False)
    assert_same_run(report_from_trace(trace_of(s)), s)


async def test_runs_are_chosen_by_index_or_id(tmp_path: Path) -> None:
    first = await run_sim("sma_cross", tmp_path, seed=1)
    first_stats = dict(first.results.stats)
    second = await run_sim("sma_cross", tmp_path, seed=2)
    path = trace_of(second)
    assert trace_of(first) == path
    assert first_stats["end_equity"] != second.results.stats["end_equity"]
    assert_same_run(report_from_trace(path, run=-1), second)
    assert report_from_trace(path, run=0).stats == pytest.approx(first_stats, nan_ok=True)
    assert report_from_trace(path, run=second._rt.run_id).run_id == second._rt.run_id
    with pytest.raises(TraceError, match=r"has 2 run\(s\), so run=2 does not exist"):
        report_from_trace(path, run=2)
    with pytest.raises(TraceError, match="has no run 'nope'; its runs are"):
        report_from_trace(path, run="nope")


async def test_render_writes_both_files_and_returns_the_table(tmp_path: Path) -> None:
    path = trace_of(await run_sim("margin_trend", tmp_path))
    html_out, png_out = tmp_path / "out.html", tmp_path / "out.png"
    text = render(str(path), html=str(html_out), png=str(png_out))
    for _, label, _ in STATS:
        assert re.search(rf"^{label} +\S+$", text, re.MULTILINE), label
    assert png_size(png_out.read_bytes()) == (1600, 840)
    assert '<table class="stats"' in html_out.read_text("utf-8")
    assert f"png            {png_out}" in text


async def test_report_main_prints_the_statistics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = trace_of(await run_sim("sma_cross", tmp_path))
    args = argparse.Namespace(path=str(path), html=None, png=None, run="0")
    assert report_main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("sma_cross (sim, binance) run ")
    for _, label, _ in STATS:
        assert label in out


def test_render_names_what_is_wrong_with_the_path(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"no trace at .*missing\.zarr: the path does not exist"):
        render(tmp_path / "missing.zarr")
    results = tmp_path / "results.json"
    results.write_text("{}")
    with pytest.raises(TraceError, match="is a file; vigil report reads a trace directory"):
        render(results)
    with pytest.raises(TraceError, match=r"zarr\.json"):
        render(tmp_path)  # a directory, but not a trace


async def test_report_from_strategy_needs_a_sim_run(tmp_path: Path) -> None:
    from traces import replay_from_trace

    replayed = replay_from_trace(trace_of(await run_sim("sma_cross", tmp_path)))
    with pytest.raises(ConfigError, match="report_from_strategy needs a Sim run"):
        report_from_strategy(replayed)


def test_actions_follow_each_markets_position() -> None:
    from runtime.app._report import _with_actions

    trades = pd.DataFrame(
        {
            "symbol": ["A", "A", "B", "A", "A", "A", "B"],
            "side": ["buy", "buy", "sell", "sell", "sell", "buy", "buy"],
            "amount": [1.0, 1.0, 2.0, 1.0, 3.0, 2.0, 2.0],
        }
    )
    # A: +1 +2 (grows), +1 (shrinks), -2 (flips), 0; B: -2 (opens short), 0.
    assert _with_actions(trades)["action"].tolist() == [
        "entry", "entry", "entry", "exit", "reverse", "exit", "exit",
    ]  # fmt: skip


async def test_a_restarted_run_starts_from_the_state_before_it(tmp_path: Path) -> None:
    # One Sim run split into two runs of one trace, the second marked as a restart
    # (fresh=False), as a Live strategy restarted mid-position records it.
    s = await run_sim("sma_cross", tmp_path / "traces")
    events = list(iter_events(trace_of(s)))
    bars = [i for i, e in enumerate(events) if e.kind == Kind.BAR]
    split = bars[len(bars) // 2]
    head, stop = events[0], events[-1]
    assert (head.kind, stop.kind) == (Kind.RUN_STARTED, Kind.RUN_STOPPED)
    restart = {**head.payload, "run_id": "restart", "fresh": False}
    path = tmp_path / "restarted.zarr"
    with TraceWriter(path) as writer:

        def put(kind: Kind, payload: dict[str, object], ts_ns: int, asset: str | None) -> None:
            writer.record(kind, payload, ts_ns=ts_ns, asset=asset)

        for e in events[:split]:
            put(e.kind, e.payload, e.ts_ns, e.asset)
        put(Kind.RUN_STOPPED, {"run_id": head.payload["run_id"]}, events[split].ts_ns, None)
        put(Kind.RUN_STARTED, restart, events[split].ts_ns, None)
        for e in events[split:-1]:
            put(e.kind, e.payload, e.ts_ns, e.asset)
        put(Kind.RUN_STOPPED, {"run_id": "restart"}, stop.ts_ns, None)

    report = report_from_trace(path)
    assert report.run_id == "restart"
    results = s.results
    restarted_at = pd.Timestamp(events[split].ts_ns, unit="ns", tz="UTC")
    later = results.equity[results.equity.index >= restarted_at]
    assert 0 < len(later) < len(results.equity)
    pd.testing.assert_index_equal(report.equity.index, later.index)
    # Holdings carried over from the first run are valued too: the curve continues unchanged.
    np.testing.assert_allclose(report.equity.to_numpy(), later.to_numpy(), rtol=1e-12)
    # Only the restarted run's fills, with PnL against the cost of the earlier ones.
    ids = {e.payload["trade_id"] for e in events[split:] if e.kind == Kind.TRADE}
    assert 0 < len(ids) < len(results.trades)
    expected = results.trades[results.trades["trade_id"].isin(ids)].reset_index(drop=True)
    pd.testing.assert_frame_equal(report.trades.drop(columns="action"), expected)
