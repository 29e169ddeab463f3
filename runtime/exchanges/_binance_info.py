"""Binance ``exchangeInfo`` response bodies, built in pure Python.

Two consumers share these bodies, so both see the same markets:

- ``runtime.testing._snapshot`` feeds them to real ccxt parsing to produce the shipped
  offline market snapshot (``runtime/exchanges/markets/*.json``);
- the loopback Binance server serves them at ``GET /api/v3/exchangeInfo`` (spot) and
  ``GET /fapi/v1/exchangeInfo`` (USDⓈ-M futures).

The shape follows what Binance returns and what the official SDK models
(``binance-sdk-spot``, ``binance-sdk-derivatives-trading-usds-futures``) describe: decimals are
strings, spot decimals carry eight places, futures decimals are short. The numbers are
realistic values for each symbol, not live ones.

Fees are not part of ``exchangeInfo``: ccxt takes them from its own defaults for binance
(0.1% spot, 0.02% maker / 0.05% taker on USDⓈ-M), which the constants below mirror so that the
loopback server charges what the snapshot says.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

__all__ = [
    "FUTURES_MAKER_FEE",
    "FUTURES_SYMBOLS",
    "FUTURES_TAKER_FEE",
    "SPOT_MAKER_FEE",
    "SPOT_SYMBOLS",
    "SPOT_TAKER_FEE",
    "FuturesSymbol",
    "SpotSymbol",
    "futures_exchange_info",
    "spot_exchange_info",
]

# Mirrors ccxt's binance defaults: fees["trading"] and fees["linear"]["trading"].
SPOT_MAKER_FEE: Final = "0.001"
SPOT_TAKER_FEE: Final = "0.001"
FUTURES_MAKER_FEE: Final = "0.0002"
FUTURES_TAKER_FEE: Final = "0.0005"

# A PERPETUAL contract's deliveryDate on Binance: 2100-12-25T08:00:00Z.
PERPETUAL_DELIVERY_MS: Final = 4_133_404_800_000


@dataclass(frozen=True, slots=True, kw_only=True)
class _Symbol:
    """What spot symbols and perpetuals share: the two assets (which make Binance's id) and
    the price, amount and notional rules; decimals are strings, as Binance sends them."""

    base: str
    quote: str
    tick_size: str
    min_price: str
    max_price: str
    step_size: str
    min_qty: str
    max_qty: str
    market_max_qty: str
    min_notional: str

    @property
    def id(self) -> str:
        """Binance's symbol id, e.g. ``"BTCUSDT"``."""
        return self.base + self.quote


@dataclass(frozen=True, slots=True, kw_only=True)
class SpotSymbol(_Symbol):
    """One spot symbol's trading rules: the shared ones, a notional cap, margin or not."""

    max_notional: str
    margin: bool = True

    @property
    def symbol(self) -> str:
        """ccxt's unified symbol, e.g. ``"BTC/USDT"``."""
        return f"{self.base}/{self.quote}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FuturesSymbol(_Symbol):
    """One USDⓈ-M perpetual's trading rules: the shared ones, the wire precisions, the listing
    date, the sub-type and the risk bands."""

    price_precision: int
    quantity_precision: int
    onboard_ms: int
    underlying_sub_type: str
    liquidation_fee: str = "0.015000"
    market_take_bound: str = "0.10"
    trigger_protect: str = "0.1000"

    @property
    def symbol(self) -> str:
        """ccxt's unified symbol of a linear perpetual, e.g. ``"BTC/USDT:USDT"``."""
        return f"{self.base}/{self.quote}:{self.quote}"


def _spot(
    base: str,
    quote: str,
    tick: str,
    max_price: str,
    step: str,
    max_qty: str,
    market_max_qty: str,
    min_notional: str,
    *,
    margin: bool = True,
) -> SpotSymbol:
    # Binance's spot minPrice equals the tick and minQty equals the step.
    return SpotSymbol(
        base=base,
        quote=quote,
        tick_size=tick,
        min_price=tick,
        max_price=max_price,
        step_size=step,
        min_qty=step,
        max_qty=max_qty,
        market_max_qty=market_max_qty,
        min_notional=min_notional,
        max_notional="9000000",
        margin=margin,
    )


def _perp(
    base: str,
    precision: tuple[int, int],
    tick: str,
    price_range: tuple[str, str],
    step: str,
    max_qty: tuple[str, str],
    min_notional: str,
    onboard_ms: int,
    sub_type: str,
    *,
    major: bool = False,
) -> FuturesSymbol:
    # Majors get the tighter liquidation fee and price bands Binance gives BTC and ETH.
    bands = (
        {"liquidation_fee": "0.012500", "market_take_bound": "0.05", "trigger_protect": "0.0500"}
        if major
        else {}
    )
    return FuturesSymbol(
        base=base,
        quote="USDT",
        price_precision=precision[0],
        quantity_precision=precision[1],
        tick_size=tick,
        min_price=price_range[0],
        max_price=price_range[1],
        step_size=step,
        min_qty=step,
        max_qty=max_qty[0],
        market_max_qty=max_qty[1],
        min_notional=min_notional,
        onboard_ms=onboard_ms,
        underlying_sub_type=sub_type,
        **bands,
    )


#: Spot symbols by ccxt symbol.
SPOT_SYMBOLS: Final[dict[str, SpotSymbol]] = {
    s.symbol: s
    for s in (
        # base, quote, tick, maxPrice, step, maxQty, market maxQty, minNotional
        _spot("BTC", "USDT", "0.01", "1000000", "0.00001", "9000", "118.57", "5"),
        _spot("ETH", "USDT", "0.01", "1000000", "0.0001", "9000", "2417.59", "5"),
        _spot("SOL", "USDT", "0.01", "10000", "0.001", "9000000", "19412.5", "5"),
        _spot("BNB", "USDT", "0.01", "100000", "0.001", "9000", "1853.22", "5"),
        _spot("XRP", "USDT", "0.0001", "1000", "0.1", "9222449", "1864321.9", "5"),
        _spot("ADA", "USDT", "0.0001", "1000", "0.1", "900000", "1425120.6", "5"),
        _spot("LTC", "USDT", "0.01", "100000", "0.001", "900000", "8432.61", "5"),
        _spot("DOGE", "USDT", "0.00001", "1000", "1", "9000000", "7725843", "5"),
        _spot("ETH", "BTC", "0.00001", "922327", "0.0001", "100000", "1864.39", "0.0001"),
        _spot("LTC", "BTC", "0.000001", "100000", "0.001", "100000", "5372.81", "0.0001"),
        _spot("ADA", "BTC", "0.00000001", "1000", "0.1", "90000000", "2250311", "0.0001"),
        _spot("XRP", "ETH", "0.0000001", "1000", "1", "90000000", "617214", "0.001", margin=False),
    )
}

_LAUNCH_MS = 1_569_398_400_000  # 2019-09-25: the first USDⓈ-M contracts

#: USDⓈ-M perpetuals by ccxt symbol.
FUTURES_SYMBOLS: Final[dict[str, FuturesSymbol]] = {
    s.symbol: s
    for s in (
        # base, (price, qty precision), tick, (minPrice, maxPrice), step, (maxQty, market
        # maxQty), minNotional, onboardDate, underlyingSubType
        _perp("BTC", (2, 3), "0.10", ("556.80", "4529764"), "0.001", ("1000", "120"), "100",
              _LAUNCH_MS, "PoW", major=True),
        _perp("ETH", (2, 3), "0.01", ("39.86", "306177"), "0.001", ("10000", "2000"), "20",
              _LAUNCH_MS, "Layer-1", major=True),
        _perp("SOL", (4, 0), "0.0100", ("0.4200", "6857"), "1", ("1000000", "5000"), "5",
              1_600_128_000_000, "Layer-1"),
        _perp("BNB", (3, 2), "0.010", ("6.600", "100000"), "0.01", ("100000", "2000"), "5",
              1_581_490_800_000, "Layer-1"),
        _perp("XRP", (4, 1), "0.0001", ("0.0143", "100000"), "0.1", ("10000000", "2000000"), "5",
              _LAUNCH_MS, "Payment"),
        _perp("ADA", (5, 0), "0.00010", ("0.01740", "20"), "1", ("10000000", "300000"), "5",
              _LAUNCH_MS, "Layer-1"),
        _perp("LTC", (2, 3), "0.01", ("3.61", "100000"), "0.001", ("100000", "5000"), "20",
              _LAUNCH_MS, "PoW"),
        _perp("DOGE", (6, 0), "0.000010", ("0.002440", "30"), "1", ("50000000", "30000000"), "5",
              1_593_676_800_000, "Meme"),
    )
}  # fmt: skip

_SPOT_RATE_LIMITS: Final = (
    ("REQUEST_WEIGHT", "MINUTE", 1, 6000),
    ("ORDERS", "SECOND", 10, 100),
    ("ORDERS", "DAY", 1, 200000),
    ("RAW_REQUESTS", "MINUTE", 5, 61000),
)
_FUTURES_RATE_LIMITS: Final = (
    ("REQUEST_WEIGHT", "MINUTE", 1, 2400),
    ("ORDERS", "MINUTE", 1, 1200),
    ("ORDERS", "SECOND", 10, 300),
)
_SPOT_ORDER_TYPES: Final = (
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
)
_FUTURES_ORDER_TYPES: Final = (
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
)
_FUTURES_TIME_IN_FORCE: Final = ("GTC", "IOC", "FOK", "GTX", "GTD")
_STP_MODES: Final = ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH")
# (asset, marginAvailable, autoAssetExchange) of the futures "assets" list.
_FUTURES_ASSETS: Final = (
    ("USDT", True, "-10000"),
    ("BTC", True, "-0.10000000"),
    ("BNB", True, "-10"),
    ("ETH", True, "-5"),
    ("USDC", True, "-10000"),
)


def _d8(value: str) -> str:
    """Spot decimals always carry eight places: ``"0.01"`` -> ``"0.01000000"``."""
    return f"{Decimal(value):.8f}"


def _rate_limits(table: tuple[tuple[str, str, int, int], ...]) -> list[dict[str, Any]]:
    return [
        {"rateLimitType": kind, "interval": interval, "intervalNum": num, "limit": limit}
        for kind, interval, num, limit in table
    ]


def _spot_symbol(s: SpotSymbol) -> dict[str, Any]:
    permissions = ["SPOT", "MARGIN"] if s.margin else ["SPOT"]
    return {
        "symbol": s.id,
        "status": "TRADING",
        "baseAsset": s.base,
        "baseAssetPrecision": 8,
        "quoteAsset": s.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": list(_SPOT_ORDER_TYPES),
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "pegInstructionsAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": s.margin,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _d8(s.min_price),
                "maxPrice": _d8(s.max_price),
                "tickSize": _d8(s.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _d8(s.min_qty),
                "maxQty": _d8(s.max_qty),
                "stepSize": _d8(s.step_size),
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": _d8("0"),
                "maxQty": _d8(s.market_max_qty),
                "stepSize": _d8("0"),
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": 10,
                "maxTrailingAboveDelta": 2000,
                "minTrailingBelowDelta": 10,
                "maxTrailingBelowDelta": 2000,
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": "5",
                "bidMultiplierDown": "0.2",
                "askMultiplierUp": "5",
                "askMultiplierDown": "0.2",
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": _d8(s.min_notional),
                "applyMinToMarket": True,
                "maxNotional": _d8(s.max_notional),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        # Binance now sends an empty ``permissions`` and the real sets in ``permissionSets``.
        "permissions": [],
        "permissionSets": [permissions],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": list(_STP_MODES),
    }


def _futures_symbol(s: FuturesSymbol) -> dict[str, Any]:
    return {
        "symbol": s.id,
        "pair": s.id,
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_MS,
        "onboardDate": s.onboard_ms,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": s.base,
        "quoteAsset": s.quote,
        "marginAsset": s.quote,
        "pricePrecision": s.price_precision,
        "quantityPrecision": s.quantity_precision,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [s.underlying_sub_type],
        "triggerProtect": s.trigger_protect,
        "liquidationFee": s.liquidation_fee,
        "marketTakeBound": s.market_take_bound,
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": s.min_price,
                "maxPrice": s.max_price,
                "tickSize": s.tick_size,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": s.min_qty,
                "maxQty": s.max_qty,
                "stepSize": s.step_size,
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": s.min_qty,
                "maxQty": s.market_max_qty,
                "stepSize": s.step_size,
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            # Futures spell the minimum as "notional", spot as "minNotional".
            {"filterType": "MIN_NOTIONAL", "notional": s.min_notional},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": list(_FUTURES_ORDER_TYPES),
        "timeInForce": list(_FUTURES_TIME_IN_FORCE),
        "permissionSets": ["GRID", "COPY"],
    }


def spot_exchange_info(server_time_ms: int) -> dict[str, Any]:
    """The body of ``GET /api/v3/exchangeInfo`` for every symbol in :data:`SPOT_SYMBOLS`.

    Returns a fresh dict on every call, so a caller may change it freely.
    """
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "rateLimits": _rate_limits(_SPOT_RATE_LIMITS),
        "exchangeFilters": [],
        "symbols": [_spot_symbol(s) for s in SPOT_SYMBOLS.values()],
    }


def futures_exchange_info(server_time_ms: int) -> dict[str, Any]:
    """The body of ``GET /fapi/v1/exchangeInfo`` for every symbol in :data:`FUTURES_SYMBOLS`.

    Returns a fresh dict on every call, so a caller may change it freely.
    """
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": _rate_limits(_FUTURES_RATE_LIMITS),
        "exchangeFilters": [],
        "assets": [
            {"asset": asset, "marginAvailable": available, "autoAssetExchange": threshold}
            for asset, available, threshold in _FUTURES_ASSETS
        ],
        "symbols": [_futures_symbol(s) for s in FUTURES_SYMBOLS.values()],
    }
