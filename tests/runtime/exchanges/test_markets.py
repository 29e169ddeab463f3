"""The offline market snapshot, its Binance exchangeInfo source, and the market loader."""

from __future__ import annotations

import ast
import json
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from runtime._errors import ConfigError
from runtime.exchanges import _binance_info as info
from runtime.exchanges._markets import (
    load_markets,
    market_for,
    markets_exchange,
    synthetic_market,
)
from runtime.testing import _snapshot as snapshot

SPOT = [
    "BTC/USDT",
    "ETH/USDT",
    "SOL/USDT",
    "BNB/USDT",
    "XRP/USDT",
    "ADA/USDT",
    "LTC/USDT",
    "DOGE/USDT",
    "ETH/BTC",
    "LTC/BTC",
    "ADA/BTC",
    "XRP/ETH",
]
PERPS = [f"{base}/USDT:USDT" for base in ("BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "LTC", "DOGE")]


def _shipped(exchange: str) -> dict[str, Any]:
    path = resources.files("runtime.exchanges").joinpath("markets", f"{exchange}.json")
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


# --- the snapshot is what real ccxt makes of our exchangeInfo ---------------------------------


@pytest.mark.parametrize("exchange", ["binance", "binanceusdm", "bybit"])
def test_snapshot_matches_a_fresh_ccxt_regeneration(exchange: str) -> None:
    fresh = snapshot.build_snapshot(exchange)
    shipped = _shipped(exchange)
    assert shipped["generated_by"] == "python -m runtime.testing._snapshot"
    # Compared per market so a failure names the market; the fix is to rerun generated_by.
    assert sorted(shipped["markets"]) == sorted(fresh["markets"])
    for symbol, market in fresh["markets"].items():
        assert shipped["markets"][symbol] == market, f"{exchange} {symbol} is stale"


def test_snapshot_files_are_rendered_canonically() -> None:
    for exchange in ("binance", "binanceusdm", "bybit"):
        path = resources.files("runtime.exchanges").joinpath("markets", f"{exchange}.json")
        text = path.read_text(encoding="utf-8")
        assert text == snapshot.render(json.loads(text))


def test_snapshot_generation_never_leaves_the_canned_responses() -> None:
    with pytest.raises(RuntimeError, match="no canned response"):
        snapshot._canned("https://api.binance.com/api/v3/ticker/price", "GET")


def test_snapshot_holds_exactly_the_chosen_symbols() -> None:
    assert sorted(load_markets("binance")) == sorted(SPOT)
    assert sorted(load_markets("binanceusdm")) == sorted(PERPS)
    assert sorted(SPOT) == sorted(info.SPOT_SYMBOLS)
    assert sorted(PERPS) == sorted(info.FUTURES_SYMBOLS)


def test_btc_usdt_spot_precision_limits_and_fees() -> None:
    m = market_for("binance", "BTC/USDT")
    assert (m["id"], m["type"], m["spot"], m["contract"]) == ("BTCUSDT", "spot", True, False)
    assert m["precision"]["amount"] == 1e-05
    assert m["precision"]["price"] == 0.01
    assert m["limits"]["amount"] == {"min": 1e-05, "max": 9000.0}
    assert m["limits"]["price"] == {"min": 0.01, "max": 1000000.0}
    assert m["limits"]["cost"] == {"min": 5.0, "max": 9000000.0}
    assert m["maker"] == m["taker"] == 0.001
    assert m["info"]["symbol"] == "BTCUSDT"
    assert "LIMIT_MAKER" in m["info"]["orderTypes"]


def test_btc_usdt_perpetual_contract_fields() -> None:
    m = market_for("binanceusdm", "BTC/USDT:USDT")
    assert m["contract"] is True
    assert m["linear"] is True
    assert m["inverse"] is False
    assert m["swap"] is True
    assert m["type"] == "swap"
    assert m["contractSize"] == 1.0
    assert m["settle"] == "USDT"
    assert m["expiry"] is None
    assert m["precision"]["price"] == 0.1  # the tick, not pricePrecision's 0.01
    assert m["precision"]["amount"] == 0.001
    assert m["limits"]["cost"]["min"] == 100.0
    assert (m["maker"], m["taker"]) == (0.0002, 0.0005)
    assert m["info"]["contractType"] == "PERPETUAL"
    assert m["info"]["marginAsset"] == "USDT"


@pytest.mark.parametrize("exchange", ["binance", "binanceusdm"])
def test_every_market_has_positive_precision_limits_and_the_fee_constants(exchange: str) -> None:
    spot = exchange == "binance"
    maker = float(info.SPOT_MAKER_FEE if spot else info.FUTURES_MAKER_FEE)
    taker = float(info.SPOT_TAKER_FEE if spot else info.FUTURES_TAKER_FEE)
    for symbol, m in load_markets(exchange).items():
        assert m["symbol"] == symbol
        assert m["active"] is True
        assert (m["maker"], m["taker"]) == (maker, taker), symbol
        assert m["precision"]["amount"] > 0, symbol
        assert m["precision"]["price"] > 0, symbol
        assert m["limits"]["amount"]["min"] >= m["precision"]["amount"], symbol
        assert m["limits"]["cost"]["min"] > 0, symbol


# --- the exchangeInfo bodies -------------------------------------------------------------------


def test_exchange_info_bodies_are_fresh_and_carry_the_server_time() -> None:
    a = info.spot_exchange_info(123)
    a["symbols"].clear()
    assert info.spot_exchange_info(456)["serverTime"] == 456
    assert len(info.spot_exchange_info(1)["symbols"]) == len(SPOT)
    assert info.futures_exchange_info(789)["serverTime"] == 789


def test_spot_filters_use_binance_eight_decimal_strings() -> None:
    btc = next(s for s in info.spot_exchange_info(0)["symbols"] if s["symbol"] == "BTCUSDT")
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"
    assert filters["NOTIONAL"]["minNotional"] == "5.00000000"
    assert btc["permissionSets"] == [["SPOT", "MARGIN"]]


@pytest.mark.parametrize(
    ("body", "kind"),
    [(info.spot_exchange_info, "spot"), (info.futures_exchange_info, "futures")],
)
def test_filters_are_consistent(body: Any, kind: str) -> None:
    for s in body(0)["symbols"]:
        f = {x["filterType"]: x for x in s["filters"]}
        tick = Decimal(f["PRICE_FILTER"]["tickSize"])
        step = Decimal(f["LOT_SIZE"]["stepSize"])
        assert tick > 0
        assert step > 0
        assert Decimal(f["PRICE_FILTER"]["minPrice"]) % tick == 0, s["symbol"]
        assert Decimal(f["LOT_SIZE"]["minQty"]) % step == 0, s["symbol"]
        assert Decimal(f["LOT_SIZE"]["maxQty"]) > Decimal(f["LOT_SIZE"]["minQty"])
        if kind == "futures":
            # ccxt reads pricePrecision/quantityPrecision first, then the filters override them.
            assert tick % Decimal(1).scaleb(-s["pricePrecision"]) == 0, s["symbol"]
            assert step % Decimal(1).scaleb(-s["quantityPrecision"]) == 0, s["symbol"]
            assert s["contractType"] == "PERPETUAL"
            assert s["marginAsset"] == s["quoteAsset"]


def test_exchange_info_validates_against_binance_sdk_models() -> None:
    spot_models = pytest.importorskip("binance_sdk_spot.rest_api.models")
    futures_models = pytest.importorskip(
        "binance_sdk_derivatives_trading_usds_futures.rest_api.models"
    )
    spot = spot_models.ExchangeInfoResponse.from_dict(info.spot_exchange_info(0))
    assert len(spot.symbols) == len(SPOT)
    futures = futures_models.ExchangeInformationResponse.from_dict(info.futures_exchange_info(0))
    assert len(futures.symbols) == len(PERPS)


# --- loading ----------------------------------------------------------------------------------


def test_load_markets_returns_independent_copies() -> None:
    first = load_markets("binance")
    first["BTC/USDT"]["precision"]["amount"] = 1.0
    del first["ETH/USDT"]
    again = load_markets("binance")
    assert again["BTC/USDT"]["precision"]["amount"] == 1e-05
    assert "ETH/USDT" in again
    market_for("binance", "SOL/USDT")["limits"]["cost"]["min"] = 0.0
    assert market_for("binance", "SOL/USDT")["limits"]["cost"]["min"] == 5.0


def test_market_for_resolves_a_spot_style_symbol_to_the_perpetual() -> None:
    assert market_for("binanceusdm", "ETH/USDT")["symbol"] == "ETH/USDT:USDT"


def test_market_for_an_unknown_symbol_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match=r"'PEPE/USDT' is not in the binance snapshot") as e:
        market_for("binance", "PEPE/USDT")
    assert "BTC/USDT" in str(e.value)
    assert "XRP/ETH" in str(e.value)


def test_an_exchange_without_a_bundled_snapshot_is_told_to_save_its_markets() -> None:
    with pytest.raises(ConfigError, match=r"'kraken' has no bundled market snapshot.*binanceusdm"):
        load_markets("kraken")
    with pytest.raises(ConfigError, match=r"vigil markets save kraken"):
        load_markets("kraken")
    assert markets_exchange("kraken", None) == "kraken"  # any ccxt id trades its own markets


@pytest.mark.parametrize(
    ("exchange", "margin", "expected"),
    [
        ("binance", None, "binance"),
        ("binance", "isolated", "binanceusdm"),
        ("binance", "cross", "binanceusdm"),
        ("binanceusdm", "isolated", "binanceusdm"),
    ],
)
def test_markets_exchange(exchange: str, margin: str | None, expected: str) -> None:
    assert markets_exchange(exchange, margin) == expected


def test_markets_exchange_rejects_an_unknown_margin_mode() -> None:
    with pytest.raises(ConfigError, match=r"margin 'portfolio'.*'isolated', 'cross'"):
        markets_exchange("binance", "portfolio")


# --- synthetic markets -----------------------------------------------------------------------


def test_synthetic_market_has_the_unified_keys_of_a_real_one() -> None:
    spot = synthetic_market("PEPE/USDT", price=0.00001234)
    perp = synthetic_market("PEPE/USDT", price=0.00001234, contract=True)
    real_spot = market_for("binance", "BTC/USDT")
    real_perp = market_for("binanceusdm", "BTC/USDT:USDT")
    assert set(spot) == set(real_spot)
    assert set(perp) == set(real_perp)
    assert set(spot["limits"]) == set(real_spot["limits"])
    assert set(spot["precision"]) == set(real_spot["precision"])
    for key in ("spot", "contract", "linear", "type", "subType", "maker", "taker", "index"):
        assert spot[key] == real_spot[key], key
        assert perp[key] == real_perp[key], key
    assert perp["symbol"] == "PEPE/USDT:USDT"
    assert perp["contractSize"] == 1.0
    assert spot["info"]["synthetic"] is True


@pytest.mark.parametrize(
    ("price", "tick", "step"),
    [(60_000.0, 0.1, 1e-05), (3_000.0, 0.01, 0.0001), (150.0, 0.001, 0.001), (0.5, 1e-06, 1.0)],
)
def test_synthetic_market_scales_tick_and_step_with_price(
    price: float, tick: float, step: float
) -> None:
    m = synthetic_market("ABC/USDT", price=price)
    assert m["precision"]["price"] == tick
    assert m["precision"]["amount"] == step
    assert m["limits"]["amount"]["min"] == step
    assert m["limits"]["cost"]["min"] == 5.0
    assert 1e5 <= price / tick < 1e6 + 1  # six significant digits


def test_synthetic_market_of_a_coin_quoted_pair_has_no_cost_minimum() -> None:
    assert synthetic_market("ABC/BTC", price=0.001)["limits"]["cost"]["min"] is None


@pytest.mark.parametrize(
    ("symbol", "price", "match"),
    [
        ("BTCUSDT", 1.0, "not a ccxt symbol"),
        ("BTC/", 1.0, "not a ccxt symbol"),
        ("BTC/USDT:", 1.0, "not a ccxt symbol"),
        ("BTC/USD:BTC", 1.0, "only linear perpetuals"),
        ("BTC/USDT", 0.0, "finite and positive"),
        ("BTC/USDT", float("nan"), "finite and positive"),
    ],
)
def test_synthetic_market_rejects_bad_input(symbol: str, price: float, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        synthetic_market(symbol, price=price)


# --- layering ---------------------------------------------------------------------------------


def test_only_the_ccxt_package_imports_ccxt() -> None:
    # DESIGN §5: runtime/exchanges/ccxt is the one place that imports ccxt.
    # The snapshot tool is the one exception: a test helper that runs real ccxt against the
    # loopback exchange to produce the markets that ship.
    root = Path(__file__).resolve().parents[3] / "runtime"
    allowed = {root / "testing" / "_snapshot.py"}
    modules = [p for p in root.rglob("*.py") if (root / "exchanges" / "ccxt") not in p.parents]
    assert len(modules) > 20
    for module in sorted(set(modules) - allowed):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        assert "ccxt" not in imported, module
