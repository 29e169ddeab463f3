"""Venues (DESIGN §10b): markets from the cache, the bundled snapshots or the exchange; no
invented markets; spot and derivatives venues; credentials by ccxt's requiredCredentials."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from runtime import Live, Paper, Sim, start, stop, strategy
from runtime._errors import ConfigError
from runtime.app._cli import main as vigil
from runtime.exchanges import _markets
from runtime.exchanges._markets import load_markets, markets_cache_path, save_markets_cache
from runtime.testing.loopback import LoopbackExchange
from tests.conftest import MANUAL
from tests.runtime.testing.loopback.support import make_bybit

SMA = "sma_cross"


def test_a_typo_in_a_market_is_refused_naming_the_close_match() -> None:
    with pytest.raises(ConfigError, match=r"'ETH/USTD' is not listed by binance") as e:
        strategy(SMA, mode=Sim(), config={"markets": ["ETH/USTD"]})
    assert "did you mean 'ETH/USDT'" in str(e.value)
    assert "vigil markets" in str(e.value)


def test_a_market_outside_the_snapshot_is_not_invented() -> None:
    with pytest.raises(ConfigError, match=r"'PEPE/USDT' is not listed by binance"):
        strategy(SMA, mode=Sim(), config={"markets": ["PEPE/USDT"]})


@pytest.mark.parametrize("mode", [Sim(), Paper()], ids=["sim", "paper"])
def test_a_spot_strategy_on_a_derivatives_venue_is_refused_at_strategy(mode: object) -> None:
    with pytest.raises(ConfigError, match=r"'binanceusdm' lists derivatives only") as e:
        strategy(SMA, mode=mode, exchange="binanceusdm")  # type: ignore[arg-type]
    assert "exchange='binance'" in str(e.value)
    assert "margin='isolated'" in str(e.value)


def test_a_spot_strategy_on_a_derivatives_venue_is_refused_in_live_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VIGIL_BINANCEUSDM_API_KEY", "k")
    monkeypatch.setenv("VIGIL_BINANCEUSDM_SECRET", "s")
    with pytest.raises(ConfigError, match=r"use|exchange='binance'"):
        strategy(MANUAL, mode=Live(), exchange="binanceusdm")


def test_a_perpetual_symbol_in_a_spot_strategy_is_refused() -> None:
    # ccxt's "binance" lists spot and perpetuals alike (what `vigil markets save` caches).
    save_markets_cache("binance", {**load_markets("binance"), **load_markets("binanceusdm")})
    with pytest.raises(
        ConfigError, match=r"'BTC/USDT:USDT' on binance is a swap market.*'BTC/USDT'"
    ):
        strategy(SMA, mode=Sim(), config={"markets": ["BTC/USDT:USDT"]})


def test_a_margin_strategy_on_a_spot_only_venue_is_refused_naming_the_derivatives_venue() -> None:
    with pytest.raises(ConfigError, match=r"'kraken' lists spot markets only") as e:
        strategy(SMA, mode=Sim(), exchange="kraken", margin="isolated")
    assert "exchange='krakenfutures'" in str(e.value)


def test_sim_on_bybit_uses_the_bundled_bybit_snapshot() -> None:
    spot = strategy(SMA, mode=Sim(bars=60), exchange="bybit")
    assert spot.universe["BTC/USDT"].market == load_markets("bybit")["BTC/USDT"]
    assert spot.universe["BTC/USDT"].amount_step == 1e-06  # Bybit's basePrecision
    perp = strategy("margin_trend", mode=Sim(bars=80), exchange="bybit")
    assert perp.universe["BTC/USDT:USDT"].market == load_markets("bybit")["BTC/USDT:USDT"]
    assert perp.universe["BTC/USDT:USDT"].taker == 0.0006  # ccxt's bybit linear default


def test_sim_on_an_exchange_without_cache_or_snapshot_says_to_save_its_markets() -> None:
    with pytest.raises(ConfigError, match=r"run `vigil markets save okx`"):
        strategy(SMA, mode=Sim(), exchange="okx")


def test_an_unknown_exchange_id_names_close_ccxt_ids() -> None:
    with pytest.raises(ConfigError, match=r"'binanse' is not a ccxt exchange id.*'binance'"):
        strategy(SMA, mode=Sim(), exchange="binanse")


def test_sim_reads_the_markets_cache_before_the_bundled_snapshot() -> None:
    markets = load_markets("binance")
    markets["BTC/USDT"]["precision"]["amount"] = 0.001  # what a fresher listing might say
    path = save_markets_cache("binance", markets, ccxt_version="test")
    assert path == markets_cache_path("binance")
    s = strategy(SMA, mode=Sim(bars=50))
    assert s.universe["BTC/USDT"].amount_step == 0.001
    path.write_text("{ torn", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"markets cache .* is unreadable.*markets save binance"):
        strategy(SMA, mode=Sim(bars=50))


def test_a_cached_exchange_runs_in_sim_with_its_own_markets() -> None:
    # A venue with no bundled snapshot, once its markets are cached (here: Binance's, renamed).
    save_markets_cache("kucoin", load_markets("binance"), ccxt_version="test")
    s = strategy(SMA, mode=Sim(bars=60), exchange="kucoin")
    assert s.universe["BTC/USDT"].market["id"] == "BTCUSDT"


def test_synthetic_markets_only_on_the_sim_exchange() -> None:
    s = strategy(SMA, mode=Sim(bars=60), exchange="sim", config={"markets": ["FOO/USDT"]})
    assert s.universe["FOO/USDT"].market["info"]["synthetic"] is True
    with pytest.raises(ConfigError, match=r"exchange='sim' .* runs in Sim only"):
        strategy(SMA, mode=Paper(), exchange="sim")


def test_live_credentials_follow_ccxt_required_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("API_KEY", "SECRET", "PASSWORD"):
        monkeypatch.delenv(f"VIGIL_OKX_{name}", raising=False)
    with pytest.raises(ConfigError, match=r"VIGIL_OKX_PASSWORD"):
        strategy(SMA, mode=Live(), exchange="okx")
    monkeypatch.setenv("VIGIL_OKX_API_KEY", "k")
    monkeypatch.setenv("VIGIL_OKX_SECRET", "s")
    with pytest.raises(ConfigError, match=r"set VIGIL_OKX_PASSWORD in the environment") as e:
        strategy(SMA, mode=Live(), exchange="okx")
    assert "VIGIL_OKX_API_KEY" not in str(e.value)


def test_live_without_cache_or_snapshot_loads_markets_from_the_exchange_and_caches_them(
    loopback: LoopbackExchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No snapshot: the old wiring refused every such venue before its Live fallback.
    monkeypatch.setattr(_markets, "SNAPSHOT_EXCHANGES", ())
    with pytest.raises(ConfigError, match=r"'ETH/USTD' is not listed by binance.*'ETH/USDT'"):
        strategy(MANUAL, mode=Live(), sandbox=False, config={"markets": ["ETH/USTD"]})
    cache = markets_cache_path("binance")
    document = json.loads(cache.read_text(encoding="utf-8"))
    assert document["source"] == loopback.base_url
    assert "ETH/USDT" in document["markets"]
    cache.unlink()
    s = strategy(MANUAL, mode=Live(), sandbox=False)
    assert s.universe["BTC/USDT"].market["info"]["symbol"] == "BTCUSDT"
    assert cache.is_file()


async def test_paper_saves_the_exchange_markets_to_the_cache_at_start(
    loopback: LoopbackExchange, tmp_path: Path
) -> None:
    s = strategy(MANUAL, mode=Paper(), sandbox=False, config={"trace_root": str(tmp_path)})
    cache = markets_cache_path("binance")
    assert not cache.exists()  # the bundled snapshot served strategy(...)
    async with trio.open_nursery() as nursery:
        await nursery.start(start, s)
        await stop(s)
    markets = json.loads(cache.read_text(encoding="utf-8"))["markets"]
    assert set(load_markets("binance")) <= set(markets)


def test_vigil_markets_save_and_list(
    loopback: LoopbackExchange, capsys: pytest.CaptureFixture[str]
) -> None:
    assert vigil(["markets", "save", "binance"]) == 0
    out = capsys.readouterr().out
    # ccxt's binance loads spot and USDⓈ-M perpetuals; the loopback serves both.
    assert f"saved 20 binance markets (12 spot, 8 swap) to {markets_cache_path('binance')}" in out
    assert vigil(["markets", "list", "binance", "--quote", "BTC"]) == 0
    out = capsys.readouterr().out
    assert "binance: 3 of 20 markets, from the markets cache" in out
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["ADA/BTC", "ETH/BTC", "LTC/BTC"]
    assert vigil(["markets", "list", "okx"]) == 1
    assert "run `vigil markets save okx`" in capsys.readouterr().err


def test_vigil_markets_save_bybit_from_the_bybit_loopback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with make_bybit() as bybit:
        for name, value in bybit.env().items():
            monkeypatch.setenv(name, value)
        assert vigil(["markets", "save", "bybit"]) == 0
    assert "saved 10 bybit markets (5 spot, 5 swap)" in capsys.readouterr().out
    cached = json.loads(markets_cache_path("bybit").read_text(encoding="utf-8"))["markets"]
    assert cached == load_markets("bybit")  # what the bundled snapshot holds, from real ccxt
    assert vigil(["markets", "list", "bybit", "--type", "swap"]) == 0
    out = capsys.readouterr().out
    assert "bybit: 5 of 10 markets, from the markets cache" in out
    assert "BTC/USDT:USDT" in out
